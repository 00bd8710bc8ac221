//! [`VerifierBuilder`]: the verifier's settings and defaults, and start-up (discovery,
//! first JWKS fetch, feed task). Calls [`crate::jwks`], [`crate::feed`],
//! [`crate::live`] and [`crate::http`].

use std::sync::Arc;
use std::time::Duration;

use crate::cache::VerifiedCache;
use crate::claims::Expected;
use crate::feed::{self, FeedConfig, FeedLimits, FeedState};
use crate::jwks::{KeyCache, KeyCacheConfig};
use crate::live::LiveChecker;
use crate::verifier::Inner;
use crate::{Mode, Verifier, http};

/// The shortest JWKS cooldown accepted.
const MIN_JWKS_COOLDOWN: Duration = Duration::from_secs(1);
/// Added to twice the long-poll wait for the default maximum lag of the feed.
const DEFAULT_LAG_MARGIN: Duration = Duration::from_secs(15);

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The issuer is not an `https://` or `http://` URL.
    #[error("the issuer must be an http(s) URL")]
    InvalidIssuer,
    /// Feed mode is the default but no feed credentials were given.
    #[error("feed mode needs feed credentials")]
    FeedNotConfigured,
    /// Discovery or the first JWKS fetch failed (the summary names the step, never a
    /// secret).
    #[error("cannot load the issuer's keys: {0}")]
    Unreachable(String),
}

/// Settings of a [`Verifier`]; every setting has a default except issuer and audience.
#[derive(Clone)]
pub struct VerifierBuilder {
    issuer: String,
    audience: String,
    leeway: Duration,
    jwks_uri: Option<String>,
    jwks_cooldown: Duration,
    jwks_default_max_age: Duration,
    connect_timeout: Duration,
    timeout: Duration,
    feed_credentials: Option<(String, String)>,
    feed_wait: Duration,
    feed_retention: Duration,
    feed_max_lag: Option<Duration>,
    feed_cursor: Option<String>,
    stale_on_role_definition_change: bool,
    live_ttl: Duration,
    live_max_in_flight: usize,
    verified_cache: Option<(u64, Duration)>,
    realm: Option<String>,
    default_mode: Option<Mode>,
}

impl std::fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field(
                "feed_client_id",
                &self.feed_credentials.as_ref().map(|c| &c.0),
            )
            .finish_non_exhaustive()
    }
}

impl VerifierBuilder {
    pub(crate) fn new(issuer: String, audience: String) -> Self {
        Self {
            issuer,
            audience,
            leeway: Duration::from_secs(5),
            jwks_uri: None,
            jwks_cooldown: Duration::from_secs(30),
            jwks_default_max_age: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            feed_credentials: None,
            feed_wait: Duration::from_secs(30),
            feed_retention: Duration::from_secs(3600),
            feed_max_lag: None,
            feed_cursor: None,
            stale_on_role_definition_change: true,
            live_ttl: Duration::from_secs(2),
            live_max_in_flight: 64,
            verified_cache: Some((10_000, Duration::from_secs(60))),
            realm: None,
            default_mode: None,
        }
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 5 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Skips discovery and fetches keys from this URL.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// Shortest time between two JWKS fetches (default 30 s, at least 1 s: shorter values
    /// are raised to 1 s): bounds the refetches an unknown `kid` can cause, and the
    /// earliest refresh whatever `max-age` says.
    pub fn jwks_cooldown(mut self, cooldown: Duration) -> Self {
        self.jwks_cooldown = cooldown.max(MIN_JWKS_COOLDOWN);
        self
    }

    /// How long a JWKS answer without `Cache-Control: max-age` is fresh (default 300 s).
    pub fn jwks_default_max_age(mut self, max_age: Duration) -> Self {
        self.jwks_default_max_age = max_age;
        self
    }

    /// Timeouts of requests to usher: to connect (default 2 s) and in all (default 5 s;
    /// the feed's long poll adds its wait).
    pub fn http_timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.connect_timeout = connect;
        self.timeout = total;
        self
    }

    /// Enables the revocation feed ([`Mode::Feed`]) with the credentials of a
    /// confidential client registered at usher (sent with client_secret_basic). Makes
    /// feed mode the default unless [`Self::default_mode`] says otherwise.
    pub fn feed_credentials(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.feed_credentials = Some((client_id.into(), client_secret.into()));
        self
    }

    /// How long each long poll of the feed waits (default 30 s, at most 60).
    pub fn feed_wait(mut self, wait: Duration) -> Self {
        self.feed_wait = wait.min(Duration::from_secs(60));
        self
    }

    /// How long feed entries are kept at least (default 1 h). Entries are also kept for
    /// the longest token lifetime (`exp - iat`) the verifier has seen, so a retention
    /// shorter than the issuer's token lifetime cannot let a revoked token back in.
    pub fn feed_retention(mut self, retention: Duration) -> Self {
        self.feed_retention = retention;
        self
    }

