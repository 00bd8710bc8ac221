//! The [`Verifier`]: verifies an access token against the cached JWKS and the expected
//! claims, then applies the route's [`Mode`] (feed state, live check) and
//! [`Requirement`]. Calls [`crate::jws`], [`crate::claims`], [`crate::jwks`],
//! [`crate::feed`] and [`crate::live`].

use std::borrow::Cow;
use std::sync::Arc;

use sha2::Digest;

use crate::cache::{CachedToken, VerifiedCache};
use crate::claims::{self, Expected};
use crate::feed::FeedState;
use crate::jwks::KeyCache;
use crate::live::{LiveChecker, LiveDecision, PROBE_PERMISSION};
use crate::{Claims, VerifierBuilder, VerifyError, jws, unix_now};

/// How fresh a route needs the caller's authorization to be. Chosen per route (see
/// [`crate::Guard::mode`]); the verifier's default applies otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// JWKS only: no call to usher per request. A token is good until it expires, even
    /// after logout or a change of roles.
    Offline,
    /// As offline, plus the revocation feed: ended sessions and revoked tokens are
    /// refused within about a second, tokens predating a change of their user's roles
    /// (or issued in its second) are refused as stale. Needs feed credentials (a
    /// confidential client).
    Feed,
    /// Decisions come from usher's permission check, cached per (token, question) for
    /// the live TTL: role changes apply at once. Costs a call per cache miss; answers
    /// 503 when usher is unreachable and nothing is cached. Permission requirements are
    /// always live.
    Live,
}

/// What a route requires of the caller. Superusers meet every requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// Any valid access token.
    Authenticated,
    /// A role name (from the token, or from usher in [`Mode::Live`]).
    Role(Cow<'static, str>),
    /// A granted scope (RFC 6749 §3.3).
    Scope(Cow<'static, str>),
    /// A permission, asked of usher (always live).
    Permission(Cow<'static, str>),
}

/// The parts of a verifier, shared by its clones.
pub(crate) struct Inner {
    pub(crate) expected: Expected,
    pub(crate) keys: Arc<KeyCache>,
    pub(crate) verified: Option<VerifiedCache>,
    pub(crate) feed: Option<Arc<FeedState>>,
    pub(crate) feed_task: Option<tokio::task::AbortHandle>,
    pub(crate) live: Arc<LiveChecker>,
    pub(crate) realm: Arc<str>,
    pub(crate) default_mode: Mode,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = &self.feed_task {
            task.abort();
        }
    }
}

/// Verifies usher access tokens for one resource server (one issuer, one audience).
/// Cheap to clone; clones share the key cache, the feed state and the caches. Build it
/// with [`Verifier::builder`].
#[derive(Clone)]
pub struct Verifier {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.expected.issuer)
            .field("audience", &self.inner.expected.audience)
            .field("default_mode", &self.inner.default_mode)
            .finish_non_exhaustive()
    }
}

fn sha256(token: &str) -> [u8; 32] {
    sha2::Sha256::digest(token.as_bytes()).into()
}

