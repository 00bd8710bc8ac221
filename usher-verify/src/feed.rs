//! Feed mode: a background task long-polls usher's revocation feed
//! (`GET /api/v1/revocations?since=CURSOR&wait=SECONDS`, client_secret_basic) and keeps
//! in memory the ended sessions, the revoked `jti`s, the deleted clients and, per user,
//! when their roles last changed. A token is refused when its session ended, its `jti`
//! was revoked or its client was deleted (at or after its `iat`), and as stale when its
//! user's roles changed after its `iat` (the client refreshes it).
//!
//! Entries are kept for the retention or for the longest token lifetime seen
//! (`exp - iat`), whichever is longer: a token issued before an entry expires before the
//! entry is pruned.
//!
//! **Lag.** Feed-mode decisions are only as fresh as the last successful poll. When none
//! has succeeded for longer than the maximum lag (usher unreachable, or refusing the
//! feed credentials), feed-mode decisions answer [`VerifyError::Unavailable`] (503 with
//! `Retry-After`) instead of accepting tokens the verifier can no longer vouch for.
//! Tokens already known to be revoked are still refused as such.
//!
//! **Gaps.** A `410 Gone` (cursor older than usher's retention), a `422` (a cursor this
//! usher did not issue: another deployment, or a database restored from an older
//! backup), or no successful poll for longer than the retention means entries may have
//! been missed. The verifier then starts again from a fresh cursor and, once that first
//! fresh poll has answered, treats every token issued before that moment as stale until
//! such tokens have expired: clients refresh once; tokens of sessions that ended during
//! the gap cannot be refreshed.
//!
//! While usher is unreachable the task backs off (1 s doubling to 30 s); on
//! reconnection it reads on from its cursor, so nothing is missed unless the outage
//! outlasts the retention (then the gap rule applies).
//!
//! Role changes are also passed to a listener (the live cache drops the answers of the
//! user concerned). Calls [`crate::http`] only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde::Deserialize;

use crate::http::FetchError;
use crate::{Claims, Mode, VerifyError};

const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Settings of the feed task.
#[derive(Clone)]
pub(crate) struct FeedConfig {
    pub(crate) url: String,
    /// The precomputed `Authorization: Basic …` value (RFC 6749 §2.3.1).
    pub(crate) authorization: String,
    pub(crate) wait: Duration,
    pub(crate) timeout: Duration,
}

impl std::fmt::Debug for FeedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedConfig")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// `Basic base64(urlencode(id):urlencode(secret))`, as RFC 6749 §2.3.1 requires.
pub(crate) fn basic_authorization(client_id: &str, secret: &str) -> String {
    fn form(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for b in text.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", form(client_id), form(secret)))
    )
}

#[derive(Debug, Default)]
struct Revoked {
    sids: HashMap<String, i64>,
    jtis: HashMap<String, i64>,
    roles_changed: HashMap<String, i64>,
    /// Deleted clients: their tokens issued at or before the entry are refused.
    clients: HashMap<String, i64>,
    /// A role definition changed (an entry without `sub`).
    any_role_changed: Option<i64>,
    /// Tokens issued before this moment are stale (after a gap).
    gap: Option<i64>,
    /// A gap happened; its moment is the answer of the next successful (fresh) poll.
    gap_pending: bool,
}

/// Told of every role change: `Some(sub)` for a user's, `None` for role definitions.
pub(crate) type RolesListener = Box<dyn Fn(Option<&str>) + Send + Sync>;

/// Unix milliseconds now.
pub(crate) fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Settings of the feed state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FeedLimits {
    /// How long entries are kept at least.
    pub(crate) retention: Duration,
    /// Longest time without a successful poll before feed decisions answer 503.
    pub(crate) max_lag: Duration,
    /// Whether a role-definition change makes every earlier token with roles stale.
    pub(crate) role_definitions: bool,
}

/// What the feed has taught the verifier.
pub(crate) struct FeedState {
    revoked: RwLock<Revoked>,
    cursor: Mutex<Option<String>>,
    last_sync: AtomicI64,
    /// Unix ms of the last successful poll, or of the start before any.
    synced_ms: AtomicI64,
    /// The longest `exp - iat` seen, seconds.
    max_lifetime: AtomicI64,
    retention: i64,
    max_lag_ms: i64,
    role_definitions: bool,
    on_roles_changed: Option<RolesListener>,
}

impl std::fmt::Debug for FeedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedState")
            .field("last_sync", &self.last_sync)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// One entry of the feed. Parsed leniently, so that one odd entry cannot stall the
