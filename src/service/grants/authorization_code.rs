//! The authorization code grant (RFC 6749 §4.1.3): a code is spent once; it must come
//! from the same client with the same redirect URI and the PKCE verifier. A second use of
//! a code fails and ends the session its first use started (§4.1.2). The browser session
//! the code was issued in must still be live. A refresh token comes only with granted
//! `offline_access` (OIDC Core §11).

use std::time::Duration;

use crate::AppState;
use crate::service::authorize::{CodeGrant, code_key};
use crate::service::clients::Client;
use crate::service::tokens::{self, TokenResponse, UserGrant};
use crate::service::{OAuthError, RequestMeta, ServiceError, feed, pkce, scope, sessions};

fn invalid() -> ServiceError {
    OAuthError::invalid_grant("the authorization code is invalid, expired or already used").into()
}

/// The parameters of the grant.
#[derive(Debug)]
pub struct CodeRequest<'a> {
    /// `code`.
    pub code: &'a str,
    /// `redirect_uri`, which must equal the authorization request's.
    pub redirect_uri: Option<&'a str>,
    /// `code_verifier` (PKCE).
    pub code_verifier: Option<&'a str>,
}

async fn end_reused(app: &AppState, key: &str) -> Result<(), ServiceError> {
    let used = format!("{key}:used");
    match app.state.get(&used).await? {
        Some(sid) if sid != "pending" => {
            let ended = app
                .store
                .end_session_by_id(&sid, "code_reuse", app.clock.now())
                .await?;
            tracing::warn!(
                ended = ended.len(),
                "authorization code reused: session ended"
            );
            feed::publish(app, &ended).await;
        }
        Some(_) => {
            // The first use is still starting its session: it will end it itself.
            app.state
                .put_ttl(&format!("{key}:reused"), "1", Duration::from_secs(600))
                .await?;
        }
        None => {}
    }
    Ok(())
}

/// Runs the authorization code grant.
pub async fn grant(
    app: &AppState,
    client: &Client,
    input: &CodeRequest<'_>,
) -> Result<TokenResponse, ServiceError> {
    let key = code_key(input.code);
    let Some(json) = app.state.take(&key).await? else {
        end_reused(app, &key).await?;
        return Err(invalid());
    };
    let used = format!("{key}:used");
    let reuse_window = app.config.refresh_token_ttl.min(Duration::from_secs(3600));
    app.state.put_ttl(&used, "pending", reuse_window).await?;
    let code: CodeGrant =
        serde_json::from_str(&json).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let req = &code.request;
    if code.expires_at <= app.clock.now()
        || req.client_id != client.client_id
        || input.redirect_uri != Some(req.redirect_uri.as_str())
        || !pkce::verify(req.code_challenge.as_deref(), input.code_verifier)
    {
        return Err(invalid());
    }
    let Some(user) = app
        .store
        .find_user(&code.user_id)
        .await?
        .filter(|u| !u.blocked)
    else {
        return Err(invalid());
    };
    // The browser session must still be live: not ended (the store remembers longer
    // than the feed) and not expired.
    let Some(browser) = sessions::live_browser(app, &code.browser_sid, &user.id).await? else {
        return Err(invalid());
    };
    // The new session belongs to the viewer's browser, not to the client's server that
    // redeems the code: it takes the browser session's address and user agent.
    let device = RequestMeta {
        ip: browser.ip.as_deref().and_then(|ip| ip.parse().ok()),
        user_agent: browser.user_agent.clone(),
    };
    // OIDC Core §11: a refresh token only for granted `offline_access`, and only to a
    // client that may use it.
    let with_refresh =
        scope::has(&req.scope, "offline_access") && client.allows_grant("refresh_token");
    let (session, refresh) = sessions::start(
        app,
        sessions::NewSession {
            user_id: &user.id,
            client_id: &client.client_id,
            scope: &req.scope,
            auth_time: code.auth_time,
            meta: &device,
            login: None,
            parent_sid: Some(&code.browser_sid),
            with_refresh,
        },
    )
    .await?;
    app.state.put_ttl(&used, &session.id, reuse_window).await?;
    if app.state.take(&format!("{key}:reused")).await?.is_some() {
        let ended = app
            .store
            .end_session_by_id(&session.id, "code_reuse", app.clock.now())
            .await?;
        feed::publish(app, &ended).await;
        return Err(invalid());
    }
    tokens::respond(
        app,
        &UserGrant {
            user: &user,
            client_id: &client.client_id,
            sid: &session.id,
            auth_time: code.auth_time,
            scope: &req.scope,
            refresh: refresh.as_ref(),
            nonce: req.nonce.as_deref(),
            with_id_token: true,
        },
    )
    .await
}
