//! The resource owner password credentials grant (RFC 6749 §4.3), for first-party forms.
//! The password check is [`accounts::check_credentials`]; success starts a session.

use secrecy::SecretString;

use crate::AppState;
use crate::service::accounts::{self, LoginMethod};
use crate::service::clients::Client;
use crate::service::tokens::{self, TokenResponse, UserGrant};
use crate::service::{OAuthCode, OAuthError, RequestMeta, ServiceError, scope, sessions};

/// Resolves the scope of a new grant: the requested one, which must be within the
/// client's registered scope (`invalid_scope` otherwise), or the registered one.
pub fn resolve_scope(client: &Client, requested: Option<&str>) -> Result<String, ServiceError> {
    let allowed = scope::parse(&client.scope)?;
    match requested {
        None => Ok(scope::canonical(&allowed)),
        Some(text) => {
            let asked = scope::parse(text)?;
            if !scope::within(&asked, &allowed) {
                return Err(OAuthError::new(
                    OAuthCode::InvalidScope,
                    "the requested scope exceeds what the client may ask for",
                )
                .into());
            }
            Ok(scope::canonical(&asked))
        }
    }
}

/// Runs the password grant.
pub async fn grant(
    app: &AppState,
    client: &Client,
    username: &str,
    password: &SecretString,
    requested_scope: Option<&str>,
    meta: &RequestMeta,
) -> Result<TokenResponse, ServiceError> {
    let scope = resolve_scope(client, requested_scope)?;
    let login =
        accounts::check_credentials(app, username, password, LoginMethod::PasswordGrant, meta)
            .await?;
    let now = app.clock.now();
    let (session, refresh) = sessions::start(
        app,
        sessions::NewSession {
            user_id: &login.user.id,
            client_id: &client.client_id,
            scope: &scope,
            auth_time: now,
            meta,
            login: Some(&login.verified),
            parent_sid: None,
            with_refresh: true,
        },
    )
    .await?;
    tokens::respond(
        app,
        &UserGrant {
            user: &login.user,
            client_id: &client.client_id,
            sid: &session.id,
            auth_time: session.auth_time,
            scope: &scope,
            refresh: refresh.as_ref(),
            nonce: None,
            with_id_token: true,
        },
    )
    .await
}
