//! The revocation feed for resource servers (`GET /api/v1/revocations`): the change feed's
//! entries that matter to a token verifier (ended sessions, role changes, revoked service
//! tokens, deleted clients), read by cursor, optionally waiting for the next entry (long
//! poll).
//!
//! A cursor is opaque: the database's feed epoch (random, chosen once per database), the
//! last position read and its date. A cursor of another epoch, or past the highest
//! position this database ever allocated (a restore from an older backup), was not
//! issued here and is answered `422`. Entries are kept for the longest access-token
//! lifetime (plus a minute), so a cursor dated longer ago than that lifetime may have
//! missed pruned entries and is answered `410 Gone`.
//!
//! A cursor's date bounds the time of every entry after its position, so that the
//! entries still unread cannot be pruned while the cursor is accepted. A cursor that
//! caught up with the feed is dated by its answer: whatever comes after it is written
//! later. A cursor with entries left after it (a full page, a cursor of an event that
//! is not the last one read) is dated by the time of the entry at its position, since
//! the next entries may be as old as that: a reader working through a backlog older than
//! the retention gets a `410` instead of silently skipping entries pruned before it
//! reached them.
//!
//! Waiting readers are bounded per instance and per client ([`FeedHub::try_wait`]); a
//! waiter wakes on every applied change but reads the database again only when this
//! process has seen an entry after its position, and gives up as soon as its client is
//! deleted or its secret changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::accounts::{decode_cursor, encode_cursor};
use super::clients::{self, Client};
use super::feed::{CLIENT_DELETED, ROLES_CHANGED, SESSION_ENDED, TOKEN_REVOKED};
use super::{FieldError, OAuthCode, OAuthError, ServiceError};
use crate::AppState;
use crate::config::Config;
use crate::store::ChangeRecord;
use crate::token::constant_time_eq;

/// Longest accepted `wait`, seconds.
pub const MAX_WAIT: u64 = 60;

/// One entry of the feed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FeedItem {
    /// `session_ended`, `roles_changed`, `token_revoked` or `client_deleted`.
    pub kind: String,
    /// The ended session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The user (or client) concerned; null for a role definition change.
    pub sub: Option<String>,
    /// The revoked token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// When the change was written (RFC 3339, UTC).
    pub at: String,
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
    /// The position `next_cursor` stands for.
    #[serde(skip)]
    pub next_seq: i64,
}

/// The feed's per-process state: the database's epoch and the waiting readers.
#[derive(Debug)]
pub struct FeedHub {
    epoch: String,
    waiting: Mutex<Waiting>,
    max_waiters: usize,
    max_per_client: usize,
}

#[derive(Debug, Default)]
struct Waiting {
    total: usize,
    per_client: HashMap<String, usize>,
}

/// A place among the waiting readers, given back when dropped.
#[derive(Debug)]
pub struct WaitPermit {
    hub: Arc<FeedHub>,
    client_id: String,
}

/// Every waiting place (of the instance or of the client) is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyWaiters;

impl FeedHub {
    /// The hub of a database whose feed epoch is `epoch`, with the configured limits.
    pub fn new(epoch: String, config: &Config) -> Self {
        Self {
            epoch,
            waiting: Mutex::new(Waiting::default()),
            max_waiters: config.feed_max_waiters,
            max_per_client: config.feed_max_waiters_per_client,
        }
    }

    /// Takes a waiting place for `client_id`, unless the instance or the client holds
    /// its maximum already.
    pub fn try_wait(self: &Arc<Self>, client_id: &str) -> Result<WaitPermit, TooManyWaiters> {
        let mut w = self
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = w.per_client.get(client_id).copied().unwrap_or(0);
        if w.total >= self.max_waiters || mine >= self.max_per_client {
            return Err(TooManyWaiters);
        }
        w.total += 1;
        w.per_client.insert(client_id.to_owned(), mine + 1);
        Ok(WaitPermit {
            hub: self.clone(),
            client_id: client_id.to_owned(),
        })
    }

    /// The cursor of position `seq`, dated `dated` (see the module docs).
    fn cursor_at(&self, seq: i64, dated: i64) -> String {
        encode_cursor("rv", &format!("{}.{seq}.{dated}", self.epoch))
    }
}

impl Drop for WaitPermit {
    fn drop(&mut self) {
        let mut w = self
            .hub
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        w.total = w.total.saturating_sub(1);
        if let Some(n) = w.per_client.get_mut(&self.client_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                w.per_client.remove(&self.client_id);
            }
        }
    }
}

/// The client reading the feed, as it was when it authenticated.
#[derive(Debug, Clone)]
pub struct Subscriber {
    client_id: String,
    secret_hash: Option<String>,
}

