//! The rate limit of the browser-facing sign-in endpoints, as middleware in front of
//! the browser-session layer (a refused request creates no session record): over the
//! limit, a 429 page with `Retry-After`. The counting is in
//! [`crate::service::throttle`].

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::extract::ClientIp;
use super::pages::message;
use crate::AppState;
use crate::service::throttle;
use crate::templates::Msg;

/// The paths counted: every request of an anonymous browser to them can park an
/// authorization request or create a browser-session record.
pub const LIMITED_PATHS: &[&str] = &[
    "/oauth2/authorize",
    "/oauth2/logout",
    "/login",
    "/signup",
    "/consent",
];

/// Counts requests to [`LIMITED_PATHS`] per client IP; answers 429 over the limit.
pub async fn limit_pages(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if LIMITED_PATHS.contains(&req.uri().path()) {
        let ip = req.extensions().get::<ClientIp>().and_then(|c| c.0);
        if let Err(retry_after) = throttle::page_request(&app, ip).await {
            let mut response = message(StatusCode::TOO_MANY_REQUESTS, Msg::TooManyRequests);
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(retry_after));
            return response;
        }
    }
    next.run(req).await
}
