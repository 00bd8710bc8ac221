//! Role administration (`roles:manage` or superuser): `/api/v1/roles`.

use axum::Json;
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::extract::{Fields, JsonObject, RolesManager};
use super::path_ids::RoleId;
use super::problem::Problem;
use crate::AppState;
use crate::service::roles::{self, RoleInput};

fn role_input(fields: &mut Fields) -> RoleInput {
    RoleInput {
        name: fields.optional_str("name"),
        description: fields.optional_str("description"),
        permissions: fields.optional_str_array("permissions"),
    }
}

/// `GET /api/v1/roles`.
pub async fn list(
    State(app): State<AppState>,
    RolesManager(_): RolesManager,
) -> Result<Response, Problem> {
    Ok(Json(json!({ "items": roles::list(&app).await? })).into_response())
}

/// `POST /api/v1/roles`.
pub async fn create(
    State(app): State<AppState>,
    RolesManager(caller): RolesManager,
    JsonObject(mut fields): JsonObject,
) -> Result<Response, Problem> {
    let input = role_input(&mut fields);
    let mut rules = roles::check_role_input(&input);
    if input.name.is_none() {
        rules.push(crate::service::FieldError::new(
            "name",
            "required",
            "is required",
        ));
    }
    if input.permissions.is_none() {
        rules.push(crate::service::FieldError::new(
            "permissions",
            "required",
            "is required",
        ));
    }
    fields.finish(rules)?;
    let role = roles::create(&app, &caller, input).await?;
    let mut response = (StatusCode::CREATED, Json(&role)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/roles/{}", role.id)) {
        response.headers_mut().insert(LOCATION, v);
    }
    Ok(response)
}

/// `GET /api/v1/roles/{role_id}`.
pub async fn get(
    State(app): State<AppState>,
    RolesManager(_): RolesManager,
    RoleId(id): RoleId,
) -> Result<Response, Problem> {
    Ok(Json(roles::get(&app, &id).await?).into_response())
}

/// `PATCH /api/v1/roles/{role_id}`.
pub async fn update(
    State(app): State<AppState>,
    RolesManager(caller): RolesManager,
    RoleId(id): RoleId,
    JsonObject(mut fields): JsonObject,
) -> Result<Response, Problem> {
    let input = role_input(&mut fields);
    fields.finish(roles::check_role_input(&input))?;
    Ok(Json(roles::update(&app, &caller, &id, input).await?).into_response())
}

/// `DELETE /api/v1/roles/{role_id}`.
pub async fn delete(
    State(app): State<AppState>,
    RolesManager(caller): RolesManager,
    RoleId(id): RoleId,
) -> Result<StatusCode, Problem> {
    roles::delete(&app, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
