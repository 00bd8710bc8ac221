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
    if let Some(asked) = &asked {
        // RFC 6749 §6: a narrower scope only; checked before anything is spent.
        let Some(session) = session_of(app, &presented).await? else {
            return Err(invalid());
        };
        if !scope::within(asked, &scope::parse(&session)?) {
            return Err(OAuthError::new(
                OAuthCode::InvalidScope,
                "the requested scope exceeds the original grant",
            )
            .into());
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

/// The scope of the session a live refresh token belongs to.
async fn session_of(app: &AppState, token: &PlainToken) -> Result<Option<String>, ServiceError> {
    let Some(sid) = app.store.find_refresh_session(&token.hash()).await? else {
        return Ok(None);
    };
    Ok(app.store.find_session(&sid).await?.map(|s| s.scope))
}
