//! Live mode: asks usher's permission check (`GET /api/v1/authz/check?permission=P`
//! with the caller's own token) and caches each answer, allowed or refused, for a short
//! TTL keyed by (SHA-256 of the token, permission). Network failures are not cached:
//! with no cached answer they become [`VerifyError::Unavailable`] (503).
//!
//! Role requirements in live mode ask the same endpoint with [`PROBE_PERMISSION`] and
//! use the `roles` and `superuser` of the answer (usher's check takes no request without
//! a permission). Calls [`crate::http`] only.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde::Deserialize;

use crate::VerifyError;
use crate::http::FetchError;

/// The permission asked when only the caller's current roles are wanted. It follows
/// usher's `resource:action` grammar and is granted to nobody.
pub const PROBE_PERMISSION: &str = "usher-verify:probe";

/// usher's answer to a permission check.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LiveDecision {
    /// The caller holds the permission now.
    pub allowed: bool,
    /// The user id (or client id); `None` for anonymous.
    #[serde(default)]
    pub subject: Option<String>,
    /// The caller's role names now.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The caller is a superuser now.
    #[serde(default)]
    pub superuser: bool,
}

#[derive(Deserialize)]
struct Problem {
    #[serde(default)]
    code: Option<String>,
}

type Key = ([u8; 32], Box<str>);

/// The live checker of one verifier.
#[derive(Debug)]
pub(crate) struct LiveChecker {
    http: reqwest::Client,
    url: String,
    cache: moka::sync::Cache<Key, Result<Arc<LiveDecision>, VerifyError>>,
}

impl LiveChecker {
    /// A checker for `issuer` caching answers for `ttl`.
    pub(crate) fn new(http: reqwest::Client, issuer: &str, ttl: Duration, capacity: u64) -> Self {
        Self {
            http,
            url: format!("{}/api/v1/authz/check", issuer.trim_end_matches('/')),
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl.max(Duration::from_millis(1)))
                .build(),
        }
    }

    /// usher's decision on `permission` for the bearer of `token`.
    pub(crate) async fn check(
        &self,
        token: &str,
        token_hash: [u8; 32],
        permission: &str,
    ) -> Result<Arc<LiveDecision>, VerifyError> {
        let key: Key = (token_hash, permission.into());
        if let Some(answer) = self.cache.get(&key) {
            return answer;
        }
        match self.ask(token, permission).await {
            Ok(answer) => {
                self.cache.insert(key, answer.clone());
                answer
            }
            Err(e) => {
                tracing::warn!(error = %e, "usher-verify: live permission check failed");
                Err(VerifyError::Unavailable)
            }
        }
    }

    /// One request: `Ok(Ok(decision))`, `Ok(Err(refusal))` for a 401, or a failure.
    async fn ask(
        &self,
        token: &str,
        permission: &str,
    ) -> Result<Result<Arc<LiveDecision>, VerifyError>, FetchError> {
        let response = self
            .http
            .get(&self.url)
            .query(&[("permission", permission)])
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
            .map_err(|e| FetchError::from_reqwest(&e))?;
        match response.status() {
            StatusCode::OK => {
                let decision = response
                    .json::<LiveDecision>()
                    .await
                    .map_err(|e| FetchError::from_reqwest(&e))?;
                Ok(Ok(Arc::new(decision)))
            }
            StatusCode::UNAUTHORIZED => {
                let code = response.json::<Problem>().await.ok().and_then(|p| p.code);
                Ok(Err(match code.as_deref() {
                    Some("session_ended") => VerifyError::SessionEnded,
                    Some("token_revoked") => VerifyError::Revoked,
                    Some("token_expired") => VerifyError::Expired,
                    _ => VerifyError::Refused,
                }))
            }
            s => Err(FetchError::new(format!("permission check answered {s}"))),
        }
    }
}
