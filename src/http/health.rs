//! `GET /healthz` (liveness) and `GET /readyz` (database and, when configured, Redis).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;

/// Longest a readiness probe waits for one dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness: the process answers.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Readiness: 200 when every dependency answers, 503 naming the one that does not.
pub async fn readyz(State(app): State<AppState>) -> Response {
    let database = matches!(
        tokio::time::timeout(PROBE_TIMEOUT, app.store.ping()).await,
        Ok(Ok(()))
    );
    let redis = if app.state.backend() == "redis" {
        Some(matches!(
            tokio::time::timeout(PROBE_TIMEOUT, app.state.ping()).await,
            Ok(Ok(()))
        ))
    } else {
        None
    };
    let word = |ok: bool| if ok { "ok" } else { "down" };
    let all_ok = database && redis.unwrap_or(true);
    let body = json!({
        "status": word(all_ok),
        "checks": {
            "database": word(database),
            "redis": redis.map(word).unwrap_or("disabled"),
        }
    });
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
