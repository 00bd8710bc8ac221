//! The authorization endpoint (`GET`/`POST /oauth2/authorize`) and the pages of the flow:
//! sign-in (`/login`), sign-up (`/signup`) and consent (`/consent`).

use axum::extract::{Query as AxumQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::SecretString;
use std::collections::HashMap;
use tower_sessions::Session;

use super::extract::Meta;
use super::pages::{
    PageForm, csrf_ok, csrf_refused, csrf_token, current_login, form_errors, message, page,
    safe_return, service_error, set_login,
};
use crate::AppState;
use crate::service::accounts::{self, LoginMethod, SignUp};
use crate::service::authorize::{
    self, AuthorizeError, AuthorizeRequest, BrowserLogin, Step, Untrusted,
};
use crate::service::{RequestMeta, ServiceError, clients, sessions};
use crate::templates::{ConsentPage, FormError, LoginPage, Msg, SignupPage};

fn step_response(step: Step) -> Response {
    match step {
        Step::Redirect(url) => Redirect::to(&url).into_response(),
        Step::Login(id) => Redirect::to(&format!("/login?request={id}")).into_response(),
        Step::Consent(id) => Redirect::to(&format!("/consent?request={id}")).into_response(),
    }
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

fn authorize_error(e: AuthorizeError) -> Response {
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
        Ok(step) => step_response(step),
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

fn expired_request() -> Response {
    message(StatusCode::BAD_REQUEST, Msg::RequestExpired)
}

async fn login_page(
    app: &AppState,
    session: &Session,
    request: Option<&str>,
    return_to: Option<String>,
    login: String,
    failed: bool,
    status: StatusCode,
) -> Response {
    let csrf = match csrf_token(session).await {
        Ok(t) => t,
        Err(e) => return service_error(e),
    };
    let mut client_name = None;
    let mut login = login;
    if let Some(id) = request {
        match authorize::parked(app, id).await {
            Ok(Some(req)) => {
                if login.is_empty() {
                    login = req.login_hint.clone().unwrap_or_default();
                }
                client_name = clients::find(app, &req.client_id)
                    .await
                    .ok()
                    .flatten()
                    .map(|c| c.client_name.clone());
            }
            Ok(None) => return expired_request(),
            Err(e) => return service_error(e),
        }
    }
    let signup_href = match request {
        Some(id) => format!("/signup?request={id}"),
        None => "/signup".to_owned(),
    };
    page(
        status,
        LoginPage {
            csrf,
            login,
            failed,
            request: request.map(str::to_owned),
            return_to,
            client_name,
            signup_href,
        },
    )
}

/// `GET /login`.
pub async fn login_get(
    State(app): State<AppState>,
    session: Session,
    AxumQuery(q): AxumQuery<HashMap<String, String>>,
) -> Response {
    let request = q.get("request").map(String::as_str);
    let return_to = safe_return(q.get("return_to").map(String::as_str));
    if request.is_none() {
        match current_login(&app, &session).await {
            Ok(Some(_)) => {
                return Redirect::to(return_to.as_deref().unwrap_or("/account")).into_response();
            }
            Ok(None) => {}
            Err(e) => return service_error(e),
        }
    }
    login_page(
        &app,
        &session,
        request,
        return_to,
        String::new(),
        false,
        StatusCode::OK,
    )
    .await
}

/// After a successful login or sign-up: start the browser session (or, for the same
/// user signing in again, renew it, keeping the sessions opened through it), then
/// continue the parked authorization request or go to the return address. Either way
/// the cookie gets a new session id (no fixation).
async fn signed_in(
    app: &AppState,
    session: &Session,
    user_id: &str,
    event: &crate::store::NewLoginEvent,
    meta: &RequestMeta,
    request: Option<&str>,
    return_to: Option<String>,
) -> Response {
    let started = match browser_session(app, session, user_id, meta, event).await {
        Ok(s) => s,
        Err(e) => return service_error(e),
    };
    let login = BrowserLogin {
        sid: started.id,
        user_id: user_id.to_owned(),
        auth_time: started.auth_time,
    };
    if let Err(e) = set_login(session, &login, started.expires_at).await {
        return service_error(e);
    }
    let Some(id) = request else {
        return Redirect::to(return_to.as_deref().unwrap_or("/account")).into_response();
    };
    let mut req = match authorize::parked(app, id).await {
        Ok(Some(req)) => req,
        Ok(None) => return expired_request(),
        Err(e) => return service_error(e),
    };
    let _ = authorize::unpark(app, id).await;
    // The user has just entered their password for this request.
    req.prompt_login = false;
    match authorize::proceed(app, &req, Some(&login)).await {
        Ok(step) => step_response(step),
        Err(e) => authorize_error(e),
    }
}

/// The browser session for a login of `user_id`: the current one renewed when the same
/// user signs in again, else a new one (a different user's is ended first).
async fn browser_session(
    app: &AppState,
    session: &Session,
    user_id: &str,
    meta: &RequestMeta,
    event: &crate::store::NewLoginEvent,
) -> Result<crate::store::SessionRecord, ServiceError> {
    if let Some(previous) = current_login(app, session).await? {
        if previous.user_id == user_id {
            if let Some(renewed) =
                sessions::reauthenticate_browser(app, &previous.sid, event).await?
            {
                return Ok(renewed);
            }
        } else {
            match sessions::end_one(app, &previous.user_id, &previous.sid, "logout").await {
                Ok(()) | Err(ServiceError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    sessions::start_browser(app, user_id, meta, event).await
}

/// `POST /login`.
pub async fn login_post(
    State(app): State<AppState>,
    session: Session,
    Meta(meta): Meta,
    form: PageForm,
) -> Response {
    if !csrf_ok(&session, form.get("csrf")).await {
        return csrf_refused();
    }
    let request = form.get("request").filter(|r| !r.is_empty());
    let return_to = safe_return(form.get("return_to"));
    let login = form.get("login").unwrap_or("").trim().to_owned();
    let password = SecretString::from(form.get("password").unwrap_or("").to_owned());
    match accounts::check_credentials(&app, &login, &password, LoginMethod::LoginPage, &meta).await
    {
        Ok(ok) => {
            signed_in(
                &app,
                &session,
                &ok.user.id,
                &ok.event,
                &meta,
                request,
                return_to,
            )
            .await
        }
        Err(ServiceError::OAuth(_)) => {
            login_page(
                &app,
                &session,
                request,
                return_to,
                login,
                true,
                StatusCode::UNAUTHORIZED,
            )
            .await
        }
        Err(e) => service_error(e),
    }
}

async fn signup_page(
    session: &Session,
    request: Option<&str>,
    login: String,
    email: String,
    errors: Vec<FormError>,
    status: StatusCode,
) -> Response {
    let csrf = match csrf_token(session).await {
        Ok(t) => t,
        Err(e) => return service_error(e),
    };
    let login_href = match request {
        Some(id) => format!("/login?request={id}"),
        None => "/login".to_owned(),
    };
    page(
        status,
        SignupPage {
            csrf,
            errors,
            login,
            email,
            request: request.map(str::to_owned),
            login_href,
        },
    )
}

/// `GET /signup`.
pub async fn signup_get(
    session: Session,
    AxumQuery(q): AxumQuery<HashMap<String, String>>,
) -> Response {
    signup_page(
        &session,
        q.get("request").map(String::as_str),
        String::new(),
        String::new(),
        Vec::new(),
        StatusCode::OK,
    )
    .await
}

/// `POST /signup`: the same rules as the sign-up API; success signs the user in.
pub async fn signup_post(
    State(app): State<AppState>,
    session: Session,
    Meta(meta): Meta,
    form: PageForm,
) -> Response {
    if !csrf_ok(&session, form.get("csrf")).await {
        return csrf_refused();
    }
    let request = form.get("request").filter(|r| !r.is_empty());
    let login = form.get("login").unwrap_or("").trim().to_owned();
    let email = form.get("email").unwrap_or("").trim().to_owned();
    let input = SignUp {
        login: login.clone(),
        password: SecretString::from(form.get("password").unwrap_or("").to_owned()),
        email: (!email.is_empty()).then(|| email.clone()),
    };
    let errors = match accounts::sign_up(&app, input).await {
        Ok(profile) => {
            let event = crate::store::NewLoginEvent {
                user_id: profile.id.clone(),
                at: app.clock.now(),
                ip: meta.ip_text(),
                user_agent: meta.user_agent.clone(),
                method: "login_page",
                outcome: "success",
            };
            return signed_in(&app, &session, &profile.id, &event, &meta, request, None).await;
        }
        Err(e) => match form_errors(e) {
            Ok(errors) => errors,
            Err(e) => return service_error(e),
        },
    };
    signup_page(
        &session,
        request,
        login,
        email,
        errors,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

async fn consent_request(
    app: &AppState,
    session: &Session,
    id: &str,
) -> Result<(AuthorizeRequest, BrowserLogin), Response> {
    let Some(login) = current_login(app, session).await.map_err(service_error)? else {
        return Err(Redirect::to(&format!("/login?request={id}")).into_response());
    };
    match authorize::parked(app, id).await {
        Ok(Some(req)) => Ok((req, login)),
        Ok(None) => Err(expired_request()),
        Err(e) => Err(service_error(e)),
    }
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
    req.consent_given = true;
    match authorize::proceed(&app, &req, Some(&login)).await {
        Ok(step) => step_response(step),
        Err(e) => authorize_error(e),
    }
}
