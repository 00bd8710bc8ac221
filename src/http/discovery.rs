//! `GET /.well-known/openid-configuration` (OIDC Discovery 1.0) and
//! `GET /.well-known/jwks.json` (RFC 7517).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::service::discovery;

fn cacheable(body: serde_json::Value, max_age: u32) -> Response {
    let mut response = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        response.headers_mut().insert(CACHE_CONTROL, v);
    }
    response
}

/// The discovery document.
pub async fn openid_configuration(State(app): State<AppState>) -> Response {
    cacheable(discovery::document(&app.config), 300)
}

/// The public signing keys.
pub async fn jwks(State(app): State<AppState>) -> Response {
    cacheable(app.keys.current().jwks(), 300)
}
