//! The token endpoint's grants, one per file, behind one dispatcher: the client is
//! already authenticated; this checks that it may use the grant and runs it.

use secrecy::SecretString;

use super::clients::Client;
use super::tokens::TokenResponse;
use super::{OAuthCode, OAuthError, RequestMeta, ServiceError};
use crate::AppState;

pub mod authorization_code;
pub mod client_credentials;
pub mod password;
pub mod refresh_token;

/// A parsed token request.
#[derive(Debug)]
pub enum GrantRequest {
    /// RFC 6749 §4.3.
    Password {
        /// `username` (the login).
        username: String,
        /// `password`.
        password: SecretString,
        /// Optional `scope`.
        scope: Option<String>,
    },
    /// RFC 6749 §6.
    RefreshToken {
        /// `refresh_token`.
        refresh_token: String,
        /// Optional narrower `scope`.
        scope: Option<String>,
    },
    /// RFC 6749 §4.1.3.
    AuthorizationCode {
        /// `code`.
        code: String,
        /// `redirect_uri`.
        redirect_uri: Option<String>,
        /// `code_verifier`.
        code_verifier: Option<String>,
    },
    /// RFC 6749 §4.4.
    ClientCredentials {
        /// Optional `scope`.
        scope: Option<String>,
    },
}

impl GrantRequest {
    /// The `grant_type` value.
    pub fn grant_type(&self) -> &'static str {
        match self {
            Self::Password { .. } => "password",
            Self::RefreshToken { .. } => "refresh_token",
            Self::ClientCredentials { .. } => "client_credentials",
            Self::AuthorizationCode { .. } => "authorization_code",
        }
    }
}

/// Grant types the token endpoint implements.
pub const SUPPORTED: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "password",
];

/// Runs a grant for an authenticated client.
pub async fn run(
    app: &AppState,
    client: &Client,
    request: GrantRequest,
    meta: &RequestMeta,
) -> Result<TokenResponse, ServiceError> {
    if !client.allows_grant(request.grant_type()) {
        return Err(OAuthError::new(
            OAuthCode::UnauthorizedClient,
            "the client may not use this grant type",
        )
        .into());
    }
    match request {
        GrantRequest::Password {
            username,
            password,
            scope,
        } => password::grant(app, client, &username, &password, scope.as_deref(), meta).await,
        GrantRequest::RefreshToken {
            refresh_token,
            scope,
        } => refresh_token::grant(app, client, &refresh_token, scope.as_deref()).await,
        GrantRequest::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => {
            let input = authorization_code::CodeRequest {
                code: &code,
                redirect_uri: redirect_uri.as_deref(),
                code_verifier: code_verifier.as_deref(),
            };
            authorization_code::grant(app, client, &input).await
        }
        GrantRequest::ClientCredentials { scope } => {
            client_credentials::grant(app, client, scope.as_deref()).await
        }
    }
}
