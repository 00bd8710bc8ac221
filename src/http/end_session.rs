//! RP-initiated logout 1.0 at the end-session endpoint (`GET`/`POST /oauth2/logout`):
//! `id_token_hint`, `client_id`, `post_logout_redirect_uri` (registered ones only) and
//! `state`. A confirmation page is shown when the hint is missing, was signed by a key
//! usher no longer has, or names another session than the browser's (its `sid`, or the
//! browser session it was opened through); then the browser session and the hinted
//! session end.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;
use tower_sessions::Session;

use super::pages::{
    PageForm, clear_login, csrf_ok, csrf_refused, csrf_token, current_login, message, page,
    service_error,
};
use crate::AppState;
use crate::service::authorize::BrowserLogin;
use crate::service::redirect_uri::with_query;
use crate::service::{clients, feed};
use crate::templates::{LogoutPage, MessagePage, Msg};
use crate::token::jwt::{self, JwtError};

/// The verified facts of an `id_token_hint`.
struct Hint {
    client_id: String,
    sub: String,
    sid: Option<String>,
}

/// What an `id_token_hint` turned out to be.
enum HintCheck {
    /// An ID token of usher's.
    Valid(Hint),
    /// Signed by a key no longer in the ring: only a hint, so treated as absent.
    Stale,
    /// Anything else.
    Invalid,
}

fn check_hint(app: &AppState, token: &str) -> HintCheck {
    match jwt::verify(&app.keys.current(), token) {
        Err(JwtError::UnknownKid) => HintCheck::Stale,
        Err(_) => HintCheck::Invalid,
        Ok(verified) => match parse_hint(app, &verified) {
            Some(h) => HintCheck::Valid(h),
            None => HintCheck::Invalid,
        },
    }
}

fn parse_hint(app: &AppState, verified: &jwt::Verified) -> Option<Hint> {
    // Only an ID token (`typ: JWT`) is a hint; an access token (`at+jwt`) is not.
    if verified.header.get("typ").and_then(Value::as_str) != Some("JWT") {
        return None;
    }
    let c = &verified.claims;
    if c.get("iss").and_then(Value::as_str) != Some(app.config.issuer.as_str()) {
        return None;
    }
    let client_id = match c.get("aud")? {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.first()?.as_str()?.to_owned(),
        _ => return None,
    };
    Some(Hint {
        client_id,
        sub: c.get("sub")?.as_str()?.to_owned(),
        sid: c.get("sid").and_then(Value::as_str).map(str::to_owned),
    })
}

fn bad(why: Msg) -> Response {
    message(StatusCode::BAD_REQUEST, why)
}

/// True when the hint names this browser's login: the same user and the same session
/// (the browser session itself, or a session opened through it).
async fn hint_matches(app: &AppState, hint: &Hint, login: &BrowserLogin) -> Result<bool, Response> {
    let Some(sid) = hint.sid.as_deref() else {
        return Ok(false);
    };
    if hint.sub != login.user_id {
        return Ok(false);
    }
    if sid == login.sid {
        return Ok(true);
    }
    match app.store.find_session(sid).await {
        Ok(s) => Ok(s.is_some_and(|s| s.parent_sid.as_deref() == Some(login.sid.as_str()))),
        Err(e) => Err(service_error(e.into())),
    }
}

async fn run(
    app: &AppState,
    session: &Session,
    params: Vec<(String, String)>,
    posted: bool,
) -> Response {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let (hint, stale) = match get("id_token_hint").map(|t| check_hint(app, t)) {
        Some(HintCheck::Valid(h)) => (Some(h), false),
        Some(HintCheck::Stale) => (None, true),
        Some(HintCheck::Invalid) => return bad(Msg::LogoutBadHint),
        None => (None, false),
    };
    let client_id = match (
        hint.as_ref().map(|h| h.client_id.as_str()),
        get("client_id"),
    ) {
        (Some(a), Some(b)) if a != b => return bad(Msg::LogoutClientMismatch),
        (a, b) => a.or(b).map(str::to_owned),
    };
    let client = match &client_id {
        Some(id) => match clients::find(app, id).await {
            Ok(Some(c)) => Some(c),
            Ok(None) => return bad(Msg::LogoutUnknownClient),
            Err(e) => return service_error(e),
        },
        None => None,
    };
    let target = match get("post_logout_redirect_uri") {
        Some(uri) => match &client {
            Some(c) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => Some(uri.to_owned()),
            // A stale hint named the client, which can no longer be verified: no
            // redirect, but the viewer can still sign out.
            None if stale => None,
            _ => return bad(Msg::LogoutRedirectNotRegistered),
        },
        None => None,
    };
    let login = match current_login(app, session).await {
        Ok(login) => login,
        Err(e) => return service_error(e),
    };
    let matches = match (&hint, &login) {
        (Some(h), Some(l)) => match hint_matches(app, h, l).await {
            Ok(m) => m,
            Err(r) => return r,
        },
        (Some(_), None) => true,
        (None, _) => false,
    };
    let confirmed = posted && get("confirm") == Some("yes");
    if confirmed && !csrf_ok(session, get("csrf")).await {
        return csrf_refused();
    }
    if !matches && !confirmed {
        let csrf = match csrf_token(session).await {
            Ok(t) => t,
            Err(e) => return service_error(e),
        };
        let hidden = [
            "id_token_hint",
            "client_id",
            "post_logout_redirect_uri",
            "state",
        ]
        .iter()
        .filter_map(|k| get(k).map(|v| ((*k).to_owned(), v.to_owned())))
        .collect();
        let client_name = client.as_ref().map(|c| c.client_name.clone());
        return page(
            StatusCode::OK,
            LogoutPage {
                csrf,
                client_name,
                hidden,
            },
        );
    }
    let now = app.clock.now();
    let mut sids: Vec<String> = Vec::new();
    if let Some(l) = &login {
        sids.push(l.sid.clone());
    }
    if let Some(sid) = hint.as_ref().and_then(|h| h.sid.clone()) {
        sids.push(sid);
    }
    for sid in sids {
        match app.store.end_session_by_id(&sid, "logout", now).await {
            Ok(ended) => feed::publish(app, &ended).await,
            Err(e) => return service_error(e.into()),
        }
    }
    clear_login(session).await;
    match target {
        Some(uri) => {
            let url = match get("state") {
                Some(state) => with_query(&uri, &[("state", state)]),
                None => uri,
            };
            Redirect::to(&url).into_response()
        }
        None => page(
            StatusCode::OK,
            MessagePage {
                msg: Msg::SignedOut,
                is_error: false,
            },
        ),
    }
}

/// `GET /oauth2/logout`.
pub async fn logout_get(
    State(app): State<AppState>,
    session: Session,
    uri: axum::http::Uri,
) -> Response {
    let params = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    run(&app, &session, params, false).await
}

/// `POST /oauth2/logout` (the RP's form post, or the confirmation).
pub async fn logout_post(
    State(app): State<AppState>,
    session: Session,
    form: PageForm,
) -> Response {
    run(&app, &session, form.0, true).await
}