impl Verifier {
    /// A builder for tokens issued by `issuer` (exactly as in the tokens' `iss`, e.g.
    /// `https://id.cinema.example`) for `audience`.
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder::new(issuer.into(), audience.into())
    }

    /// The realm named in `WWW-Authenticate` challenges.
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// The mode of routes that do not choose one.
    pub fn default_mode(&self) -> Mode {
        self.inner.default_mode
    }

    /// True when the revocation feed runs ([`Mode::Feed`] is available).
    pub fn has_feed(&self) -> bool {
        self.inner.feed.is_some()
    }

    /// The feed's current cursor: store it to resume after a restart with
    /// [`VerifierBuilder::feed_resume_from`].
    pub fn feed_cursor(&self) -> Option<String> {
        self.inner.feed.as_ref().and_then(|f| f.cursor())
    }

    /// Unix seconds of the feed's last successful poll (0: none yet), for health checks.
    pub fn feed_last_sync(&self) -> Option<i64> {
        self.inner.feed.as_ref().map(|f| f.last_sync())
    }

    /// Verifies `token` offline: RS256 signature by a key of the issuer's JWKS, `typ`
    /// at+jwt, `iss`, `aud`, `exp`/`nbf` with the leeway, required claims.
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, VerifyError> {
        self.verify_hashed(token, None).await
    }

    async fn verify_hashed(
        &self,
        token: &str,
        hash: Option<[u8; 32]>,
    ) -> Result<Arc<Claims>, VerifyError> {
        let inner = &self.inner;
        let now = unix_now();
        let Some(cache) = &inner.verified else {
            return Ok(Arc::new(self.verify_uncached(token, now).await?.0));
        };
        let hash = hash.unwrap_or_else(|| sha256(token));
        // A hit is trusted only while its signing key is still published: a key withdrawn
        // from the JWKS (compromised, retired early) stops its cached tokens at the next
        // refresh, not one cache TTL later. Otherwise the token is verified afresh below.
        if let Some(hit) = cache.get(&hash)
            && inner.keys.still_published(&hit.kid)
        {
            // nbf was already passed when it was cached; only exp can have moved.
            claims::check_time(&hit.claims, None, inner.expected.leeway, now)?;
            return Ok(hit.claims);
        }
        let (claims, kid) = self.verify_uncached(token, now).await?;
        let claims = Arc::new(claims);
        let entry = CachedToken {
            claims: claims.clone(),
            kid: kid.into(),
        };
        cache.insert(hash, entry);
        Ok(claims)
    }

    /// The claims of `token` and the `kid` of the key that verified it.
    async fn verify_uncached(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Claims, String), VerifyError> {
        let parsed = jws::parse(token)?;
        let key = self.inner.keys.key(&parsed.kid).await?;
        let payload = parsed.verify(&key)?;
        let claims = claims::validate(&payload, &self.inner.expected, now)?;
        Ok((claims, parsed.kid))
    }

    /// Verifies `token` and applies `mode`: the feed's revocations in [`Mode::Feed`]
    /// (and in [`Mode::Live`] when the feed runs), usher's live answer in [`Mode::Live`].
    pub async fn authenticate(&self, token: &str, mode: Mode) -> Result<Arc<Claims>, VerifyError> {
        self.authorize(token, &Requirement::Authenticated, mode)
            .await
    }

    /// Verifies `token` and checks `requirement` in `mode`; returns the token's claims.
    pub async fn authorize(
        &self,
        token: &str,
        requirement: &Requirement,
        mode: Mode,
    ) -> Result<Arc<Claims>, VerifyError> {
        let live = mode == Mode::Live || matches!(requirement, Requirement::Permission(_));
        let hash = (live || self.inner.verified.is_some()).then(|| sha256(token));
        let claims = self.verify_hashed(token, hash).await?;
        self.decide(&claims, token, hash, requirement, mode).await?;
        Ok(claims)
    }

    /// Applies `mode` and `requirement` to already verified `claims` of `token`.
    pub(crate) async fn decide(
        &self,
        claims: &Claims,
        token: &str,
        hash: Option<[u8; 32]>,
        requirement: &Requirement,
        mode: Mode,
    ) -> Result<(), VerifyError> {
        match (&self.inner.feed, mode) {
            (Some(feed), Mode::Feed | Mode::Live) => feed.check(claims, mode)?,
            (None, Mode::Feed) => return Err(VerifyError::Misconfigured),
            _ => {}
        }
        let live = |question: &str| {
            let hash = hash.unwrap_or_else(|| sha256(token));
            let question = question.to_owned();
            async move {
                let token = Some((token, hash));
                self.inner
                    .live
                    .check(token, &question, Some(&claims.sub))
                    .await
            }
        };
        let pass = match (requirement, mode) {
            (Requirement::Permission(p), _) => {
                let d = live(p).await?;
                if d.allowed || d.superuser {
                    return Ok(());
                }
                return Err(VerifyError::InsufficientPermission(p.clone()));
            }
            (_, Mode::Live) => {
                let d = live(PROBE_PERMISSION).await?;
                match requirement {
                    Requirement::Role(r) => d.superuser || d.roles.iter().any(|x| x == r),
                    Requirement::Scope(s) => d.superuser || claims.has_scope(s),
                    _ => true,
                }
            }
            (Requirement::Authenticated, _) => true,
            (Requirement::Role(r), _) => claims.superuser || claims.has_role(r),
            (Requirement::Scope(s), _) => claims.superuser || claims.has_scope(s),
        };
        if pass {
            return Ok(());
        }
        Err(match requirement {
            Requirement::Role(r) => VerifyError::InsufficientRole(r.clone()),
            Requirement::Scope(s) => VerifyError::InsufficientScope(s.clone()),
            _ => VerifyError::Refused,
        })
    }

    /// Asks usher whether the bearer of `token` holds `permission` now (cached for the
    /// live TTL). The token is not verified locally first; prefer [`Self::authorize`].
    pub async fn check_permission(
        &self,
        token: &str,
        permission: &str,
    ) -> Result<Arc<LiveDecision>, VerifyError> {
        self.inner
            .live
            .check(Some((token, sha256(token))), permission, None)
            .await
    }

    /// Asks usher whether an anonymous caller (usher's `anonymous` role) holds
    /// `permission` now (cached for the live TTL), for routes open to anonymous callers.
    pub async fn check_anonymous(
        &self,
        permission: &str,
    ) -> Result<Arc<LiveDecision>, VerifyError> {
        self.inner.live.check(None, permission, None).await
    }
}
