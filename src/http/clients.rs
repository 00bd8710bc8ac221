//! Client registration (`clients:manage` or superuser): `/api/v1/clients`. Answers that
//! carry a secret are never cached.

use axum::Json;
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::extract::{ClientsManager, Fields, JsonObject};
use super::path_ids::ClientPathId;
use super::problem::Problem;
use crate::AppState;
use crate::service::client_registry::{self, ClientInput};

fn client_input(fields: &mut Fields) -> ClientInput {
    ClientInput {
        client_id: fields.optional_str("client_id"),
        client_name: fields.optional_str("client_name"),
        token_endpoint_auth_method: fields.optional_str("token_endpoint_auth_method"),
        grant_types: fields.optional_str_array("grant_types"),
        redirect_uris: fields.optional_str_array("redirect_uris"),
        post_logout_redirect_uris: fields.optional_str_array("post_logout_redirect_uris"),
        scope: fields.optional_str("scope"),
        first_party: fields.optional_bool("first_party"),
        rotate_secret: false,
    }
}

/// `GET /api/v1/clients`.
pub async fn list(
    State(app): State<AppState>,
    ClientsManager(_): ClientsManager,
) -> Result<Response, Problem> {
    Ok(Json(json!({ "items": client_registry::list(&app).await? })).into_response())
}

/// `POST /api/v1/clients`.
pub async fn create(
    State(app): State<AppState>,
    ClientsManager(caller): ClientsManager,
    JsonObject(mut fields): JsonObject,
) -> Result<Response, Problem> {
    let input = client_input(&mut fields);
    fields.finish(Vec::new())?;
    let view = client_registry::create(&app, input, caller.superuser).await?;
    let mut response = (StatusCode::CREATED, Json(&view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/clients/{}", view.client_id)) {
        response.headers_mut().insert(LOCATION, v);
    }
    Ok(response)
}

/// `GET /api/v1/clients/{client_id}`.
pub async fn get(
    State(app): State<AppState>,
    ClientsManager(_): ClientsManager,
    ClientPathId(id): ClientPathId,
) -> Result<Response, Problem> {
    Ok(Json(client_registry::get(&app, &id).await?).into_response())
}

/// `PATCH /api/v1/clients/{client_id}` (with `rotate_secret: true` to issue a new secret).
pub async fn update(
    State(app): State<AppState>,
    ClientsManager(caller): ClientsManager,
    ClientPathId(id): ClientPathId,
    JsonObject(mut fields): JsonObject,
) -> Result<Response, Problem> {
    let mut input = client_input(&mut fields);
    input.rotate_secret = fields.optional_bool("rotate_secret").unwrap_or(false);
    fields.finish(Vec::new())?;
    Ok(Json(client_registry::update(&app, &id, input, caller.superuser).await?).into_response())
}

/// `DELETE /api/v1/clients/{client_id}`.
pub async fn delete(
    State(app): State<AppState>,
    ClientsManager(_): ClientsManager,
    ClientPathId(id): ClientPathId,
) -> Result<StatusCode, Problem> {
    client_registry::delete(&app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
