//! Live mode: asks usher's permission check (`GET /api/v1/authz/check?permission=P`
//! with the caller's own token) and caches each answer, allowed or refused, for a short
//! TTL keyed by (SHA-256 of the token, permission). Network failures are not cached:
//! with no cached answer they become [`VerifyError::Unavailable`] (503). Without a token
//! usher answers for its `anonymous` role. When the revocation feed runs, a
//! `roles_changed` entry drops the cached answers of the user concerned (all answers
//! for a change of role definitions), so a role taken away applies as soon as the feed
//! reports it, not only when the TTL runs out.
//!
//! **Load on usher.** Concurrent questions with the same key share one call (single
//! flight): when an answer expires, the requests that miss it wait for the first one's
//! call instead of each making their own; anonymous questions all share one key per
//! permission. Calls in flight are capped ([`LiveChecker::new`]'s `max_in_flight`):
//! a miss that would need one more answers [`VerifyError::Unavailable`] at once (503
//! with `Retry-After`), so a burst cannot open unbounded connections to usher.
//!
//! Role requirements in live mode ask the same endpoint with [`PROBE_PERMISSION`] and
//! use the `roles` and `superuser` of the answer (usher's check takes no request without
//! a permission). Calls [`crate::http`] only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde::Deserialize;
use tokio::sync::{OnceCell, Semaphore};

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

/// The cache key of anonymous questions (no token hashes to it: tokens are not empty).
const ANONYMOUS: [u8; 32] = [0; 32];

/// usher's decision, or its refusal of the token.
type Answer = Result<Arc<LiveDecision>, VerifyError>;

/// A cached answer and whom it is about (`None`: anonymous or unknown).
#[derive(Clone)]
struct Cached {
    sub: Option<Arc<str>>,
    answer: Answer,
}

/// One call to usher, shared by every request asking the same question meanwhile.
type Flight = Arc<OnceCell<Answer>>;

/// The live checker of one verifier.
pub(crate) struct LiveChecker {
    http: reqwest::Client,
    url: String,
    cache: moka::sync::Cache<Key, Cached>,
    in_flight: Mutex<HashMap<Key, Boarded>>,
    calls: Semaphore,
    /// Bumped by [`Self::forget`]: an answer asked before a role change is not cached.
    generation: AtomicU64,
}

impl std::fmt::Debug for LiveChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveChecker")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A flight and how many requests are on it.
struct Boarded {
    flight: Flight,
    riders: usize,
}

/// A request's place on a flight; leaving it (answered, or the request dropped) takes
/// the flight off the map once it has landed or its last rider has left, so a dropped
/// request neither strands the others (one of them flies instead) nor leaks an entry.
struct Boarding<'a> {
    checker: &'a LiveChecker,
    key: Key,
    flight: Flight,
}

impl Drop for Boarding<'_> {
    fn drop(&mut self) {
        let mut map = self
            .checker
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(boarded) = map.get_mut(&self.key) else {
            return;
        };
        if !Arc::ptr_eq(&boarded.flight, &self.flight) {
            return; // cleared by a role change, perhaps replaced since
        }
        boarded.riders -= 1;
        if boarded.riders == 0 || self.flight.initialized() {
            map.remove(&self.key);
        }
    }
}

impl LiveChecker {
    /// A checker for `issuer` caching answers for `ttl`, at most `capacity` of them, with
    /// at most `max_in_flight` calls to usher at once (at least one).
    pub(crate) fn new(
        http: reqwest::Client,
        issuer: &str,
        ttl: Duration,
        capacity: u64,
        max_in_flight: usize,
    ) -> Self {
        Self {
            http,
            url: format!("{}/api/v1/authz/check", issuer.trim_end_matches('/')),
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl.max(Duration::from_millis(1)))
                .support_invalidation_closures()
                .build(),
            in_flight: Mutex::new(HashMap::new()),
            calls: Semaphore::new(max_in_flight.clamp(1, Semaphore::MAX_PERMITS)),
            generation: AtomicU64::new(0),
        }
    }

    /// usher's decision on `permission` for the bearer of `token` (`None`: anonymous),
    /// whose verified subject is `sub` when known.
    pub(crate) async fn check(
        &self,
        token: Option<(&str, [u8; 32])>,
        permission: &str,
        sub: Option<&str>,
    ) -> Answer {
        let key: Key = (token.map_or(ANONYMOUS, |t| t.1), permission.into());
        if let Some(cached) = self.cache.get(&key) {
            return cached.answer;
        }
        let boarding = self.board(key);
        boarding
            .flight
            .get_or_init(|| self.fly(&boarding.key, token, permission, sub))
            .await
            .clone()
    }

    /// Joins the flight for `key`, or opens one.
    fn board(&self, key: Key) -> Boarding<'_> {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let boarded = map.entry(key.clone()).or_insert_with(|| Boarded {
            flight: Flight::default(),
            riders: 0,
        });
        boarded.riders += 1;
        let flight = boarded.flight.clone();
        drop(map);
        Boarding {
            checker: self,
            key,
            flight,
        }
    }

    /// The one call of a flight: asks usher (if a place among the calls in flight is
    /// free) and caches the answer, unless the feed reported a role change meanwhile.
    async fn fly(
        &self,
        key: &Key,
        token: Option<(&str, [u8; 32])>,
        permission: &str,
        sub: Option<&str>,
    ) -> Answer {
        // The flight before this one may have landed between our miss and our boarding.
        if let Some(cached) = self.cache.get(key) {
            return cached.answer;
        }
        let Ok(_call) = self.calls.try_acquire() else {
            tracing::debug!("usher-verify: live permission checks at their limit; answering 503");
            return Err(VerifyError::Unavailable);
        };
        let generation = self.generation.load(Ordering::Acquire);
        match self.ask(token.map(|t| t.0), permission).await {
            Ok(answer) => {
                let about: Option<Arc<str>> = token.and_then(|_| {
                    let subject = answer.as_ref().ok().and_then(|d| d.subject.as_deref());
                    sub.or(subject).map(Arc::from)
                });
                if self.generation.load(Ordering::Acquire) == generation {
                    let cached = Cached {
                        sub: about,
                        answer: answer.clone(),
                    };
                    self.cache.insert(key.clone(), cached);
                }
                answer
            }
            Err(e) => {
                tracing::warn!(error = %e, "usher-verify: live permission check failed");
                Err(VerifyError::Unavailable)
            }
        }
    }

    /// Drops the cached answers about `sub`, or every answer for `None` (a change of
    /// role definitions, which may concern anyone, anonymous included).
    pub(crate) fn forget(&self, sub: Option<&str>) {
        // Answers asked before the change are neither cached nor shared with later requests.
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let Some(sub) = sub else {
            self.cache.invalidate_all();
            return;
        };
        let sub: Arc<str> = sub.into();
        let result = self
            .cache
            .invalidate_entries_if(move |_, cached| cached.sub.as_deref() == Some(&*sub));
        if result.is_err() {
            self.cache.invalidate_all();
        }
    }

    /// One request: `Ok(Ok(decision))`, `Ok(Err(refusal))` for a 401, or a failure.
    async fn ask(
        &self,
        token: Option<&str>,
        permission: &str,
    ) -> Result<Result<Arc<LiveDecision>, VerifyError>, FetchError> {
        let mut request = self
            .http
            .get(&self.url)
            .query(&[("permission", permission)]);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = request
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