/// feed on its cursor: an unknown `kind` is ignored, a missing `at` means "now".
#[derive(Debug, Deserialize)]
pub(crate) struct FeedItem {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    at: Option<f64>,
}

fn bump(map: &mut HashMap<String, i64>, key: &str, at: i64) {
    let slot = map.entry(key.to_owned()).or_insert(at);
    *slot = (*slot).max(at);
}

#[derive(Debug, Deserialize)]
struct FeedPage {
    items: Vec<FeedItem>,
    next_cursor: String,
}

impl FeedState {
    /// Empty state, starting from `cursor` (none: from now), at `now_ms`.
    pub(crate) fn new(
        limits: FeedLimits,
        cursor: Option<String>,
        on_roles_changed: Option<RolesListener>,
        now_ms: i64,
    ) -> Self {
        Self {
            revoked: RwLock::new(Revoked::default()),
            cursor: Mutex::new(cursor),
            last_sync: AtomicI64::new(0),
            synced_ms: AtomicI64::new(now_ms),
            max_lifetime: AtomicI64::new(0),
            retention: limits.retention.as_secs() as i64,
            max_lag_ms: limits.max_lag.as_millis() as i64,
            role_definitions: limits.role_definitions,
            on_roles_changed,
        }
    }

    /// Refuses a token the feed has revoked or, in [`Mode::Feed`], made stale, or that
    /// the feed can no longer vouch for (lag). In [`Mode::Live`] usher answers for roles
    /// and freshness, so only revocations apply.
    pub(crate) fn check(&self, claims: &Claims, mode: Mode) -> Result<(), VerifyError> {
        self.check_at(claims, mode, unix_now_ms())
    }

    fn check_at(&self, claims: &Claims, mode: Mode, now_ms: i64) -> Result<(), VerifyError> {
        self.max_lifetime
            .fetch_max(claims.exp.saturating_sub(claims.iat), Ordering::Relaxed);
        let r = self.revoked.read().unwrap_or_else(|e| e.into_inner());
        if claims
            .sid
            .as_ref()
            .is_some_and(|sid| r.sids.contains_key(sid))
        {
            return Err(VerifyError::SessionEnded);
        }
        if r.jtis.contains_key(&claims.jti)
            || r.clients
                .get(&claims.client_id)
                .is_some_and(|&at| claims.iat <= at)
        {
            return Err(VerifyError::Revoked);
        }
        if mode != Mode::Feed {
            return Ok(());
        }
        if now_ms - self.synced_ms.load(Ordering::Relaxed) > self.max_lag_ms {
            return Err(VerifyError::Unavailable);
        }
        let before = |at: Option<&i64>| at.is_some_and(|&at| claims.iat < at);
        if before(r.roles_changed.get(&claims.sub))
            || before(r.gap.as_ref())
            || (self.role_definitions
                && !claims.roles.is_empty()
                && before(r.any_role_changed.as_ref()))
        {
            return Err(VerifyError::Stale);
        }
        Ok(())
    }

