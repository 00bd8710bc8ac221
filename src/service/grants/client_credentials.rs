//! The client credentials grant (RFC 6749 §4.4) for confidential service clients: an
//! access token whose `sub` is the client, with no session and no refresh token.

use crate::AppState;
use crate::service::clients::Client;
use crate::service::grants::password::resolve_scope;
use crate::service::tokens::{self, TokenResponse, TokenSubject};
use crate::service::{OAuthCode, OAuthError, ServiceError};

/// Runs the client credentials grant.
pub async fn grant(
    app: &AppState,
    client: &Client,
    requested_scope: Option<&str>,
) -> Result<TokenResponse, ServiceError> {
    if client.is_public() {
        return Err(OAuthError::new(
            OAuthCode::UnauthorizedClient,
            "a public client cannot use client_credentials",
        )
        .into());
    }
    let scope = resolve_scope(client, requested_scope)?;
    let subject = TokenSubject {
        sub: &client.client_id,
        roles: None,
        superuser: false,
    };
    let (access_token, _) = tokens::access_token(app, &subject, &client.client_id, None, &scope)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: app.config.access_token_ttl.as_secs(),
        refresh_token: None,
        scope,
        id_token: None,
    })
}
