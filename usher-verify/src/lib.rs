//! Verify usher access tokens in a Rust resource server.
//!
//! usher issues RFC 9068 access tokens: RS256 JWTs with `typ: at+jwt`, signed by keys
//! published in its JWKS. This crate checks them without a call to usher per request,
//! keeps up with key rotation and logouts, and protects axum routes in one line.
//!
//! # Protecting your service with usher
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use usher_verify::{Authenticated, Mode, Verifier};
//!
//! # async fn list_films() {}
//! # async fn watch() {}
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // usher's USHER_ISSUER and USHER_AUDIENCE (`cinema` unless usher is configured otherwise)
//! let verifier = Verifier::builder("https://id.cinema.example", "cinema")
//!     .feed_credentials("movie-api", std::env::var("MOVIE_API_SECRET")?) // optional: feed mode
//!     .feed_max_lag(std::time::Duration::from_secs(75)) // the default; then 503
//!     .build().await?;
//! let app: Router = Router::new()
//!     .route("/films", get(list_films)) // open to everyone
//!     .route("/me", get(|user: Authenticated| async move { user.sub.clone() }))
//!     .route("/films/{id}/watch", get(watch).layer(verifier.require_role("subscriber").mode(Mode::Feed)))
//!     .route("/films/{id}/stream", get(watch).layer(verifier.require_permission("films:watch_recent")))
//!     .layer(verifier.layer()); // lets the extractors find the verifier
//! # let _ = app; Ok(()) }
//! ```
//!
//! Refusals follow RFC 6750 §3: `401` with `WWW-Authenticate: Bearer realm="…",
//! error="invalid_token", error_description="…"` (a bare `Bearer` challenge when no token
//! was sent), `403` with `error="insufficient_scope"` for a missing role, scope or
//! permission, `503` when live mode cannot reach usher or feed mode has not heard from
//! it for longer than the maximum lag; the body is
//! `{"error": …, "error_description": …}`. Superusers meet every requirement.
//!
//! # Modes
//!
//! - [`Mode::Offline`]: the JWKS only. Cheapest; a token is accepted until it expires.
//! - [`Mode::Feed`]: a background task long-polls usher's revocation feed (it needs the
//!   credentials of a confidential client). Ended sessions, revoked tokens and tokens of
//!   deleted clients are refused within about a second, tokens issued before their
//!   user's roles changed (or in the same second: whole seconds cannot order them) are
//!   refused as stale, still with no call per request. If usher
//!   answers `410 Gone` (the verifier was away longer than the feed's retention) or
//!   `422` (a cursor this usher did not issue), every token issued before the verifier
//!   resumed is refused as stale until it would have expired: clients refresh once. When
//!   no poll has succeeded for longer than the maximum lag (75 s by default), feed
//!   decisions answer 503 instead of accepting.
//! - [`Mode::Live`]: decisions come from usher's permission check with the caller's
//!   token, cached for 2 s per (token, question), and dropped for a user as soon as the
//!   feed (when it runs) reports a change of their roles: role changes apply at once, at
//!   the price of a call per cache miss and a dependency on usher being up (503
//!   otherwise). Concurrent misses of one question share one call, and at most
//!   [`VerifierBuilder::live_max_in_flight`] calls run at once (503 beyond). [`Verifier::check_anonymous`] asks the same check without a token, for
//!   usher's `anonymous` role.
//!
//! # Keys
//!
//! The JWKS is found through discovery, cached for its `Cache-Control: max-age`, and
//! refreshed in the background when that expires while the cached keys keep serving (so
//! usher may be briefly unreachable). A token naming an unknown `kid` triggers at most
//! one refetch per cooldown (30 s by default, at least 1 s), shared by a bounded number
//! of concurrent requests; further ones are refused at once.

mod builder;
mod cache;
mod claims;
mod error;
mod extract;
mod feed;
mod guard;
mod http;
mod jwks;
mod jws;
mod live;
mod verifier;

pub use builder::{BuildError, VerifierBuilder};
pub use claims::Claims;
pub use error::{Rejection, VerifyError};
pub use extract::{
    Authenticated, PermissionName, RequirePermission, RequireRole, RequireScope, RoleName,
    ScopeName, bearer_token,
};
pub use guard::{Guard, GuardService};
pub use live::{LiveDecision, PROBE_PERMISSION};
pub use verifier::{Mode, Requirement, Verifier};

/// The current time, Unix seconds.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
