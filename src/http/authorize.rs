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
    PageForm, csrf_ok, csrf_refused, csrf_token, current_login, message, page, safe_return,
    service_error, set_login,
};
use crate::AppState;
use crate::service::accounts::{self, LoginMethod, SignUp};
use crate::service::authorize::{self, AuthorizeError, AuthorizeRequest, BrowserLogin, Step};
use crate::service::{RequestMeta, ServiceError, clients, sessions};
use crate::templates::{ConsentPage, LoginPage, SignupPage, scope_words};

fn step_response(step: Step) -> Response {
    match step {
        Step::Redirect(url) => Redirect::to(&url).into_response(),
        Step::Login(id) => Redirect::to(&format!("/login?request={id}")).into_response(),
        Step::Consent(id) => Redirect::to(&format!("/consent?request={id}")).into_response(),
    }
}

fn authorize_error(e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::Page(why) => message(
            StatusCode::BAD_REQUEST,
            "This sign-in request is not valid",
            why,
        ),
        AuthorizeError::Redirect(url) => Redirect::to(&url).into_response(),
        AuthorizeError::Service(e) => service_error(e),
    }
}

async fn run(app: &AppState, session: &Session, params: Vec<(String, String)>) -> Response {
    let (req, _client) = match authorize::validate(app, &params).await {
        Ok(ok) => ok,
        Err(e) => return authorize_error(e),
    };
    let login = current_login(app, session).await;
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

/// `POST /oauth2/authorize` (form-encoded).
pub async fn authorize_post(
    State(app): State<AppState>,
    session: Session,
    form: PageForm,
) -> Response {
    run(&app, &session, form.0).await
}

fn expired_request() -> Response {
    message(
        StatusCode::BAD_REQUEST,
        "This sign-in link has expired",
        "Go back to the app you came from and sign in again.",
    )
}

async fn login_page(
    app: &AppState,
    session: &Session,
    request: Option<&str>,
    return_to: Option<String>,
    login: String,
    error: Option<String>,
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
            error,
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
    if request.is_none() && current_login(&app, &session).await.is_some() {
        return Redirect::to(return_to.as_deref().unwrap_or("/account")).into_response();
    }
    login_page(
        &app,
        &session,
        request,
        return_to,
        String::new(),
        None,
        StatusCode::OK,
    )
    .await
}

/// After a successful login or sign-up: start the browser session, then continue the
/// parked authorization request or go to the return address.
async fn signed_in(
    app: &AppState,
    session: &Session,
    user_id: &str,
    event: &crate::store::NewLoginEvent,
    meta: &RequestMeta,
    request: Option<&str>,
    return_to: Option<String>,
) -> Response {
    if let Some(previous) = current_login(app, session).await {
        let _ = sessions::end_one(app, &previous.user_id, &previous.sid, "logout").await;
    }
    let started = match sessions::start_browser(app, user_id, meta, event).await {
        Ok(s) => s,
        Err(e) => return service_error(e),
    };
    let login = BrowserLogin {
        sid: started.id,
        user_id: user_id.to_owned(),
        auth_time: started.auth_time,
    };
    if let Err(e) = set_login(session, &login).await {
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
            let error = Some("The login or the password is wrong.".to_owned());
            login_page(
                &app,
                &session,
                request,
                return_to,
                login,
                error,
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
    errors: Vec<String>,
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
        Err(ServiceError::Validation(errors)) => errors
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect(),
        Err(ServiceError::Conflict { detail, .. }) => vec![detail.into_owned()],
        Err(e) => return service_error(e),
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
    let Some(login) = current_login(app, session).await else {
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
        .map(scope_words)
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