    /// Longest time without a successful poll of the feed before feed-mode decisions
    /// answer 503 (`issuer_unavailable`, with `Retry-After`) instead of accepting tokens
    /// the verifier can no longer vouch for: usher unreachable, or refusing the feed
    /// credentials (default: twice the long-poll wait plus 15 s, 75 s with the default
    /// wait).
    pub fn feed_max_lag(mut self, lag: Duration) -> Self {
        self.feed_max_lag = Some(lag);
        self
    }

    /// Resumes the feed from a cursor saved with [`Verifier::feed_cursor`], so that
    /// entries written while the service was down are not missed.
    pub fn feed_resume_from(mut self, cursor: impl Into<String>) -> Self {
        self.feed_cursor = Some(cursor.into());
        self
    }

    /// Whether a role-definition change (a `roles_changed` entry without `sub`) makes
    /// every earlier token that carries roles stale (default true: the entry does not
    /// say which role changed, so its holders cannot be told apart).
    pub fn stale_on_role_definition_change(mut self, stale: bool) -> Self {
        self.stale_on_role_definition_change = stale;
        self
    }

    /// How long a live answer is reused for the same token and question (default 2 s).
    pub fn live_ttl(mut self, ttl: Duration) -> Self {
        self.live_ttl = ttl;
        self
    }

    /// Most live permission checks in flight to usher at once (default 64, at least 1).
    /// Concurrent requests asking the same question (same token, or anonymous, and same
    /// permission) share one call and count once; a miss that would need a call beyond
    /// the limit answers 503 (`issuer_unavailable`, with `Retry-After`) at once.
    pub fn live_max_in_flight(mut self, calls: usize) -> Self {
        self.live_max_in_flight = calls.max(1);
        self
    }

    /// Cache of already verified tokens, keyed by SHA-256 (default 10 000 tokens for
    /// 60 s; `exp` is checked on every use). `None` verifies every request afresh.
    pub fn verified_cache(mut self, capacity_and_ttl: Option<(u64, Duration)>) -> Self {
        self.verified_cache = capacity_and_ttl;
        self
    }

    /// The realm of `WWW-Authenticate` challenges (default: the audience).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// The mode of routes that do not choose one (default: feed with feed credentials,
    /// offline otherwise).
    pub fn default_mode(mut self, mode: Mode) -> Self {
        self.default_mode = Some(mode);
        self
    }

    /// Finds the JWKS through discovery, fetches it once, and starts the feed task when
    /// feed credentials are set. Must run inside a tokio runtime.
    pub async fn build(self) -> Result<Verifier, BuildError> {
        if !(self.issuer.starts_with("https://") || self.issuer.starts_with("http://")) {
            return Err(BuildError::InvalidIssuer);
        }
        let default_mode = self.default_mode.unwrap_or(match self.feed_credentials {
            Some(_) => Mode::Feed,
            None => Mode::Offline,
        });
        if default_mode == Mode::Feed && self.feed_credentials.is_none() {
            return Err(BuildError::FeedNotConfigured);
        }
        let client = http::client(self.connect_timeout, self.timeout);
        let keys = Arc::new(KeyCache::new(
            client.clone(),
            KeyCacheConfig {
                issuer: self.issuer.clone(),
                jwks_uri: self.jwks_uri.clone(),
                cooldown: self.jwks_cooldown,
                default_max_age: self.jwks_default_max_age,
            },
        ));
        keys.refetch()
            .await
            .map_err(|e| BuildError::Unreachable(e.to_string()))?;
        let base = self.issuer.trim_end_matches('/');
        let live = Arc::new(LiveChecker::new(
            client.clone(),
            &self.issuer,
            self.live_ttl,
            100_000,
            self.live_max_in_flight,
        ));
        let (feed, feed_task) = match &self.feed_credentials {
            Some((id, secret)) => {
                let limits = FeedLimits {
                    retention: self.feed_retention,
                    max_lag: self
                        .feed_max_lag
                        .unwrap_or(self.feed_wait * 2 + DEFAULT_LAG_MARGIN),
                    role_definitions: self.stale_on_role_definition_change,
                };
                let evict = live.clone();
                let state = Arc::new(FeedState::new(
                    limits,
                    self.feed_cursor.clone(),
                    Some(Box::new(move |sub| evict.forget(sub))),
                    feed::unix_now_ms(),
                ));
                let config = FeedConfig {
                    url: format!("{base}/api/v1/revocations"),
                    authorization: feed::basic_authorization(id, secret),
                    wait: self.feed_wait,
                    timeout: self.timeout,
                };
                let task = tokio::spawn(feed::run(client.clone(), config, state.clone()));
                (Some(state), Some(task.abort_handle()))
            }
            None => (None, None),
        };
        let verified = self
            .verified_cache
            .map(|(capacity, ttl)| VerifiedCache::new(capacity, ttl));
        Ok(Verifier {
            inner: Arc::new(Inner {
                realm: self.realm.unwrap_or_else(|| self.audience.clone()).into(),
                expected: Expected {
                    issuer: self.issuer.clone(),
                    audience: self.audience,
                    leeway: self.leeway.as_secs() as i64,
                },
                keys,
                verified,
                feed,
                feed_task,
                live,
                default_mode,
            }),
        })
    }
}
