//! Shared, short-lived state: TTL keys, counters and the change-feed channel.
//! [`memory`] keeps it in the process (one instance); [`redis`] shares it between
//! instances. Nothing durable lives here: losing it must never lose a logout (the
//! database is the record, this is the fast path). Calls nothing above it.

use std::time::Duration;

use async_trait::async_trait;

pub mod memory;
pub mod redis;

/// Errors of the shared state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The backing service cannot be reached.
    #[error("shared state unavailable: {0}")]
    Unavailable(String),
}

/// What a change-feed subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedSignal {
    /// A payload published by some instance.
    Message(String),
    /// The subscription was (re)established: messages may have been missed, resync.
    Resync,
}

/// Shared state. Keys are logical (`login_fail:<digest>`); implementations add their prefix.
#[async_trait]
pub trait SharedState: Send + Sync + 'static {
    /// `memory` or `redis`.
    fn backend(&self) -> &'static str;

    /// Round trip (readiness).
    async fn ping(&self) -> Result<(), StateError>;

    /// Stores `value` under `key` for `ttl`, replacing any previous value.
    async fn put_ttl(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StateError>;

    /// The live value under `key`.
    async fn get(&self, key: &str) -> Result<Option<String>, StateError>;

    /// Removes and returns the value under `key`, atomically: of two concurrent takes,
    /// one gets the value.
    async fn take(&self, key: &str) -> Result<Option<String>, StateError>;

    /// Removes `key`.
    async fn delete(&self, key: &str) -> Result<(), StateError>;

    /// Increments the counter under `key` and returns the new count; the counter starts
    /// at 1 and disappears `window` after its first increment (a fixed window).
    async fn incr_window(&self, key: &str, window: Duration) -> Result<u64, StateError>;

    /// Publishes `payload` to every subscriber of the change feed (this process included).
    async fn publish(&self, payload: &str) -> Result<(), StateError>;

    /// Subscribes to the change feed. The first signal is `Resync`; another `Resync`
    /// follows every reconnection.
    fn subscribe(&self) -> tokio::sync::mpsc::Receiver<FeedSignal>;
}
