//! Feed mode: a background task long-polls usher's revocation feed
//! (`GET /api/v1/revocations?since=CURSOR&wait=SECONDS`, client_secret_basic) and keeps
//! in memory the ended sessions, the revoked `jti`s, the deleted clients and, per user,
//! when their roles last changed. A token is refused when its session ended or its `jti`
//! was revoked (whenever it was issued), or its client was deleted at or after its
//! `iat`, and as stale when its user's roles changed at or after its `iat` (the client
//! refreshes it).
//!
//! **Same second.** `iat` and the entries' `at` are whole seconds, so a token issued in
//! the second of a change cannot be told to come before or after it: a token refreshed
//! at 100.2 s (`iat` 100) predates a role removed at 100.7 s (`at` 100). Such tokens are
//! refused (`iat <= at`, for role changes, deleted clients and gaps alike): the price is
//! that a token issued in the same second *after* the change is refused as stale too,
//! so its client refreshes once more, and a token issued from the next second on
//! passes. Accepting them instead would let a removed role live on until the token
//! expires.
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
//! fresh poll has answered, treats every token issued up to that second as stale until
//! such tokens have expired: clients refresh once; tokens of sessions that ended during
//! the gap cannot be refreshed.
//!
//! While usher is unreachable the task backs off (1 s doubling to 30 s); on
//! reconnection it reads on from its cursor, so nothing is missed unless the outage
//! outlasts the retention (then the gap rule applies).
//!
//! Role changes are also passed to a listener (the live cache drops the answers of the
//! user concerned). The network side is in `task`, which calls [`crate::http`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::{Claims, Mode, VerifyError};

mod task;
#[cfg(test)]
mod tests;

pub(crate) use task::{FeedConfig, basic_authorization, run};

#[derive(Debug, Default)]
struct Revoked {
    sids: HashMap<String, i64>,
    jtis: HashMap<String, i64>,
    roles_changed: HashMap<String, i64>,
    /// Deleted clients: their tokens issued at or before the entry are refused.
    clients: HashMap<String, i64>,
    /// A role definition changed (an entry without `sub`).
    any_role_changed: Option<i64>,
    /// Tokens issued at or before this second are stale (after a gap).
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
    #[serde(default, deserialize_with = "time_of_entry")]
    at: Option<i64>,
}

/// `at` as usher writes it (RFC 3339), or as Unix seconds; anything else counts as
/// missing ("now").
fn time_of_entry<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use time::format_description::well_known::Rfc3339;
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => time::OffsetDateTime::parse(&s, &Rfc3339)
            .ok()
            .map(|t| t.unix_timestamp()),
        serde_json::Value::Number(n) => n
            .as_f64()
            .filter(|a| a.is_finite() && a.abs() < 1e15)
            .map(|a| a.floor() as i64),
        _ => None,
    })
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
        // `<=`: a token of the change's second may predate it (see "Same second").
        let not_after = |at: Option<&i64>| at.is_some_and(|&at| claims.iat <= at);
        if not_after(r.roles_changed.get(&claims.sub))
            || not_after(r.gap.as_ref())
            || (self.role_definitions
                && !claims.roles.is_empty()
                && not_after(r.any_role_changed.as_ref()))
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
            let at = item.at.unwrap_or(now);
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
