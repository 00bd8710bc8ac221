//! `GET`/`POST /oauth2/userinfo` (OIDC Core §5.3): the claims of the token's user for
//! the token's scope. RFC 6750 errors.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::extract::OAuthBearer;
use super::oauth_error::{BearerResponse, no_store};
use crate::AppState;
use crate::service::{BearerError, accounts, scope, tokens};

/// The userinfo endpoint.
pub async fn userinfo(
    State(app): State<AppState>,
    OAuthBearer(claims): OAuthBearer,
) -> Result<Response, BearerResponse> {
    if !claims.is_user() {
        return Err(BearerResponse::Invalid(BearerError::NotAUser));
    }
    if !scope::has(&claims.scope, "openid") {
        return Err(BearerResponse::InsufficientScope("openid"));
    }
    let user = accounts::current_user(&app, &claims.sub)
        .await
        .map_err(BearerResponse::Service)?;
    let roles = accounts::roles_of(&app, &user.id)
        .await
        .map_err(BearerResponse::Service)?;
    let body = tokens::user_claims(&user, &roles, &claims.scope);
    let mut response = Json(body).into_response();
    no_store(&mut response);
    Ok(response)
}
