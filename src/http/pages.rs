//! Shared pieces of usher's HTML pages: rendering with the page security headers, the
//! browser login kept in the browser session, CSRF tokens (synchronizer pattern), page
//! forms, and safe return addresses.

use axum::extract::{FromRequest, Request};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::Session;

use super::extract::read_body;
use crate::AppState;
use crate::service::authorize::{BrowserLogin, PARKED_TTL};
use crate::service::{ServiceError, sessions};
use crate::templates::{FormError, MessagePage, Msg, Notice};
use crate::token::constant_time_eq;
use crate::token::opaque::random_id;

/// Content-Security-Policy of every page: no script at all, styles from usher only.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Renders a page with `status` and no-store caching; a render failure is a 500 page.
pub fn page(status: StatusCode, template: impl askama::Template) -> Response {
    match template.render() {
        Ok(html) => {
            let mut response = (status, html).into_response();
            let h = response.headers_mut();
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "page rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A one-message page.
pub fn message(status: StatusCode, msg: Msg) -> Response {
    page(
        status,
        MessagePage {
            msg,
            is_error: status.is_client_error() || status.is_server_error(),
        },
    )
}

/// A service failure shown as a page (never a JSON body, a raw error or a developer
/// string: the page says only what kind of failure it was).
pub fn service_error(e: ServiceError) -> Response {
    match e {
        ServiceError::Unavailable {
            internal,
            retry_after,
            ..
        } => {
            tracing::warn!(cause = %internal, "page unavailable");
            let mut r = message(StatusCode::SERVICE_UNAVAILABLE, Msg::Unavailable);
            r.headers_mut()
                .insert("retry-after", HeaderValue::from(retry_after.max(1)));
            r
        }
        ServiceError::Internal(internal) => {
            tracing::error!(cause = %internal, "page failed");
            message(StatusCode::INTERNAL_SERVER_ERROR, Msg::Failed)
        }
        other => {
            tracing::debug!(error = %other, "page request refused");
            message(StatusCode::BAD_REQUEST, Msg::NotDone)
        }
    }
}

/// Session keys.
const LOGIN: &str = "login";
const CSRF: &str = "csrf";
const NOTICE: &str = "notice";
const ERRORS: &str = "errors";
const REQUESTS: &str = "requests";

/// Most parked-request ids one browser session remembers (the newest are kept).
const MAX_REQUESTS: usize = 16;

fn session_failed(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Unavailable {
        detail: "browser sessions are unavailable",
        retry_after: 5,
        internal: e.to_string(),
    }
}

/// The CSRF token of this browser session (created on first use).
pub async fn csrf_token(session: &Session) -> Result<String, ServiceError> {
    if let Some(t) = session.get::<String>(CSRF).await.map_err(session_failed)? {
        return Ok(t);
    }
    let token = random_id(24);
    session.insert(CSRF, &token).await.map_err(session_failed)?;
    Ok(token)
}

/// True when `presented` is this session's CSRF token (constant time).
pub async fn csrf_ok(session: &Session, presented: Option<&str>) -> bool {
    match (session.get::<String>(CSRF).await.ok().flatten(), presented) {
        (Some(expected), Some(given)) => constant_time_eq(expected.as_bytes(), given.as_bytes()),
        _ => false,
    }
}

/// The page answered to a forged or stale form.
pub fn csrf_refused() -> Response {
    message(StatusCode::FORBIDDEN, Msg::FormRefused)
}

/// This browser's login, if its usher session is still live: neither ended (the feed,
/// then the store, which remembers ended sessions longer than the feed) nor expired. A
/// dead login is forgotten. Fails only when the store cannot answer.
pub async fn current_login(
    app: &AppState,
    session: &Session,
) -> Result<Option<BrowserLogin>, ServiceError> {
    let login = match session.get::<BrowserLogin>(LOGIN).await {
        Ok(login) => login,
        // A record written by another version: no login.
        Err(tower_sessions::session::Error::SerdeJson(_)) => None,
        Err(e) => return Err(session_failed(e)),
    };
    let Some(login) = login else {
        return Ok(None);
    };
    if sessions::live_browser(app, &login.sid, &login.user_id)
        .await?
        .is_none()
    {
        let _ = session.remove_value(LOGIN).await;
        return Ok(None);
    }
    Ok(Some(login))
}

/// Records a fresh login: a new session id (no fixation), a new CSRF token, and the
/// cookie's expiry set to the usher session's (a browser login never outlives it).
pub async fn set_login(
    session: &Session,
    login: &BrowserLogin,
    expires_at: i64,
) -> Result<(), ServiceError> {
    session.cycle_id().await.map_err(session_failed)?;
    session.insert(LOGIN, login).await.map_err(session_failed)?;
    session
        .insert(CSRF, random_id(24))
        .await
        .map_err(session_failed)?;
    if let Ok(at) = time::OffsetDateTime::from_unix_timestamp(expires_at) {
        session.set_expiry(Some(tower_sessions::Expiry::AtDateTime(at)));
    }
    Ok(())
}

/// Remembers that this browser parked the authorization request `id`: only this
/// browser may resume it (a sign-in link sent to someone else is refused).
pub async fn remember_request(session: &Session, id: &str) -> Result<(), ServiceError> {
    let mut ids = session
        .get::<Vec<String>>(REQUESTS)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    ids.push(id.to_owned());
    if ids.len() > MAX_REQUESTS {
        ids.drain(..ids.len() - MAX_REQUESTS);
    }
    session.insert(REQUESTS, ids).await.map_err(session_failed)
}

/// True when this browser parked the authorization request `id`.
pub async fn owns_request(session: &Session, id: &str) -> bool {
    session
        .get::<Vec<String>>(REQUESTS)
        .await
        .ok()
        .flatten()
        .is_some_and(|ids| ids.iter().any(|own| own == id))
}

/// Middleware inside the session layer: a browser session without a login that this
/// request created or changed (a CSRF token, a parked request) lives as long as a
/// parked request ([`PARKED_TTL`]) rather than `USHER_BROWSER_SESSION_TTL`, so that
/// anonymous page views do not pile up records for days. A signed-in session keeps the
/// expiry [`set_login`] gave it.
pub async fn anonymous_expiry(req: Request, next: axum::middleware::Next) -> Response {
    let session = req.extensions().get::<Session>().cloned();
    let response = next.run(req).await;
    if let Some(session) = session
        && session.is_modified()
        && matches!(session.get::<BrowserLogin>(LOGIN).await, Ok(None))
    {
        let ttl = time::Duration::seconds(PARKED_TTL as i64);
        session.set_expiry(Some(tower_sessions::Expiry::OnInactivity(ttl)));
    }
    response
}

/// Forgets the login and everything else of this browser session.
pub async fn clear_login(session: &Session) {
    let _ = session.flush().await;
}

/// Stores a one-time notice and errors for the next page (post/redirect/get).
pub async fn flash(session: &Session, notice: Option<Notice>, errors: &[FormError]) {
    if let Some(n) = notice {
        let _ = session.insert(NOTICE, n).await;
    }
    if !errors.is_empty() {
        let _ = session.insert(ERRORS, errors).await;
    }
}

/// Takes the one-time notice and errors.
pub async fn take_flash(session: &Session) -> (Option<Notice>, Vec<FormError>) {
    let notice = session.remove::<Notice>(NOTICE).await.ok().flatten();
    let errors = session
        .remove::<Vec<FormError>>(ERRORS)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    (notice, errors)
}

/// The errors a form shows for a refused change: each failing field with its code, or
/// the code of a conflict or refusal. Any other failure is returned as it is.
pub fn form_errors(e: ServiceError) -> Result<Vec<FormError>, ServiceError> {
    match e {
        ServiceError::Validation(errors) => Ok(errors
            .into_iter()
            .map(|e| FormError {
                field: e.field,
                code: e.code.to_owned(),
            })
            .collect()),
        ServiceError::Conflict { code, .. } | ServiceError::Forbidden { code, .. } => {
            Ok(vec![FormError {
                field: String::new(),
                code: code.to_owned(),
            }])
        }
        other => Err(other),
    }
}

/// A return address inside usher's account pages, or `None`.
pub fn safe_return(target: Option<&str>) -> Option<String> {
    let t = target?;
    let ok = (t == "/account" || t.starts_with("/account/") || t.starts_with("/account?"))
        && !t.contains("//")
        && !t.contains('\\')
        && t.chars().all(|c| c.is_ascii_graphic());
    ok.then(|| t.to_owned())
}

/// Redirects an anonymous visitor to the login page, coming back to `here` (303).
pub fn to_login(here: &str) -> Response {
    let back = safe_return(Some(here)).unwrap_or_else(|| "/account".to_owned());
    let mut ser = form_urlencoded::Serializer::new(String::new());
    ser.append_pair("return_to", &back);
    Redirect::to(&format!("/login?{}", ser.finish())).into_response()
}

/// A form-encoded page body.
#[derive(Debug)]
pub struct PageForm(pub Vec<(String, String)>);

impl PageForm {
    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl FromRequest<AppState> for PageForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state.config.max_body_bytes)
            .await
            .map_err(|_| message(StatusCode::PAYLOAD_TOO_LARGE, Msg::FormTooLarge))?;
        Ok(Self(form_urlencoded::parse(&bytes).into_owned().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Return addresses only ever point into usher's account pages.
    #[test]
    fn return_addresses_stay_inside() {
        assert_eq!(
            safe_return(Some("/account/history")).as_deref(),
            Some("/account/history")
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/account//evil",
            "/login",
            "/account\\x",
            "/account/a b",
        ] {
            assert_eq!(safe_return(Some(bad)), None, "{bad}");
        }
    }
}
