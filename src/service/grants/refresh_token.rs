//! The refresh token grant (RFC 6749 §6) with rotation: each use returns a new refresh
//! token and spends the old one in one conditional update. Presenting a spent token is
//! treated as theft (RFC 9700 §4.14): `invalid_grant`, and its whole session ends.

use crate::AppState;
use crate::service::clients::Client;
use crate::service::tokens::{self, REFRESH_PREFIX, TokenResponse, UserGrant};
use crate::service::{OAuthCode, OAuthError, ServiceError, feed, scope};
use crate::store::{RefreshTokenRecord, Rotation};
use crate::token::opaque::PlainToken;

fn invalid() -> ServiceError {
    OAuthError::invalid_grant("the refresh token is invalid, expired or revoked").into()
}

/// Runs the refresh grant.
pub async fn grant(
    app: &AppState,
    client: &Client,
    presented: &str,
    requested_scope: Option<&str>,
) -> Result<TokenResponse, ServiceError> {
    let presented = PlainToken::presented(presented);
    let asked = requested_scope.map(scope::parse).transpose()?;
    let now = app.clock.now();
    if let Some(asked) = &asked
        && let Some(granted) = live_scope(app, &presented, client, now).await?
    {
        // RFC 6749 §6: a narrower scope only; checked before anything is spent. Only a
        // live, unused token of this client is checked here: any other goes on to the
        // rotation, which refuses it and, when it was already used, ends its session
        // whatever the scope asked (RFC 9700 §4.14).
        if !scope::within(asked, &scope::parse(&granted)?) {
            return Err(scope_exceeded());
        }
    }
    let next = PlainToken::generate(REFRESH_PREFIX);
    let record = RefreshTokenRecord {
        token_hash: next.hash(),
        session_id: String::new(),
        client_id: client.client_id.clone(),
        created_at: now,
        expires_at: now + app.config.refresh_token_ttl.as_secs() as i64,
        used_at: None,
    };
    let rotation = app
        .store
        .rotate_refresh_token(&presented.hash(), &client.client_id, &record, now)
        .await?;
    match rotation {
        Rotation::Rotated { session, user } => {
            let granted = match &asked {
                // Checked again on the rotated session: never wider than the grant.
                Some(a) if !scope::within(a, &scope::parse(&session.scope)?) => {
                    return Err(scope_exceeded());
                }
                Some(a) => scope::canonical(a),
                None => session.scope.clone(),
            };
            tokens::respond(
                app,
                &UserGrant {
                    user: &user,
                    client_id: &client.client_id,
                    sid: &session.id,
                    auth_time: session.auth_time,
                    scope: &granted,
                    refresh: Some(&next),
                    nonce: None,
                    with_id_token: app.config.id_token_on_refresh,
                },
            )
            .await
        }
        Rotation::Reused { ended } => {
            if !ended.is_empty() {
                tracing::warn!(ended = ended.len(), "refresh token reused: session ended");
                feed::publish(app, &ended).await;
            }
            Err(invalid())
        }
        Rotation::Invalid => Err(invalid()),
    }
}

fn scope_exceeded() -> ServiceError {
    OAuthError::new(
        OAuthCode::InvalidScope,
        "the requested scope exceeds the original grant",
    )
    .into()
}

/// The scope of the session of `token` when the token is live: issued to `client`, not
/// used, not expired, and its session not ended. `None` for anything else.
async fn live_scope(
    app: &AppState,
    token: &PlainToken,
    client: &Client,
    now: i64,
) -> Result<Option<String>, ServiceError> {
    let Some(rt) = app.store.find_refresh(&token.hash()).await? else {
        return Ok(None);
    };
    if rt.client_id != client.client_id || rt.used_at.is_some() || rt.expires_at <= now {
        return Ok(None);
    }
    Ok(app
        .store
        .find_session(&rt.session_id)
        .await?
        .filter(|s| s.ended_at.is_none())
        .map(|s| s.scope))
}
