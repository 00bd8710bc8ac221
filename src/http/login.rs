//! The sign-in (`/login`) and sign-up (`/signup`) pages: after a successful login the
//! browser session starts (or is renewed for the same user) and a parked authorization
//! request goes on, provided this browser parked it.

use axum::extract::{Query as AxumQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::SecretString;
use std::collections::HashMap;
use tower_sessions::Session;

use super::authorize::{
    authorize_error, expired_request, parked_here, step_response, with_request,
};
use super::extract::Meta;
use super::pages::{
    PageForm, csrf_ok, csrf_refused, csrf_token, current_login, form_errors, owns_request, page,
    safe_return, service_error, set_login,
};
use crate::AppState;
use crate::service::accounts::{self, LoginMethod, SignUp};
use crate::service::authorize::{self, BrowserLogin};
use crate::service::{RequestMeta, ServiceError, clients, sessions};
use crate::templates::{FormError, LoginPage, SignupPage};

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
        let req = match parked_here(app, session, id).await {
            Ok(req) => req,
            Err(page) => return page,
        };
        if login.is_empty() {
            login = req.login_hint.clone().unwrap_or_default();
        }
        client_name = clients::find(app, &req.client_id)
            .await
            .ok()
            .flatten()
            .map(|c| c.client_name.clone());
    }
    let signup_href = match request {
        Some(id) => with_request("/signup", id),
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
    login: &crate::store::VerifiedLogin,
    meta: &RequestMeta,
    request: Option<&str>,
    return_to: Option<String>,
) -> Response {
    let started = match browser_session(app, session, user_id, meta, login).await {
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
    let mut req = match parked_here(app, session, id).await {
        Ok(req) => req,
        Err(page) => return page,
    };
    let _ = authorize::unpark(app, id).await;
    // The user has just entered their password for this request: that login satisfies
    // `prompt=login` and `max_age` (even `max_age=0` once the clock has ticked since).
    req.prompt_login = false;
    req.max_age = None;
    match authorize::proceed(app, &req, Some(&login)).await {
        Ok(step) => step_response(session, step).await,
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
    login: &crate::store::VerifiedLogin,
) -> Result<crate::store::SessionRecord, ServiceError> {
    if let Some(previous) = current_login(app, session).await? {
        if previous.user_id == user_id {
            if let Some(renewed) =
                sessions::reauthenticate_browser(app, &previous.sid, login).await?
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
    sessions::start_browser(app, user_id, meta, login).await
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
    if let Some(id) = request
        && !owns_request(&session, id).await
    {
        return expired_request();
    }
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
                &ok.verified,
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
        Some(id) => with_request("/login", id),
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

/// `GET /signup`. A `request` that cannot be a request id is not carried.
pub async fn signup_get(
    session: Session,
    AxumQuery(q): AxumQuery<HashMap<String, String>>,
) -> Response {
    signup_page(
        &session,
        q.get("request")
            .map(String::as_str)
            .filter(|id| authorize::is_request_id(id)),
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
    if let Some(id) = request
        && !owns_request(&session, id).await
    {
        return expired_request();
    }
    let login = form.get("login").unwrap_or("").trim().to_owned();
    let email = form.get("email").unwrap_or("").trim().to_owned();
    let input = SignUp {
        login: login.clone(),
        password: SecretString::from(form.get("password").unwrap_or("").to_owned()),
        email: (!email.is_empty()).then(|| email.clone()),
    };
    let errors = match accounts::sign_up_and_login(&app, input, &meta).await {
        Ok((profile, login)) => {
            return signed_in(&app, &session, &profile.id, &login, &meta, request, None).await;
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
