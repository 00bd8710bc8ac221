//! Extractors of path ids. An id holding NUL or another control character names
//! nothing that can exist (and PostgreSQL `text` cannot even hold NUL), so it gets the
//! resource's 404 at once, without a database query. Segments that are not UTF-8 keep
//! axum's rejection (problem+json `bad_request` through the request middleware).

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;
use crate::AppState;
use crate::service::has_forbidden_control;

/// The path segments of a route, percent-decoded (axum's rejection when they are not
/// UTF-8: problem+json `bad_request` through the middleware).
async fn path_segments<T>(parts: &mut Parts, state: &AppState) -> Result<T, Response>
where
    T: serde::de::DeserializeOwned + Send,
{
    Path::<T>::from_request_parts(parts, state)
        .await
        .map(|Path(v)| v)
        .map_err(IntoResponse::into_response)
}

/// Declares an extractor of one path id: an id holding a control character names
/// nothing that can exist, so it gets the resource's 404 without a database query.
macro_rules! path_id {
    ($(#[$meta:meta])* $name:ident, $not_found:path) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name(pub String);

        impl FromRequestParts<AppState> for $name {
            type Rejection = Response;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, Self::Rejection> {
                let id: String = path_segments(parts, state).await?;
                if has_forbidden_control(&id) {
                    return Err(Problem::from($not_found()).into_response());
                }
                Ok(Self(id))
            }
        }
    };
}

path_id!(
    /// `{role_id}`; 404 `role_not_found` for an id with a control character.
    RoleId,
    crate::service::roles::role_not_found
);
path_id!(
    /// `{user_id}`; 404 `user_not_found` for an id with a control character.
    UserId,
    crate::service::roles::user_not_found
);
path_id!(
    /// `{client_id}`; 404 `client_not_found` for an id with a control character.
    ClientPathId,
    crate::service::client_registry::client_not_found
);
path_id!(
    /// `{sid}`; 404 `session_not_found` for an id with a control character.
    SessionId,
    crate::service::sessions::session_not_found
);

/// `{user_id}/roles/{role_id}`: 404 `user_not_found`, then `role_not_found`, for an id
/// with a control character.
#[derive(Debug, Clone)]
pub struct UserRoleIds(pub String, pub String);

impl FromRequestParts<AppState> for UserRoleIds {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (user_id, role_id): (String, String) = path_segments(parts, state).await?;
        if has_forbidden_control(&user_id) {
            return Err(Problem::from(crate::service::roles::user_not_found()).into_response());
        }
        if has_forbidden_control(&role_id) {
            return Err(Problem::from(crate::service::roles::role_not_found()).into_response());
        }
        Ok(Self(user_id, role_id))
    }
}
