//! `POST /oauth2/token` (RFC 6749 §3.2): parse the form, authenticate the client,
//! dispatch to one grant. Every answer carries `Cache-Control: no-store`.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;

use super::extract::{Meta, OAuthForm, client_credentials};
use super::oauth_error::{OAuthResponse, no_store};
use crate::AppState;
use crate::service::grants::{self, GrantRequest};
use crate::service::{OAuthCode, OAuthError, clients};

fn parse_grant(form: &OAuthForm, grant_type: &str) -> Result<GrantRequest, OAuthError> {
    let scope = form.get("scope").map(str::to_owned);
    match grant_type {
        "password" => Ok(GrantRequest::Password {
            username: form.require("username")?.to_owned(),
            password: SecretString::from(form.require("password")?.to_owned()),
            scope,
        }),
        "refresh_token" => Ok(GrantRequest::RefreshToken {
            refresh_token: form.require("refresh_token")?.to_owned(),
            scope,
        }),
        "client_credentials" => Ok(GrantRequest::ClientCredentials { scope }),
        "authorization_code" => Ok(GrantRequest::AuthorizationCode {
            code: form.require("code")?.to_owned(),
            redirect_uri: form.get("redirect_uri").map(str::to_owned),
            code_verifier: form.get("code_verifier").map(str::to_owned),
        }),
        _ => Err(OAuthError::new(
            OAuthCode::UnsupportedGrantType,
            "the grant type is not supported",
        )),
    }
}

/// The token endpoint.
pub async fn token(
    State(app): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthResponse> {
    let grant_type = form.require("grant_type")?;
    let creds = client_credentials(&headers, &form)?;
    let client = clients::authenticate(&app, &creds).await?;
    let request = parse_grant(&form, grant_type)?;
    let body = grants::run(&app, &client, request, &meta).await?;
    let mut response = Json(body).into_response();
    no_store(&mut response);
    Ok(response)
}
