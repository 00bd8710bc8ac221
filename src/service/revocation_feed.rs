//! The revocation feed for resource servers (`GET /api/v1/revocations`): the change feed's
//! entries that matter to a token verifier (ended sessions, role changes, revoked service
//! tokens), read by cursor, optionally waiting for the next entry (long poll).
//!
//! A cursor is opaque: the last position read and when it was issued. Entries are kept
//! for the longest access-token lifetime, so a cursor issued longer ago than that may
//! have missed pruned entries and is answered `410 Gone`.

use std::time::Duration;

use serde::Serialize;

use super::accounts::{decode_cursor, encode_cursor};
use super::feed::{ROLES_CHANGED, SESSION_ENDED, TOKEN_REVOKED};
use super::{FieldError, ServiceError};
use crate::AppState;
use crate::store::ChangeRecord;

/// Longest accepted `wait`, seconds.
pub const MAX_WAIT: u64 = 60;
/// Most entries in one answer.
const PAGE: i64 = 500;

/// One entry of the feed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FeedItem {
    /// `session_ended`, `roles_changed` or `token_revoked`.
    pub kind: String,
    /// The ended session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The user (or client) concerned; null for a role definition change.
    pub sub: Option<String>,
    /// The revoked token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Unix seconds.
    pub at: i64,
    /// The cursor just after this entry (SSE `id`).
    #[serde(skip)]
    pub cursor: String,
}

/// A page of the feed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FeedPage {
    /// Entries in order.
    pub items: Vec<FeedItem>,
    /// Where to continue.
    pub next_cursor: String,
}

fn cursor_at(seq: i64, now: i64) -> String {
    encode_cursor("rv", &format!("{seq}.{now}"))
}

/// Parses a cursor: `422` if usher did not issue it, `410` if older than the retention.
pub fn parse_cursor(app: &AppState, cursor: &str) -> Result<i64, ServiceError> {
    let bad = || {
        ServiceError::Validation(vec![FieldError::new(
            "since",
            "format",
            "not a cursor issued by this endpoint",
        )])
    };
    let text = decode_cursor("rv", cursor).ok_or_else(bad)?;
    let (seq, issued) = text.split_once('.').ok_or_else(bad)?;
    let (seq, issued) = (
        seq.parse::<i64>().map_err(|_| bad())?,
        issued.parse::<i64>().map_err(|_| bad())?,
    );
    if seq < 0 {
        return Err(bad());
    }
    let retention = app.config.access_token_ttl.as_secs() as i64;
    if issued < app.clock.now() - retention {
        return Err(ServiceError::Gone {
            code: "cursor_expired",
            detail: "entries since this cursor may have been pruned; start again without since",
        });
    }
    Ok(seq)
}

fn exposed(c: &ChangeRecord) -> bool {
    c.kind == SESSION_ENDED || c.kind == ROLES_CHANGED || c.kind == TOKEN_REVOKED
}

/// Reads entries after `since` (none: start from now), waiting up to `wait` for one.
pub async fn read(
    app: &AppState,
    since: Option<i64>,
    wait: Duration,
) -> Result<FeedPage, ServiceError> {
    let mut after = match since {
        Some(seq) => seq,
        None => {
            let now = app.clock.now();
            let last = app.store.last_change_seq().await?;
            return Ok(FeedPage {
                items: Vec::new(),
                next_cursor: cursor_at(last, now),
            });
        }
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Registered before the read, so an entry applied meanwhile still wakes us.
        let changed = app.feed.changed();
        let rows = app.store.changes_after(after, PAGE).await?;
        let now = app.clock.now();
        if let Some(last) = rows.last() {
            after = last.seq;
        }
        let items: Vec<FeedItem> = rows
            .into_iter()
            .filter(exposed)
            .map(|c| FeedItem {
                cursor: cursor_at(c.seq, now),
                kind: c.kind,
                sid: c.sid,
                sub: c.sub,
                jti: c.jti,
                at: c.at,
            })
            .collect();
        if !items.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(FeedPage {
                items,
                next_cursor: cursor_at(after, now),
            });
        }
        let _ = tokio::time::timeout_at(deadline, changed).await;
    }
}
