//! `POST /oauth2/introspect` (RFC 7662, confidential clients) and `POST /oauth2/revoke`
//! (RFC 7009). RFC 6749 error bodies; `Cache-Control: no-store`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::extract::{OAuthForm, client_credentials};
use super::oauth_error::{OAuthResponse, no_store};
use crate::AppState;
use crate::service::{OAuthCode, OAuthError, clients, introspection, revocation};

/// The introspection endpoint.
pub async fn introspect(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthResponse> {
    let creds = client_credentials(&headers, &form)?;
    let client = clients::authenticate(&app, &creds).await?;
    if client.is_public() {
        return Err(OAuthError::new(
            OAuthCode::InvalidClient,
            "introspection needs a confidential client",
        )
        .into());
    }
    let token = form.require("token")?;
    let body = introspection::introspect(&app, &client, token).await?;
    let mut response = Json(body).into_response();
    no_store(&mut response);
    Ok(response)
}

/// The revocation endpoint.
pub async fn revoke(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthResponse> {
    let creds = client_credentials(&headers, &form)?;
    let client = clients::authenticate(&app, &creds).await?;
    let token = form.require("token")?;
    revocation::revoke(&app, &client, token).await?;
    let mut response = StatusCode::OK.into_response();
    no_store(&mut response);
    Ok(response)
}
