//! The issuer's signing keys: discovery (OIDC Discovery 1.0 §4) finds `jwks_uri`, the
//! JWK Set (RFC 7517 §5) is cached for its `Cache-Control: max-age` and refreshed in the
//! background when that expires, while the cached keys keep serving.
//!
//! An unknown `kid` triggers a refetch at most once per cooldown: every fetch, for
//! whatever reason, starts the cooldown, and misses that arrive while a fetch is in
//! flight wait for that fetch instead of starting their own, but only up to
//! [`MAX_GATE_WAITERS`] of them: beyond that a miss is refused at once as an unknown key,
//! so a flood of forged kids cannot pile up behind a slow fetch. A failed fetch keeps the
//! old keys. Calls [`crate::http`] only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use josekit::jwk::Jwk;
use josekit::jws::RS256;
use josekit::jws::alg::rsassa::RsassaJwsVerifier;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::VerifyError;
use crate::http::{self, FetchError};

/// Most requests with an unknown `kid` waiting for the fetch gate at once.
pub(crate) const MAX_GATE_WAITERS: usize = 16;

/// Longest time a JWK Set is kept without a refresh, whatever `max-age` says.
const MAX_CACHE: Duration = Duration::from_secs(24 * 3600);

/// One published key: usable for RS256, or published with another `alg`/`kty`/`use`,
/// in which case tokens naming it are refused as [`VerifyError::Algorithm`].
type KeyEntry = Option<Arc<RsassaJwsVerifier>>;

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Map<String, Value>>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// Settings of the key cache.
#[derive(Debug, Clone)]
pub(crate) struct KeyCacheConfig {
    pub(crate) issuer: String,
    pub(crate) jwks_uri: Option<String>,
    pub(crate) cooldown: Duration,
    pub(crate) default_max_age: Duration,
}

/// The cached key set and its refetch bookkeeping.
#[derive(Debug)]
pub(crate) struct KeyCache {
    http: reqwest::Client,
    config: KeyCacheConfig,
    jwks_uri: Mutex<Option<String>>,
    keys: RwLock<Arc<HashMap<String, KeyEntry>>>,
    epoch: Instant,
    /// Milliseconds after `epoch` when the set should be refreshed.
    refresh_at: AtomicU64,
    /// Milliseconds after `epoch` of the last fetch attempt, plus one (0: never).
    last_attempt: AtomicU64,
    in_flight: AtomicBool,
    refreshing: AtomicBool,
    gate: tokio::sync::Mutex<()>,
    /// Places for unknown-kid requests at the gate (see [`MAX_GATE_WAITERS`]).
    gate_waiters: tokio::sync::Semaphore,
}

