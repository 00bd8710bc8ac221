//! Token introspection (RFC 7662) for confidential clients. Access tokens are answered
//! from memory (signature, ended sessions, revoked ids, the user's current roles and
//! block flag); refresh tokens, which only their own client may introspect, from the
//! database. Anything usher did not issue, or no longer honours, is `active: false`.

use serde_json::{Value, json};

use super::clients::Client;
use super::tokens::REFRESH_PREFIX;
use super::{ServiceError, bearer};
use crate::AppState;
use crate::token::opaque::PlainToken;

fn inactive() -> Value {
    json!({"active": false})
}

/// Introspects `token` for `client`.
pub async fn introspect(
    app: &AppState,
    client: &Client,
    token: &str,
) -> Result<Value, ServiceError> {
    if token.starts_with(REFRESH_PREFIX) {
        return refresh(app, client, token).await;
    }
    let Ok(claims) = bearer::authenticate(app, token) else {
        return Ok(inactive());
    };
    let mut body = json!({
        "active": true,
        "token_type": "Bearer",
        "scope": claims.scope,
        "client_id": claims.client_id,
        "sub": claims.sub,
        "aud": app.config.audience,
        "iss": app.config.issuer,
        "exp": claims.exp,
        "iat": claims.iat,
        "jti": claims.jti,
    });
    if let Some(sid) = &claims.sid {
        let Some(user) = app.authz.user(app.store.as_ref(), &claims.sub).await? else {
            return Ok(inactive());
        };
        if user.blocked {
            return Ok(inactive());
        }
        body["sid"] = json!(sid);
        body["username"] = json!(user.login);
        body["roles"] = json!(app.authz.role_names(&user));
        if user.superuser {
            body["superuser"] = json!(true);
        }
    }
    Ok(body)
}

async fn refresh(app: &AppState, client: &Client, token: &str) -> Result<Value, ServiceError> {
    let hash = PlainToken::presented(token).hash();
    let Some(rt) = app.store.find_refresh(&hash).await? else {
        return Ok(inactive());
    };
    let now = app.clock.now();
    if rt.client_id != client.client_id || rt.used_at.is_some() || rt.expires_at <= now {
        return Ok(inactive());
    }
    let Some(session) = app.store.find_session(&rt.session_id).await? else {
        return Ok(inactive());
    };
    if session.ended_at.is_some() || app.feed.is_session_ended(&session.id) {
        return Ok(inactive());
    }
    match app.authz.user(app.store.as_ref(), &session.user_id).await? {
        // No `token_type`: RFC 7662 §2.2 means an RFC 6749 §7.1 access token type, which
        // a refresh token does not have.
        Some(user) if !user.blocked => Ok(json!({
            "active": true,
            "scope": session.scope,
            "client_id": rt.client_id,
            "sub": session.user_id,
            "username": user.login,
            "sid": session.id,
            "exp": rt.expires_at,
            "iat": rt.created_at,
            "iss": app.config.issuer,
        })),
        _ => Ok(inactive()),
    }
}
