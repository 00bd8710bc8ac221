//! Token revocation (RFC 7009). Revoking a user's refresh or access token ends its
//! session and the sessions opened through it (every token of them is refused from
//! then on), but not the browser session it was opened through: one client's
//! revocation does not sign the user out of usher's pages. Revoking a service token
//! records its `jti` on the change feed until it expires. A token of another client, an
//! unknown or an expired one changes nothing and gets the same 200 (§2.2).

use super::clients::Client;
use super::tokens::REFRESH_PREFIX;
use super::{ServiceError, feed};
use crate::AppState;
use crate::token::jwt;
use crate::token::opaque::PlainToken;

/// Revokes `token` on behalf of `client`.
pub async fn revoke(app: &AppState, client: &Client, token: &str) -> Result<(), ServiceError> {
    let now = app.clock.now();
    if token.starts_with(REFRESH_PREFIX) {
        let hash = PlainToken::presented(token).hash();
        if let Some(rt) = app.store.find_refresh(&hash).await?
            && rt.client_id == client.client_id
        {
            let ended = app
                .store
                .end_session_and_children(&rt.session_id, "revoked", now)
                .await?;
            feed::publish(app, &ended).await;
            tracing::info!(client_id = %client.client_id, "refresh token revoked: session ended");
        }
        return Ok(());
    }
    let Ok(verified) = jwt::verify(&app.keys.current(), token) else {
        return Ok(());
    };
    let claims = &verified.claims;
    let text = |k: &str| claims.get(k).and_then(|v| v.as_str());
    let exp = claims.get("exp").and_then(|v| v.as_i64()).unwrap_or(0);
    let ours = text("iss") == Some(app.config.issuer.as_str());
    if !ours || text("client_id") != Some(client.client_id.as_str()) || exp <= now {
        return Ok(());
    }
    let changes = match (text("sid"), text("jti")) {
        (Some(sid), _) => {
            app.store
                .end_session_and_children(sid, "revoked", now)
                .await?
        }
        (None, Some(jti)) => vec![app.store.revoke_jti(jti, &client.client_id, now).await?],
        (None, None) => Vec::new(),
    };
    if !changes.is_empty() {
        feed::publish(app, &changes).await;
        tracing::info!(client_id = %client.client_id, "access token revoked");
    }
    Ok(())
}