impl KeyCache {
    /// An empty cache; [`Self::refetch`] fills it.
    pub(crate) fn new(http: reqwest::Client, config: KeyCacheConfig) -> Self {
        Self {
            http,
            jwks_uri: Mutex::new(config.jwks_uri.clone()),
            config,
            keys: RwLock::new(Arc::new(HashMap::new())),
            epoch: Instant::now(),
            refresh_at: AtomicU64::new(0),
            last_attempt: AtomicU64::new(0),
            in_flight: AtomicBool::new(false),
            refreshing: AtomicBool::new(false),
            gate: tokio::sync::Mutex::new(()),
            gate_waiters: tokio::sync::Semaphore::new(MAX_GATE_WAITERS),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn current(&self) -> Arc<HashMap<String, KeyEntry>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The key for `kid`: from the cache, or after one shared refetch if the cooldown
    /// allows it. Known keys never wait for the network.
    pub(crate) async fn key(
        self: &Arc<Self>,
        kid: &str,
    ) -> Result<Arc<RsassaJwsVerifier>, VerifyError> {
        if let Some(entry) = self.current().get(kid) {
            if self.now_ms() >= self.refresh_at.load(Ordering::Relaxed) {
                self.refresh_in_background();
            }
            return entry.clone().ok_or(VerifyError::Algorithm);
        }
        if !self.in_flight.load(Ordering::Acquire) && self.cooling_down() {
            return Err(VerifyError::UnknownKey);
        }
        let Ok(_place) = self.gate_waiters.try_acquire() else {
            return Err(VerifyError::UnknownKey);
        };
        let _gate = self.gate.lock().await;
        // Whoever held the gate may just have fetched the key.
        if let Some(entry) = self.current().get(kid) {
            return entry.clone().ok_or(VerifyError::Algorithm);
        }
        if self.cooling_down() {
            return Err(VerifyError::UnknownKey);
        }
        if let Err(e) = self.fetch_and_install().await {
            tracing::warn!(error = %e, "usher-verify: cannot refetch the JWKS for an unknown kid");
        }
        let entry = self.current().get(kid).cloned();
        entry
            .ok_or(VerifyError::UnknownKey)?
            .ok_or(VerifyError::Algorithm)
    }

    /// Whether `kid` still names a usable key of the current set: one map lookup, no
    /// network. Like [`Self::key`], starts a background refresh once the set is due, so
    /// a withdrawn key is noticed even when every request is a cache hit.
    pub(crate) fn still_published(self: &Arc<Self>, kid: &str) -> bool {
        let published = matches!(self.current().get(kid), Some(Some(_)));
        if self.now_ms() >= self.refresh_at.load(Ordering::Relaxed) {
            self.refresh_in_background();
        }
        published
    }

    fn cooling_down(&self) -> bool {
        let last = self.last_attempt.load(Ordering::Acquire);
        last != 0 && self.now_ms() < last - 1 + self.config.cooldown.as_millis() as u64
    }

    /// Fetches now (holding the gate), whatever the cooldown. Used at start-up.
    pub(crate) async fn refetch(&self) -> Result<(), FetchError> {
        let _gate = self.gate.lock().await;
        self.fetch_and_install().await
    }

    /// One fetch; the caller holds the gate. On failure the old keys stay and the next
    /// scheduled refresh is one cooldown away.
    async fn fetch_and_install(&self) -> Result<(), FetchError> {
        self.last_attempt
            .store(self.now_ms() + 1, Ordering::Release);
        self.in_flight.store(true, Ordering::Release);
        let result = self.fetch().await;
        self.in_flight.store(false, Ordering::Release);
        let now = self.now_ms();
        match result {
            Ok((keys, max_age)) => {
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
                let ttl = max_age.clamp(self.config.cooldown, MAX_CACHE.max(self.config.cooldown));
                self.refresh_at
                    .store(now + ttl.as_millis() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                let retry = self.config.cooldown.max(Duration::from_millis(100));
                self.refresh_at
                    .store(now + retry.as_millis() as u64, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Starts one background refresh unless one is running (stale-while-revalidate).
    fn refresh_in_background(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            {
                let _gate = this.gate.lock().await;
                if this.now_ms() >= this.refresh_at.load(Ordering::Relaxed)
                    && let Err(e) = this.fetch_and_install().await
                {
                    tracing::warn!(error = %e, "usher-verify: JWKS refresh failed; serving cached keys");
                }
            }
            this.refreshing.store(false, Ordering::Release);
        });
    }

    async fn jwks_uri(&self) -> Result<String, FetchError> {
        if let Some(uri) = self
            .jwks_uri
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(uri);
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let (doc, _) = http::get_json::<Discovery>(&self.http, &url).await?;
        // OIDC Discovery 1.0 §4.3: the document must name the issuer it was fetched for.
        if doc.issuer != self.config.issuer {
            return Err(FetchError::new(format!(
                "discovery names issuer {}",
                doc.issuer
            )));
        }
        *self.jwks_uri.lock().unwrap_or_else(|e| e.into_inner()) = Some(doc.jwks_uri.clone());
        Ok(doc.jwks_uri)
    }

    async fn fetch(&self) -> Result<(HashMap<String, KeyEntry>, Duration), FetchError> {
        let uri = self.jwks_uri().await?;
        let (set, max_age) = http::get_json::<JwkSet>(&self.http, &uri).await?;
        let keys = set.keys.into_iter().filter_map(key_entry).collect();
        tracing::debug!("usher-verify: JWKS fetched");
        Ok((keys, max_age.unwrap_or(self.config.default_max_age)))
    }
}

/// A JWK as a cache entry keyed by its `kid`; keys without a `kid` cannot be selected.
/// josekit refuses `use` other than `sig`, `alg` other than RS256 and RSA keys shorter
/// than 2048 bits; such keys stay listed but unusable.
fn key_entry(map: Map<String, Value>) -> Option<(String, KeyEntry)> {
    let kid = map.get("kid")?.as_str()?.to_owned();
    let alg_ok = matches!(map.get("alg"), None | Some(Value::String(_)))
        && map
            .get("alg")
            .and_then(Value::as_str)
            .is_none_or(|a| a == "RS256");
    let verifier = Jwk::from_map(map)
        .ok()
        .filter(|_| alg_ok)
        .and_then(|jwk| RS256.verifier_from_jwk(&jwk).ok())
        .map(Arc::new);
    Some((kid, verifier))
}
