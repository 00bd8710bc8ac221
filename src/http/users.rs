//! User administration (`roles:manage` or superuser): `/api/v1/users` (GET),
//! `/api/v1/users/{user_id}` and its roles.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::account::parse_limit;
use super::extract::{JsonObject, Query, RolesManager};
use super::path_ids::{UserId, UserRoleIds};
use super::problem::Problem;
use crate::AppState;
use crate::service::{FieldError, roles, users};

/// `GET /api/v1/users?login=PREFIX&limit=&cursor=`.
pub async fn list(
    State(app): State<AppState>,
    RolesManager(_): RolesManager,
    query: Query,
) -> Result<Response, Problem> {
    let limit = parse_limit(&query)?;
    let prefix = query.get("login").unwrap_or("");
    if prefix.chars().count() > 64 {
        return Err(Problem::validation(vec![FieldError::new(
            "login",
            "too_long",
            "must be at most 64 characters",
        )]));
    }
    Ok(Json(users::find(&app, prefix, limit, query.get("cursor")).await?).into_response())
}

/// `GET /api/v1/users/{user_id}`.
pub async fn get(
    State(app): State<AppState>,
    RolesManager(_): RolesManager,
    UserId(id): UserId,
) -> Result<Response, Problem> {
    Ok(Json(users::get(&app, &id).await?).into_response())
}

/// `PATCH /api/v1/users/{user_id}`: `{blocked}`.
pub async fn update(
    State(app): State<AppState>,
    RolesManager(_): RolesManager,
    UserId(id): UserId,
    JsonObject(mut fields): JsonObject,
) -> Result<Response, Problem> {
    let blocked = fields.optional_bool("blocked");
    let rules = if blocked.is_none() {
        vec![FieldError::new("blocked", "required", "is required")]
    } else {
        Vec::new()
    };
    fields.finish(rules)?;
    let view = users::set_blocked(&app, &id, blocked.unwrap_or(false)).await?;
    Ok(Json(view).into_response())
}

/// `GET /api/v1/users/{user_id}/roles`.
pub async fn roles_of(
    State(app): State<AppState>,
    RolesManager(_): RolesManager,
    UserId(id): UserId,
) -> Result<Response, Problem> {
    Ok(Json(json!({ "items": roles::user_roles(&app, &id).await? })).into_response())
}

/// `PUT /api/v1/users/{user_id}/roles/{role_id}`.
pub async fn assign(
    State(app): State<AppState>,
    RolesManager(caller): RolesManager,
    UserRoleIds(user_id, role_id): UserRoleIds,
) -> Result<StatusCode, Problem> {
    roles::assign(&app, &caller, &user_id, &role_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/users/{user_id}/roles/{role_id}`.
pub async fn unassign(
    State(app): State<AppState>,
    RolesManager(caller): RolesManager,
    UserRoleIds(user_id, role_id): UserRoleIds,
) -> Result<StatusCode, Problem> {
    roles::unassign(&app, &caller, &user_id, &role_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
