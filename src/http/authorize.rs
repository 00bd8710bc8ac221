//! The authorization endpoint (`GET`/`POST /oauth2/authorize`) and the consent page
//! (`/consent`); the sign-in and sign-up pages are in [`super::login`].

use axum::extract::{Query as AxumQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use tower_sessions::Session;

use super::pages::{
    PageForm, csrf_ok, csrf_refused, csrf_token, current_login, message, owns_request, page,
    remember_request, service_error,
};
use crate::AppState;
use crate::service::authorize::{
    self, AuthorizeError, AuthorizeRequest, BrowserLogin, Step, Untrusted,
};
use crate::service::clients;
use crate::templates::{ConsentPage, Msg};

/// `path?request={id}`, the id form-encoded (it may come from the query of a page).
pub(super) fn with_request(path: &str, id: &str) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    ser.append_pair("request", id);
    format!("{path}?{}", ser.finish())
}

/// The response to the next step of a request. A request parked for the login or the
/// consent page is remembered in this browser's session: only this browser may resume it.
pub(super) async fn step_response(session: &Session, step: Step) -> Response {
    let (page, id) = match step {
        Step::Redirect(url) => return Redirect::to(&url).into_response(),
        Step::Login(id) => ("/login", id),
        Step::Consent(id) => ("/consent", id),
    };
    if let Err(e) = remember_request(session, &id).await {
        return service_error(e);
    }
    Redirect::to(&with_request(page, &id)).into_response()
}

fn untrusted(why: Untrusted) -> Msg {
    match why {
        Untrusted::Repeated => Msg::AuthorizeRepeated,
        Untrusted::NoClientId => Msg::AuthorizeNoClientId,
        Untrusted::UnknownClient => Msg::AuthorizeUnknownClient,
        Untrusted::NoRedirectUri => Msg::AuthorizeNoRedirectUri,
        Untrusted::RedirectUriFragment => Msg::AuthorizeRedirectUriFragment,
        Untrusted::RedirectUriNotRegistered => Msg::AuthorizeRedirectUriNotRegistered,
    }
}

/// The response to a failed request: a page or the error redirect.
pub(super) fn authorize_error(e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::Page(why) => message(StatusCode::BAD_REQUEST, untrusted(why)),
        AuthorizeError::Redirect(url) => Redirect::to(&url).into_response(),
        AuthorizeError::Service(e) => service_error(e),
    }
}

async fn run(app: &AppState, session: &Session, params: Vec<(String, String)>) -> Response {
    let (req, _client) = match authorize::validate(app, &params).await {
        Ok(ok) => ok,
        Err(e) => return authorize_error(e),
    };
    let login = match current_login(app, session).await {
        Ok(login) => login,
        Err(e) => return service_error(e),
    };
    match authorize::proceed(app, &req, login.as_ref()).await {
        Ok(step) => step_response(session, step).await,
        Err(e) => authorize_error(e),
    }
}

/// `GET /oauth2/authorize`.
pub async fn authorize_get(
    State(app): State<AppState>,
    session: Session,
    uri: axum::http::Uri,
) -> Response {
    let params = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    run(&app, &session, params).await
}

/// `POST /oauth2/authorize` (form-encoded). A cross-site POST does not carry the
/// `SameSite=Lax` browser cookie, so a valid request is answered with a 303 to the same
/// request as a GET, which does carry it (single sign-on, `prompt=none`).
pub async fn authorize_post(State(app): State<AppState>, form: PageForm) -> Response {
    if let Err(e) = authorize::validate(&app, &form.0).await {
        return authorize_error(e);
    }
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &form.0 {
        ser.append_pair(k, v);
    }
    Redirect::to(&format!("/oauth2/authorize?{}", ser.finish())).into_response()
}

/// The page of a parked request that is gone (or was never this browser's).
pub(super) fn expired_request() -> Response {
    message(StatusCode::BAD_REQUEST, Msg::RequestExpired)
}

/// The parked request `id` when this browser parked it and it is still there; else the
/// page to show. A request parked by another browser is refused like an expired one:
/// a sign-in or consent link handed to someone else leads nowhere.
pub(super) async fn parked_here(
    app: &AppState,
    session: &Session,
    id: &str,
) -> Result<AuthorizeRequest, Response> {
    if !owns_request(session, id).await {
        tracing::debug!("parked request of another browser refused");
        return Err(expired_request());
    }
    match authorize::parked(app, id).await {
        Ok(Some(req)) => Ok(req),
        Ok(None) => Err(expired_request()),
        Err(e) => Err(service_error(e)),
    }
}

async fn consent_request(
    app: &AppState,
    session: &Session,
    id: &str,
) -> Result<(AuthorizeRequest, BrowserLogin), Response> {
    let Some(login) = current_login(app, session).await.map_err(service_error)? else {
        return Err(Redirect::to(&with_request("/login", id)).into_response());
    };
    Ok((parked_here(app, session, id).await?, login))
}

/// `GET /consent`.
pub async fn consent_get(
    State(app): State<AppState>,
    session: Session,
    AxumQuery(q): AxumQuery<HashMap<String, String>>,
) -> Response {
    let Some(id) = q.get("request") else {
        return expired_request();
    };
    let (req, _) = match consent_request(&app, &session, id).await {
        Ok(ok) => ok,
        Err(r) => return r,
    };
    let csrf = match csrf_token(&session).await {
        Ok(t) => t,
        Err(e) => return service_error(e),
    };
    let client_name = match clients::find(&app, &req.client_id).await {
        Ok(Some(c)) => c.client_name.clone(),
        Ok(None) => return expired_request(),
        Err(e) => return service_error(e),
    };
    let scopes = req
        .scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    page(
        StatusCode::OK,
        ConsentPage {
            csrf,
            request: id.clone(),
            client_name,
            scopes,
        },
    )
}

/// `POST /consent`: allow (remembered) or deny (`access_denied` to the client).
pub async fn consent_post(
    State(app): State<AppState>,
    session: Session,
    form: PageForm,
) -> Response {
    if !csrf_ok(&session, form.get("csrf")).await {
        return csrf_refused();
    }
    let Some(id) = form.get("request") else {
        return expired_request();
    };
    let (mut req, login) = match consent_request(&app, &session, id).await {
        Ok(ok) => ok,
        Err(r) => return r,
    };
    let _ = authorize::unpark(&app, id).await;
    if form.get("decision") != Some("allow") {
        let url =
            authorize::error_redirect(&app, &req, "access_denied", "the user denied the request");
        return Redirect::to(&url).into_response();
    }
    if let Err(e) = authorize::grant_consent(&app, &login.user_id, &req).await {
        return service_error(e);
    }
    // The consent stands for this user only: should the request be parked again (its
    // `max_age` passed while the page was open), whoever signs in next is asked anew
    // unless it is the same user.
    req.consent_by = Some(login.user_id.clone());
    match authorize::proceed(&app, &req, Some(&login)).await {
        Ok(step) => step_response(&session, step).await,
        Err(e) => authorize_error(e),
    }
}
