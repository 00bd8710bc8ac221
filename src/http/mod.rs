//! The HTTP layer: the router, built from the only route table ([`routes`]), the
//! middleware stack, and one module per endpoint group. Handlers parse, call one
//! service function and map the result; no axum type goes below this module.

use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::AppState;

pub mod account;
pub mod account_pages;
pub mod authorize;
pub mod authz;
pub mod browser_store;
pub mod clients;
pub mod discovery;
pub mod end_session;
pub mod extract;
pub mod health;
pub mod introspect;
pub mod login;
pub mod oauth_error;
pub mod pages;
pub mod path_ids;
pub mod problem;
pub mod revocations;
pub mod roles;
pub mod routes;
pub mod throttle;
pub mod token;
pub mod userinfo;
pub mod users;

use extract::{ClientIp, client_ip, peer_ip};
use problem::{InternalCause, Problem, REQUEST_ID};
pub use routes::routes;

/// The one stylesheet of the pages.
async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/usher.css"),
    )
        .into_response()
}

/// Builds the application from the route table ([`routes`]), with the fallback and
/// the middleware.
pub fn build_router(app: AppState) -> Router {
    routes::router_of(routes::API_ROUTES)
        .merge(
            routes::router_of(routes::PAGE_ROUTES)
                .layer(middleware::from_fn(pages::anonymous_expiry))
                .layer(browser_store::layer(&app))
                .layer(middleware::from_fn_with_state(
                    app.clone(),
                    throttle::limit_pages,
                )),
        )
        .fallback(not_found)
        .layer(CatchPanicLayer::custom(|_| {
            Problem::internal("handler panicked").into_response()
        }))
        .layer(middleware::from_fn_with_state(app.clone(), request_context))
        .with_state(app)
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// A request id from a trusted proxy is kept when it is short and plain.
fn acceptable_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = !text.is_empty()
        && text.len() <= 128
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    ok.then(|| text.to_owned())
}

/// Turns an error response that is not already a JSON document (axum's 405, a
/// plain-text rejection) into problem+json, keeping its headers (`Allow`).
fn ensure_problem(response: Response) -> Response {
    let status = response.status();
    if status.as_u16() < 400 {
        return response;
    }
    let is_doc = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json") || ct.starts_with("text/html"));
    if is_doc {
        return response;
    }
    let (code, detail) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "the method is not allowed on this route",
        ),
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::PAYLOAD_TOO_LARGE => ("body_too_large", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "unsupported content type")
        }
        s if s.is_server_error() => ("internal_error", "an internal error occurred"),
        _ => ("bad_request", "the request is malformed"),
    };
    let (parts, _) = response.into_parts();
    let mut fresh = Problem::new(status, code, detail).into_response();
    for (name, value) in parts.headers.iter() {
        if name != CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fresh.extensions_mut().extend(parts.extensions);
    fresh
}

/// Per-request context: request id (kept from a trusted proxy, otherwise generated),
/// client IP, a tracing span, problem+json for bare errors, security headers, and one
/// log line for each failure.
async fn request_context(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = peer_ip(req.extensions());
    let trusted = &app.config.trusted_proxies;
    let from_proxy = peer.is_some_and(|p| trusted.iter().any(|n| n.contains(&p)));
    let id = req
        .headers()
        .get("x-request-id")
        .filter(|_| from_proxy)
        .and_then(acceptable_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let ip = client_ip(peer, req.headers(), trusted);
    req.extensions_mut().insert(ClientIp(ip));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    let started = Instant::now();
    let mut response = REQUEST_ID
        .scope(
            id.clone(),
            async move { ensure_problem(next.run(req).await) },
        )
        .instrument(span.clone())
        .await;
    let status = response.status();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status.is_server_error() {
            let cause = response
                .extensions()
                .get::<InternalCause>()
                .map(|c| c.0.as_str())
                .unwrap_or("");
            if status == StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(
                    status = status.as_u16(),
                    elapsed_ms,
                    cause,
                    "request failed"
                );
            } else {
                tracing::error!(
                    status = status.as_u16(),
                    elapsed_ms,
                    cause,
                    "request failed"
                );
            }
        } else {
            tracing::debug!(status = status.as_u16(), elapsed_ms, "request served");
        }
    });
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert("x-request-id", v);
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let is_page = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"));
    if is_page {
        headers.insert(
            axum::http::header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(pages::CSP),
        );
        headers.insert(
            axum::http::header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        );
        headers.insert(
            axum::http::header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
