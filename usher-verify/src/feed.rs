//! Feed mode: a background task long-polls usher's revocation feed
//! (`GET /api/v1/revocations?since=CURSOR&wait=SECONDS`, client_secret_basic) and keeps
//! in memory the ended sessions, the revoked `jti`s and, per user, when their roles last
//! changed. A token is refused when its session ended or its `jti` was revoked, and as
//! stale when its user's roles changed after its `iat` (the client refreshes it).
//!
//! Entries are kept for the retention (the longest access-token lifetime): a token
//! issued before an entry expires before the entry is pruned.
//!
//! **Gaps.** A `410 Gone` (cursor older than usher's retention) or a `422` (a cursor usher
//! does not know, e.g. after a database restore) means entries may have been missed.
//! The verifier then starts again from a fresh cursor and treats every token issued
//! before that moment as stale until such tokens have expired: clients refresh once;
//! tokens of sessions that ended during the gap cannot be refreshed.
//!
//! While usher is unreachable the task backs off (1 s doubling to 30 s) and the last
//! known state keeps applying; on reconnection it reads on from its cursor, so nothing
//! is missed unless the outage outlasts the retention (then the gap rule applies).
//! Calls [`crate::http`] only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde::Deserialize;

use crate::http::FetchError;
use crate::{Claims, VerifyError, unix_now};

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
    /// A role definition changed (an entry without `sub`).
    any_role_changed: Option<i64>,
    /// Tokens issued before this moment are stale (after a gap).
    gap: Option<i64>,
}

/// What the feed has taught the verifier.
#[derive(Debug)]
pub(crate) struct FeedState {
    revoked: RwLock<Revoked>,
    cursor: Mutex<Option<String>>,
    last_sync: AtomicI64,
    retention: i64,
    role_definitions: bool,
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
    /// Empty state, starting from `cursor` (none: from now).
    pub(crate) fn new(retention: Duration, role_definitions: bool, cursor: Option<String>) -> Self {
        Self {
            revoked: RwLock::new(Revoked::default()),
            cursor: Mutex::new(cursor),
            last_sync: AtomicI64::new(0),
            retention: retention.as_secs() as i64,
            role_definitions,
        }
    }

    /// Refuses a token the feed has revoked or made stale.
    pub(crate) fn check(&self, claims: &Claims) -> Result<(), VerifyError> {
        let r = self.revoked.read().unwrap_or_else(|e| e.into_inner());
        if claims
            .sid
            .as_ref()
            .is_some_and(|sid| r.sids.contains_key(sid))
        {
            return Err(VerifyError::SessionEnded);
        }
        if r.jtis.contains_key(&claims.jti) {
            return Err(VerifyError::Revoked);
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

    /// Applies a page of entries; unknown kinds are ignored (forward compatible).
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
                (kind, ..) => tracing::debug!(kind, "usher-verify: feed entry ignored"),
            }
        }
    }

    /// Records a gap at `now`: tokens issued before it are stale from now on.
    pub(crate) fn gap(&self, now: i64) {
        self.revoked.write().unwrap_or_else(|e| e.into_inner()).gap = Some(now);
        *self.cursor.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Forgets entries older than the retention: every token they concern has expired.
    pub(crate) fn prune(&self, now: i64) {
        let horizon = now - self.retention;
        let mut r = self.revoked.write().unwrap_or_else(|e| e.into_inner());
        r.sids.retain(|_, at| *at >= horizon);
        r.jtis.retain(|_, at| *at >= horizon);
        r.roles_changed.retain(|_, at| *at >= horizon);
        r.any_role_changed = r.any_role_changed.filter(|at| *at >= horizon);
        r.gap = r.gap.filter(|at| *at >= horizon);
    }

    fn advance(&self, cursor: String, now: i64) {
        *self.cursor.lock().unwrap_or_else(|e| e.into_inner()) = Some(cursor);
        self.last_sync.store(now, Ordering::Relaxed);
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
        let now = unix_now();
        let pause = match result {
            Ok(page) => {
                state.apply(&page.items, now);
                state.advance(page.next_cursor, now);
                backoff = MIN_BACKOFF;
                None
            }
            Err(PollError::Gap(status)) => {
                tracing::warn!(%status, "usher-verify: revocation feed gap; tokens issued before now are stale");
                state.gap(now);
                None
            }
            Err(PollError::Credentials(status)) => {
                tracing::error!(%status, "usher-verify: the revocation feed refuses the client credentials");
                Some(MAX_BACKOFF)
            }
            Err(PollError::Other(e)) => {
                tracing::warn!(error = %e, "usher-verify: revocation feed unreachable; retrying");
                let pause = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                Some(pause)
            }
        };
        state.prune(now);
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

    /// Each entry kind refuses exactly the tokens it concerns; roles changes only refuse
    /// tokens issued strictly before them (a token refreshed in the same second passes).
    #[test]
    fn entries_refuse_what_they_concern() {
        let state = FeedState::new(Duration::from_secs(3600), true, None);
        state.apply(
            &[
                item("session_ended", Some("s1"), Some("u1"), None, 100),
                item("token_revoked", None, Some("svc"), Some("j9"), 100),
                item("roles_changed", None, Some("u2"), None, 100),
                item("something_new", None, None, None, 100),
            ],
            100,
        );
        assert_eq!(
            state.check(&claims("u1", Some("s1"), "j1", 50, &[])),
            Err(VerifyError::SessionEnded)
        );
        assert_eq!(
            state.check(&claims("u1", Some("s2"), "j1", 50, &[])),
            Ok(())
        );
        assert_eq!(
            state.check(&claims("svc", None, "j9", 50, &[])),
            Err(VerifyError::Revoked)
        );
        assert_eq!(
            state.check(&claims("u2", Some("s3"), "j2", 99, &[])),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            state.check(&claims("u2", Some("s3"), "j3", 100, &[])),
            Ok(())
        );
        state.apply(&[item("roles_changed", None, None, None, 200)], 200);
        assert_eq!(
            state.check(&claims("u3", Some("s4"), "j4", 150, &["a"])),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            state.check(&claims("u3", Some("s4"), "j4", 150, &[])),
            Ok(())
        );
    }

    /// Entries older than the retention are pruned; a gap makes older tokens stale and
    /// drops the cursor so the next poll starts afresh.
    #[test]
    fn prune_and_gap() {
        let state = FeedState::new(Duration::from_secs(3600), false, Some("c1".into()));
        state.apply(
            &[item("session_ended", Some("s1"), Some("u1"), None, 100)],
            100,
        );
        state.prune(100 + 3600);
        assert!(
            state
                .check(&claims("u1", Some("s1"), "j", 90, &[]))
                .is_err()
        );
        state.prune(101 + 3600);
        assert!(state.check(&claims("u1", Some("s1"), "j", 90, &[])).is_ok());
        state.gap(5000);
        assert_eq!(state.cursor(), None);
        assert_eq!(
            state.check(&claims("u1", Some("s1"), "j", 4999, &[])),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            state.check(&claims("u1", Some("s1"), "j", 5000, &[])),
            Ok(())
        );
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