    /// The cursor to resume from.
    pub(crate) fn cursor(&self) -> Option<String> {
        self.cursor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Unix seconds of the last successful poll (0: none yet).
    pub(crate) fn last_sync(&self) -> i64 {
        self.last_sync.load(Ordering::Relaxed)
    }

    /// Applies a page of entries; unknown kinds are ignored (forward compatible). Role
    /// changes are then passed to the listener.
    pub(crate) fn apply(&self, items: &[FeedItem], now: i64) {
        let mut r = self.revoked.write().unwrap_or_else(|e| e.into_inner());
        for item in items {
            let at = item
                .at
                .filter(|a| a.is_finite())
                .map_or(now, |a| a.floor() as i64);
            match (item.kind.as_str(), &item.sid, &item.sub, &item.jti) {
                ("session_ended", Some(sid), _, _) => bump(&mut r.sids, sid, at),
                ("token_revoked", _, _, Some(jti)) => bump(&mut r.jtis, jti, at),
                ("roles_changed", _, Some(sub), _) => bump(&mut r.roles_changed, sub, at),
                ("roles_changed", _, None, _) => {
                    r.any_role_changed = Some(r.any_role_changed.map_or(at, |old| old.max(at)));
                }
                ("client_deleted", _, Some(client), _) => bump(&mut r.clients, client, at),
                (kind, ..) => tracing::debug!(kind, "usher-verify: feed entry ignored"),
            }
        }
        drop(r);
        if let Some(listener) = &self.on_roles_changed {
            for item in items.iter().filter(|i| i.kind == "roles_changed") {
                listener(item.sub.as_deref());
            }
        }
    }

    /// A gap: the cursor is dropped, and the moment of the next successful poll (from a
    /// fresh cursor) will make older tokens stale.
    pub(crate) fn begin_gap(&self) {
        self.revoked
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .gap_pending = true;
        *self.cursor.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Milliseconds since the last successful poll (or the start).
    fn lag_ms(&self, now_ms: i64) -> i64 {
        now_ms - self.synced_ms.load(Ordering::Relaxed)
    }

    /// Forgets entries older than the retention or the longest token lifetime seen,
    /// whichever is longer: every token they concern has expired.
    pub(crate) fn prune(&self, now: i64) {
        let keep = self
            .retention
            .max(self.max_lifetime.load(Ordering::Relaxed));
        let horizon = now - keep;
        let mut r = self.revoked.write().unwrap_or_else(|e| e.into_inner());
        r.sids.retain(|_, at| *at >= horizon);
        r.jtis.retain(|_, at| *at >= horizon);
        r.clients.retain(|_, at| *at >= horizon);
        r.roles_changed.retain(|_, at| *at >= horizon);
        r.any_role_changed = r.any_role_changed.filter(|at| *at >= horizon);
        r.gap = r.gap.filter(|at| *at >= horizon);
    }

    /// A successful poll answered at `now_ms` with `cursor`: ends a pending gap at
    /// that moment.
    fn advance(&self, cursor: String, now_ms: i64) {
        let now = now_ms.div_euclid(1000);
        {
            let mut r = self.revoked.write().unwrap_or_else(|e| e.into_inner());
            if r.gap_pending {
                r.gap_pending = false;
                r.gap = Some(r.gap.map_or(now, |g| g.max(now)));
            }
        }
        *self.cursor.lock().unwrap_or_else(|e| e.into_inner()) = Some(cursor);
        self.last_sync.store(now, Ordering::Relaxed);
        self.synced_ms.store(now_ms, Ordering::Relaxed);
    }
}

enum PollError {
    /// 410 or 422: the cursor cannot be continued.
    Gap(StatusCode),
    /// 401/403: the client credentials are refused.
    Credentials(StatusCode),
    Other(FetchError),
}

async fn poll(
    http: &reqwest::Client,
    cfg: &FeedConfig,
    cursor: Option<&str>,
) -> Result<FeedPage, PollError> {
    let mut request = http
        .get(&cfg.url)
        .header(AUTHORIZATION, &cfg.authorization)
        .timeout(cfg.wait + cfg.timeout);
    if let Some(cursor) = cursor {
        request = request.query(&[("since", cursor), ("wait", &cfg.wait.as_secs().to_string())]);
    }
    let response = request
        .send()
        .await
        .map_err(|e| PollError::Other(FetchError::from_reqwest(&e)))?;
    match response.status() {
        StatusCode::OK => response
            .json::<FeedPage>()
            .await
            .map_err(|e| PollError::Other(FetchError::from_reqwest(&e))),
        s @ (StatusCode::GONE | StatusCode::UNPROCESSABLE_ENTITY) => Err(PollError::Gap(s)),
        s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(PollError::Credentials(s)),
        s => Err(PollError::Other(FetchError::new(format!(
            "revocation feed answered {s}"
        )))),
    }
}

/// The feed task: polls until the verifier is dropped (it aborts the task).
pub(crate) async fn run(http: reqwest::Client, cfg: FeedConfig, state: Arc<FeedState>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let cursor = state.cursor();
        let result = poll(&http, &cfg, cursor.as_deref()).await;
        let now_ms = unix_now_ms();
        let pause = match result {
            Ok(page) => {
                state.apply(&page.items, now_ms.div_euclid(1000));
                state.advance(page.next_cursor, now_ms);
                backoff = MIN_BACKOFF;
                None
            }
            Err(PollError::Gap(status)) => {
                tracing::warn!(%status, "usher-verify: revocation feed gap; tokens issued before the next answer will be stale");
                state.begin_gap();
                None
            }
            Err(PollError::Credentials(status)) => {
                tracing::error!(%status, "usher-verify: the revocation feed refuses the client credentials; feed routes answer 503 once the lag is exceeded");
                Some(MAX_BACKOFF)
            }
            Err(PollError::Other(e)) => {
                tracing::warn!(error = %e, "usher-verify: revocation feed unreachable; retrying");
                let pause = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                Some(pause)
            }
        };
        if pause.is_some() && state.lag_ms(now_ms) > state.retention.saturating_mul(1000) {
            // Entries older than usher's retention may be gone: resuming would miss them.
            state.begin_gap();
        }
        state.prune(now_ms.div_euclid(1000));
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, sid: Option<&str>, jti: &str, iat: i64, roles: &[&str]) -> Claims {
        Claims {
            sub: sub.into(),
            client_id: "web".into(),
            sid: sid.map(Into::into),
            scope: String::new(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            superuser: false,
            exp: iat + 3600,
            iat,
            jti: jti.into(),
        }
    }

    fn item(
        kind: &str,
        sid: Option<&str>,
        sub: Option<&str>,
        jti: Option<&str>,
        at: i64,
    ) -> FeedItem {
        FeedItem {
            kind: kind.into(),
            sid: sid.map(Into::into),
            sub: sub.map(Into::into),
            jti: jti.map(Into::into),
            at: Some(at as f64),
        }
    }

    /// A state started at t=0 that never lags in these tests unless `max_lag` says so.
    fn state(retention: u64, role_definitions: bool, cursor: Option<&str>) -> FeedState {
        let limits = FeedLimits {
            retention: Duration::from_secs(retention),
            max_lag: Duration::from_secs(1 << 32),
            role_definitions,
        };
        FeedState::new(limits, cursor.map(Into::into), None, 0)
    }

    fn check(state: &FeedState, claims: &Claims) -> Result<(), VerifyError> {
        state.check_at(claims, Mode::Feed, 0)
    }

    /// Each entry kind refuses exactly the tokens it concerns; roles changes only refuse
    /// tokens issued strictly before them (a token refreshed in the same second passes);
    /// a deleted client's tokens issued at or before the deletion are refused, service
    /// tokens (no `sid`) included.
    #[test]
    fn entries_refuse_what_they_concern() {
        let state = state(3600, true, None);
        state.apply(
            &[
                item("session_ended", Some("s1"), Some("u1"), None, 100),
                item("token_revoked", None, Some("svc"), Some("j9"), 100),
                item("roles_changed", None, Some("u2"), None, 100),
                item("client_deleted", None, Some("old-etl"), None, 100),
                item("something_new", None, None, None, 100),
            ],
            100,
        );
        let s = &state;
        assert_eq!(
            check(s, &claims("u1", Some("s1"), "j1", 50, &[])),
            Err(VerifyError::SessionEnded)
        );
        assert_eq!(check(s, &claims("u1", Some("s2"), "j1", 50, &[])), Ok(()));
        assert_eq!(
            check(s, &claims("svc", None, "j9", 50, &[])),
            Err(VerifyError::Revoked)
        );
        assert_eq!(
            check(s, &claims("u2", Some("s3"), "j2", 99, &[])),
            Err(VerifyError::Stale)
        );
        assert_eq!(check(s, &claims("u2", Some("s3"), "j3", 100, &[])), Ok(()));
        let mut service = claims("old-etl", None, "j5", 100, &[]);
        service.client_id = "old-etl".into();
        assert_eq!(check(s, &service), Err(VerifyError::Revoked));
        service.iat = 101;
        assert_eq!(
            check(s, &service),
            Ok(()),
            "a client re-created later is not refused"
        );
        state.apply(&[item("roles_changed", None, None, None, 200)], 200);
        assert_eq!(
            check(s, &claims("u3", Some("s4"), "j4", 150, &["a"])),
            Err(VerifyError::Stale)
        );
        assert_eq!(check(s, &claims("u3", Some("s4"), "j4", 150, &[])), Ok(()));
    }

    /// In live mode usher answers for roles, so staleness does not apply there (a token
    /// predating a role change gets usher's current answer); revocations still do.
    #[test]
    fn live_mode_applies_revocations_only() {
        let state = state(3600, true, None);
        state.apply(
            &[
                item("roles_changed", None, Some("u2"), None, 100),
                item("session_ended", Some("s1"), Some("u1"), None, 100),
            ],
            100,
        );
        let old = claims("u2", Some("s3"), "j2", 99, &[]);
        assert_eq!(state.check_at(&old, Mode::Live, 0), Ok(()));
        assert_eq!(state.check_at(&old, Mode::Feed, 0), Err(VerifyError::Stale));
        let ended = claims("u1", Some("s1"), "j1", 99, &[]);
        assert_eq!(
            state.check_at(&ended, Mode::Live, 0),
            Err(VerifyError::SessionEnded)
        );
    }

    /// Past the maximum lag without a successful poll, feed decisions are 503 (the feed
    /// can no longer vouch for a token), known revocations are still refused as such,
    /// and live decisions are unaffected; the next successful poll restores them.
    #[test]
    fn lag_beyond_the_bound_is_unavailable() {
        let limits = FeedLimits {
            retention: Duration::from_secs(3600),
            max_lag: Duration::from_secs(75),
            role_definitions: true,
        };
        let state = FeedState::new(limits, None, None, 1_000_000);
        state.apply(
            &[item("session_ended", Some("s1"), Some("u1"), None, 1000)],
            1000,
        );
        let token = claims("u2", Some("s2"), "j", 1000, &[]);
        assert_eq!(state.check_at(&token, Mode::Feed, 1_075_000), Ok(()));
        assert_eq!(
            state.check_at(&token, Mode::Feed, 1_075_001),
            Err(VerifyError::Unavailable)
        );
        assert_eq!(state.check_at(&token, Mode::Live, 1_075_001), Ok(()));
        let ended = claims("u1", Some("s1"), "j", 1000, &[]);
        assert_eq!(
            state.check_at(&ended, Mode::Feed, 1_075_001),
            Err(VerifyError::SessionEnded)
        );
        state.advance("c1".into(), 1_100_000);
        assert_eq!(state.check_at(&token, Mode::Feed, 1_175_000), Ok(()));
        assert_eq!(state.last_sync(), 1100);
    }

    /// Entries older than the retention are pruned, unless a token seen lives longer
    /// than the retention: then they are kept for that lifetime.
    #[test]
    fn prune_keeps_entries_for_the_longest_token_lifetime() {
        let state = state(3600, false, None);
        state.apply(
            &[item("session_ended", Some("s1"), Some("u1"), None, 100)],
            100,
        );
        state.prune(100 + 3600);
        assert!(check(&state, &claims("u1", Some("s1"), "j", 90, &[])).is_err());
        state.prune(101 + 3600);
        assert_eq!(
            check(&state, &claims("u1", Some("s1"), "j", 90, &[])),
            Ok(())
        );

        let state = self::state(3600, false, None);
        let mut long = claims("u2", Some("s2"), "j", 100, &[]);
        long.exp = long.iat + 7200;
        assert_eq!(check(&state, &long), Ok(()));
        state.apply(
            &[item("session_ended", Some("s2"), Some("u2"), None, 150)],
            150,
        );
        state.prune(150 + 3601);
        assert_eq!(
            check(&state, &long),
            Err(VerifyError::SessionEnded),
            "kept past the retention"
        );
        state.prune(150 + 7201);
        assert_eq!(check(&state, &long), Ok(()));
    }

    /// A gap drops the cursor at once, but its moment is when the next (fresh) poll
    /// answers: tokens issued before that moment are stale, so revocations written
    /// between the gap and the fresh cursor are not silently lost.
    #[test]
    fn gap_moment_is_the_next_successful_poll() {
        let state = state(3600, false, Some("c1"));
        state.begin_gap();
        assert_eq!(state.cursor(), None);
        let token = claims("u1", Some("s1"), "j", 5000, &[]);
        assert_eq!(check(&state, &token), Ok(()), "no moment yet");
        state.advance("c9".into(), 5_020_500);
        assert_eq!(state.cursor().as_deref(), Some("c9"));
        assert_eq!(check(&state, &token), Err(VerifyError::Stale));
        let later = claims("u1", Some("s1"), "j", 5020, &[]);
        assert_eq!(check(&state, &later), Ok(()));
        state.advance("c10".into(), 5_060_000);
        assert_eq!(check(&state, &later), Ok(()), "one gap, one moment");
    }

    /// Role changes reach the listener: the user's, and role definitions (`None`).
    #[test]
    fn role_changes_reach_the_listener() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let listener: RolesListener =
            Box::new(move |sub| log.lock().unwrap().push(sub.map(str::to_owned)));
        let limits = FeedLimits {
            retention: Duration::from_secs(3600),
            max_lag: Duration::from_secs(75),
            role_definitions: true,
        };
        let state = FeedState::new(limits, None, Some(listener), 0);
        state.apply(
            &[
                item("roles_changed", None, Some("u1"), None, 1),
                item("session_ended", Some("s"), Some("u2"), None, 1),
                item("roles_changed", None, None, None, 1),
            ],
            1,
        );
        assert_eq!(*seen.lock().unwrap(), vec![Some("u1".to_owned()), None]);
    }

    /// Client credentials are form-urlencoded before Basic encoding (RFC 6749 §2.3.1).
    #[test]
    fn basic_credentials_are_form_encoded() {
        let value = basic_authorization("movie api", "s:e/c");
        let decoded = STANDARD
            .decode(value.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "movie+api:s%3Ae%2Fc");
    }
}
