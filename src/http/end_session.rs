//! RP-initiated logout 1.0 at the end-session endpoint (`GET`/`POST /oauth2/logout`):
//! `id_token_hint`, `client_id`, `post_logout_redirect_uri` (registered ones only) and
//! `state`. A confirmation page is shown when the hint is missing or names another user
//! than the browser's; then the browser session and the hinted session end.

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
use crate::service::authorize::with_query;
use crate::service::{clients, feed};
use crate::templates::{LogoutPage, MessagePage};
use crate::token::jwt;

/// The verified facts of an `id_token_hint`.
struct Hint {
    client_id: String,
    sub: String,
    sid: Option<String>,
}

fn parse_hint(app: &AppState, token: &str) -> Option<Hint> {
    let verified = jwt::verify(&app.keys.current(), token).ok()?;
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

fn bad(why: &str) -> Response {
    message(
        StatusCode::BAD_REQUEST,
        "This sign-out request is not valid",
        why,
    )
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
    let hint = match get("id_token_hint") {
        Some(t) => match parse_hint(app, t) {
            Some(h) => Some(h),
            None => return bad("The id_token_hint is not an ID token issued by usher."),
        },
        None => None,
    };
    let client_id = match (
        hint.as_ref().map(|h| h.client_id.as_str()),
        get("client_id"),
    ) {
        (Some(a), Some(b)) if a != b => return bad("client_id does not match the id_token_hint."),
        (a, b) => a.or(b).map(str::to_owned),
    };
    let client = match &client_id {
        Some(id) => match clients::find(app, id).await {
            Ok(Some(c)) => Some(c),
            Ok(None) => return bad("The client is not registered."),
            Err(e) => return service_error(e),
        },
        None => None,
    };
    let target = match get("post_logout_redirect_uri") {
        Some(uri) => match &client {
            Some(c) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => Some(uri.to_owned()),
            _ => return bad("The post_logout_redirect_uri is not registered for this client."),
        },
        None => None,
    };
    let login = current_login(app, session).await;
    let matches = match (&hint, &login) {
        (Some(h), Some(l)) => h.sub == l.user_id,
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
                title: "You are signed out".into(),
                message: "You have signed out of usher.".into(),
                is_error: false,
                link: Some(("/login".into(), "Sign in again".into())),
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
