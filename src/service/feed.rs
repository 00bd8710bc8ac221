//! The change feed: how every instance learns at once that a session ended (and, later,
//! that roles changed) without a database round trip per request.
//!
//! Writers store the change in the database first (the `changes` table, in the same
//! transaction as the change itself), then apply it to this process's view and publish
//! it on the shared state's channel. Every instance keeps a view built from the database
//! at start, fed by the channel, and re-read from the database whenever the channel
//! reconnects and every `feed_sync_interval` as a safety net. Losing Redis therefore
//! delays nothing that the database has not already made durable.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::Notify;

use crate::AppState;
use crate::state::FeedSignal;
use crate::store::{ChangeRecord, Store, StoreError};

/// Feed entry kind: a session ended.
pub const SESSION_ENDED: &str = "session_ended";
/// Feed entry kind: a user's roles or flags (`sub` set) or role definitions (`sub`
/// null) changed.
pub const ROLES_CHANGED: &str = "roles_changed";
/// Feed entry kind: a role was created (changes nobody's permissions; instances reload
/// role definitions; not shown to resource servers).
pub const ROLE_CREATED: &str = "role_created";
/// Feed entry kind: a client was changed or deleted (`sub` = client id).
pub const CLIENT_CHANGED: &str = "client_changed";
/// Feed entry kind: a client was deleted (`sub` = client id); its tokens are refused.
pub const CLIENT_DELETED: &str = "client_deleted";
/// Feed entry kind: an access token without a session was revoked (`jti`).
pub const TOKEN_REVOKED: &str = "token_revoked";

/// Page size of catch-up reads.
const PAGE: i64 = 1000;

/// What a catch-up did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// Entries read.
    pub read: usize,
    /// Entries may have been pruned before this process read them.
    pub lagged: bool,
}

/// A function told of every applied entry.
type Listener = Box<dyn Fn(&ChangeRecord) + Send + Sync>;

/// This process's view of the feed.
pub struct ChangeFeed {
    ended: RwLock<HashMap<String, i64>>,
    revoked: RwLock<HashMap<String, i64>>,
    deleted_clients: RwLock<HashMap<String, i64>>,
    synced_seq: AtomicI64,
    /// Unix seconds of the last successful read from the database (load or catch-up).
    synced_at: AtomicI64,
    /// The highest `seq` applied here, from whatever source.
    latest_seq: AtomicI64,
    retention_secs: i64,
    notify: Notify,
    listeners: RwLock<Vec<Listener>>,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("synced_seq", &self.synced_seq)
            .field("ended", &self.ended_count())
            .finish_non_exhaustive()
    }
}

impl ChangeFeed {
    /// An empty view that remembers ended sessions for `retention_secs`.
    pub fn new(retention_secs: i64) -> Self {
        Self {
            ended: RwLock::new(HashMap::new()),
            revoked: RwLock::new(HashMap::new()),
            deleted_clients: RwLock::new(HashMap::new()),
            synced_seq: AtomicI64::new(0),
            synced_at: AtomicI64::new(0),
            latest_seq: AtomicI64::new(0),
            retention_secs,
            notify: Notify::new(),
            listeners: RwLock::new(Vec::new()),
        }
    }

