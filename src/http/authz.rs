//! The permission check: `GET /api/v1/authz/check?permission=P` and the batch
//! `POST /api/v1/authz/check`. With a bearer token it answers for that user as of now;
//! without one, for `anonymous`. A bad token is 401, never anonymous.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::extract::{JsonObject, OptionalBearer, Query};
use super::problem::Problem;
use crate::AppState;
use crate::service::{FieldError, authz};

/// Most permissions in one batch.
pub const MAX_BATCH: usize = 100;

/// `GET /api/v1/authz/check?permission=P`.
pub async fn check(
    State(app): State<AppState>,
    OptionalBearer(claims): OptionalBearer,
    query: Query,
) -> Result<Response, Problem> {
    let Some(permission) = query.get("permission") else {
        return Err(Problem::validation(vec![FieldError::new(
            "permission",
            "required",
            "is required",
        )]));
    };
    if let Some(e) = authz::check_permission("permission", permission) {
        return Err(Problem::validation(vec![e]));
    }
    let decision = authz::check(&app, claims.as_deref(), permission).await?;
    Ok(Json(decision).into_response())
}

/// `POST /api/v1/authz/check` with `{permissions: [...]}` (1 to 100).
pub async fn check_batch(
    State(app): State<AppState>,
    OptionalBearer(claims): OptionalBearer,
    JsonObject(mut fields): JsonObject,
) -> Result<Response, Problem> {
    let permissions = fields.required_str_array("permissions");
    let mut rules = Vec::new();
    if let Some(list) = &permissions {
        if list.is_empty() || list.len() > MAX_BATCH {
            rules.push(FieldError::new(
                "permissions",
                "count",
                format!("must hold 1 to {MAX_BATCH} permissions"),
            ));
        }
        for (i, p) in list.iter().enumerate() {
            rules.extend(authz::check_permission(&format!("permissions[{i}]"), p));
        }
    }
    fields.finish(rules)?;
    let permissions = permissions.unwrap_or_default();
    let (results, decision) = authz::check_many(&app, claims.as_deref(), &permissions).await?;
    let map: Map<String, Value> = permissions
        .into_iter()
        .zip(results)
        .map(|(p, allowed)| (p, Value::Bool(allowed)))
        .collect();
    let mut body = json!({
        "results": map,
        "subject": decision.subject,
        "roles": decision.roles,
    });
    if decision.superuser {
        body["superuser"] = json!(true);
    }
    Ok(Json(body).into_response())
}