impl Subscriber {
    /// The reader `client`, just authenticated.
    pub fn of(client: &Client) -> Self {
        Self {
            client_id: client.client_id.clone(),
            secret_hash: client.secret_hash.clone(),
        }
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `invalid_client` when the client was deleted or its secret changed since it
    /// authenticated (a cached lookup).
    pub async fn recheck(&self, app: &AppState) -> Result<(), ServiceError> {
        let same = match clients::find(app, &self.client_id).await? {
            Some(client) => match (&client.secret_hash, &self.secret_hash) {
                (Some(now), Some(then)) => constant_time_eq(now.as_bytes(), then.as_bytes()),
                _ => false,
            },
            None => false,
        };
        if same {
            Ok(())
        } else {
            Err(ServiceError::OAuth(OAuthError::new(
                OAuthCode::InvalidClient,
                "client authentication failed",
            )))
        }
    }
}

/// Parses a cursor: `422` if this database did not issue it (another epoch, or a
/// position it never allocated), `410` if dated longer ago than the access-token
/// lifetime (entries after it may have been pruned).
pub async fn parse_cursor(app: &AppState, cursor: &str) -> Result<i64, ServiceError> {
    let bad = || {
        ServiceError::Validation(vec![FieldError::new(
            "since",
            "format",
            "not a cursor issued by this endpoint",
        )])
    };
    let text = decode_cursor("rv", cursor).ok_or_else(bad)?;
    let mut parts = text.splitn(3, '.');
    let (Some(epoch), Some(seq), Some(issued)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if !constant_time_eq(epoch.as_bytes(), app.revocations.epoch.as_bytes()) {
        return Err(bad());
    }
    let (seq, issued) = (
        seq.parse::<i64>().map_err(|_| bad())?,
        issued.parse::<i64>().map_err(|_| bad())?,
    );
    if seq < 0 || (seq > app.feed.latest_seq() && seq > app.store.change_seq_high_water().await?) {
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
    [SESSION_ENDED, ROLES_CHANGED, TOKEN_REVOKED, CLIENT_DELETED].contains(&c.kind.as_str())
}

/// What one read got: the exposed entries, the position read up to and, when the last
/// page read was full (entries may remain after that position), the time of the entry
/// at it.
struct Read {
    items: Vec<ChangeRecord>,
    after: i64,
    backlog_at: Option<i64>,
}

/// Reads the entries after `after`, page after page while pages are full of entries
/// that are not exposed, until it has some or the database has no more.
async fn read_exposed(app: &AppState, mut after: i64) -> Result<Read, ServiceError> {
    let page = app.config.feed_page_size;
    loop {
        let rows = app.store.changes_after(after, page).await?;
        let full = rows.len() as i64 >= page;
        let mut backlog_at = None;
        if let Some(last) = rows.last() {
            after = last.seq;
            backlog_at = full.then_some(last.at);
        }
        let items: Vec<ChangeRecord> = rows.into_iter().filter(exposed).collect();
        if !items.is_empty() || !full {
            return Ok(Read {
                items,
                after,
                backlog_at,
            });
        }
    }
}

/// The page of `read` answered at `now`: each entry's cursor is dated by the entry
/// (entries follow it), except the last of a read that caught up; `next_cursor` is dated
/// `now` when the read caught up, by the last entry read otherwise.
fn page_of(hub: &FeedHub, read: Read, now: i64) -> FeedPage {
    let caught_up = read.backlog_at.is_none();
    let count = read.items.len();
    let items = read
        .items
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let dated = if caught_up && i + 1 == count {
                now
            } else {
                c.at.min(now)
            };
            FeedItem {
                cursor: hub.cursor_at(c.seq, dated),
                kind: c.kind,
                sid: c.sid,
                sub: c.sub,
                jti: c.jti,
                at: crate::clock::rfc3339(c.at),
            }
        })
        .collect();
    let dated = read.backlog_at.map_or(now, |at| at.min(now));
    FeedPage {
        items,
        next_cursor: hub.cursor_at(read.after, dated),
        next_seq: read.after,
    }
}

/// Reads entries after `since` for `reader` (none: start from now), waiting up to `wait`
/// for one. Ends early with `invalid_client` when the reader's client is deleted or its
/// secret changes while it waits.
pub async fn read(
    app: &AppState,
    reader: &Subscriber,
    since: Option<i64>,
    wait: Duration,
) -> Result<FeedPage, ServiceError> {
    let hub = &app.revocations;
    let mut after = match since {
        Some(seq) => seq,
        None => {
            let last = app.store.last_change_seq().await?;
            return Ok(FeedPage {
                items: Vec::new(),
                next_cursor: hub.cursor_at(last, app.clock.now()),
                next_seq: last,
            });
        }
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut first = true;
    loop {
        // Registered before the read, so an entry applied meanwhile still wakes us.
        let changed = app.feed.changed();
        let mut read = Read {
            items: Vec::new(),
            after,
            backlog_at: None,
        };
        if first || app.feed.latest_seq() > after {
            read = read_exposed(app, after).await?;
            after = read.after;
        }
        first = false;
        if !read.items.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(page_of(hub, read, app.clock.now()));
        }
        let _ = tokio::time::timeout_at(deadline, changed).await;
        reader.recheck(app).await?;
    }
}