    /// Registers a function called for every applied entry (other in-process views).
    pub fn on_change(&self, f: impl Fn(&ChangeRecord) + Send + Sync + 'static) {
        self.listeners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Box::new(f));
    }

    /// True when the session is known to have ended.
    pub fn is_session_ended(&self, sid: &str) -> bool {
        self.ended
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(sid)
    }

    /// True when the access token `jti` was revoked.
    pub fn is_token_revoked(&self, jti: &str) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(jti)
    }

    /// True when the client was deleted at or after `issued_at` (its tokens are dead).
    pub fn is_client_deleted(&self, client_id: &str, issued_at: i64) -> bool {
        self.deleted_clients
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(client_id)
            .is_some_and(|at| *at >= issued_at)
    }

    /// Applies entries (idempotent) and wakes waiters.
    pub fn apply(&self, changes: &[ChangeRecord]) {
        if changes.is_empty() {
            return;
        }
        if let Some(max) = changes.iter().map(|c| c.seq).max() {
            self.latest_seq.fetch_max(max, Ordering::SeqCst);
        }
        {
            let mut ended = self
                .ended
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for c in changes {
                if c.kind == SESSION_ENDED
                    && let Some(sid) = &c.sid
                {
                    ended.insert(sid.clone(), c.at);
                }
            }
        }
        if changes.iter().any(|c| c.kind == CLIENT_DELETED) {
            let mut deleted = self
                .deleted_clients
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for c in changes {
                if c.kind == CLIENT_DELETED
                    && let Some(id) = &c.sub
                {
                    deleted.insert(id.clone(), c.at);
                }
            }
        }
        if changes.iter().any(|c| c.kind == TOKEN_REVOKED) {
            let mut revoked = self
                .revoked
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for c in changes {
                if c.kind == TOKEN_REVOKED
                    && let Some(jti) = &c.jti
                {
                    revoked.insert(jti.clone(), c.at);
                }
            }
        }
        let listeners = self
            .listeners
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for c in changes {
            for l in listeners.iter() {
                l(c);
            }
        }
        self.notify.notify_waiters();
    }

    /// Builds the view from the database: every entry younger than the retention.
    pub async fn load(&self, store: &dyn Store, now: i64) -> Result<(), StoreError> {
        let last = store.last_change_seq().await?;
        let recent = store.changes_since(now - self.retention_secs).await?;
        self.apply(&recent);
        self.synced_seq.fetch_max(last, Ordering::SeqCst);
        self.latest_seq.fetch_max(last, Ordering::SeqCst);
        self.synced_at.store(now, Ordering::SeqCst);
        Ok(())
    }

    /// Reads every entry written since the last read (seq order is commit order). The
    /// answer says whether entries may have been missed: the last successful read is
    /// older than half the retention, so the janitor may have deleted entries this
    /// process never saw (views built on entries must then be rebuilt from the tables).
    pub async fn catch_up(&self, store: &dyn Store, now: i64) -> Result<CatchUp, StoreError> {
        let lagged = now - self.synced_at.load(Ordering::SeqCst) > self.retention_secs / 2;
        let mut read = 0;
        loop {
            let after = self.synced_seq.load(Ordering::SeqCst);
            let page = store.changes_after(after, PAGE).await?;
            let Some(last) = page.last().map(|c| c.seq) else {
                break;
            };
            read += page.len();
            self.apply(&page);
            self.synced_seq.fetch_max(last, Ordering::SeqCst);
            if (page.len() as i64) < PAGE {
                break;
            }
        }
        self.synced_at.store(now, Ordering::SeqCst);
        Ok(CatchUp { read, lagged })
    }

    /// Forgets ended sessions older than the retention (their tokens have expired).
    pub fn prune(&self, now: i64) {
        let cutoff = now - self.retention_secs;
        self.ended
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, at| *at >= cutoff);
        self.revoked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, at| *at >= cutoff);
        self.deleted_clients
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, at| *at >= cutoff);
    }

    /// The highest feed position this process has seen (applied or read at start): a
    /// reader positioned at or after it has nothing new to read from the database.
    pub fn latest_seq(&self) -> i64 {
        self.latest_seq.load(Ordering::SeqCst)
    }

    /// Number of ended sessions remembered.
    pub fn ended_count(&self) -> usize {
        self.ended
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// A future that resolves after the next applied entry; it counts from its creation,
    /// even before it is first polled.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

/// Makes changes already committed to the database visible: applies them here at once and
/// publishes them to the other instances. A failed publish is logged, not returned: the
/// database holds the change and every instance re-reads it.
pub async fn publish(app: &AppState, changes: &[ChangeRecord]) {
    if changes.is_empty() {
        return;
    }
    app.feed.apply(changes);
    super::authz::after_changes(app).await;
    match serde_json::to_string(changes) {
        Ok(payload) => {
            if let Err(e) = app.state.publish(&payload).await {
                tracing::warn!(error = %e, "change feed publish failed; instances will catch up from the database");
            }
        }
        Err(e) => tracing::error!(error = %e, "change feed: cannot encode"),
    }
}

/// Runs the view's maintenance forever: channel messages, resyncs on (re)connection,
/// the periodic catch-up, and pruning.
pub async fn run(app: AppState) {
    let mut signals = app.state.subscribe();
    let mut tick = tokio::time::interval(app.config.feed_sync_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            signal = signals.recv() => match signal {
                Some(FeedSignal::Message(payload)) => {
                    match serde_json::from_str::<Vec<ChangeRecord>>(&payload) {
                        Ok(changes) => {
                            app.feed.apply(&changes);
                            super::authz::after_changes(&app).await;
                        }
                        Err(e) => tracing::warn!(error = %e, "change feed: unreadable message"),
                    }
                }
                Some(FeedSignal::Resync) => resync(&app).await,
                None => {
                    tracing::warn!("change feed subscription closed; polling only");
                    signals = app.state.subscribe();
                    tokio::time::sleep(app.config.feed_sync_interval).await;
                }
            },
            _ = tick.tick() => {
                resync(&app).await;
                app.feed.prune(app.clock.now());
            }
        }
    }
}

/// Catches up with the database; after a lag that may have lost entries, drops every
/// cached user and client and reloads role definitions, so nothing stale survives it.
pub async fn resync(app: &AppState) {
    match app.feed.catch_up(app.store.as_ref(), app.clock.now()).await {
        Ok(CatchUp { lagged: true, .. }) => {
            tracing::warn!("change feed lagged past half its retention: caches rebuilt");
            app.authz.forget_everything();
            app.clients.forget_all();
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "change feed catch-up failed"),
    }
    super::authz::after_changes(app).await;
}
