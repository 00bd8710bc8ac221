//! In-process [`SharedState`]: the default when no Redis is configured. One process is
//! then the whole truth.
//!
//! The map is bounded: expired entries are swept whenever the map has doubled since the
//! last sweep (amortised constant cost per write), and when it is still full the entries
//! closest to expiry are dropped, a tenth at a time. Keys callers derive from input (the
//! lockout counter of any login typed) therefore cannot grow the process without bound.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{FeedSignal, SharedState, StateError};

/// Entries below which no sweep happens.
const SWEEP_ABOVE: usize = 10_000;
/// Default bound of the map.
const MAX_ENTRIES: usize = 200_000;

type Entries = HashMap<String, (String, Instant)>;

/// The map and its sweep bookkeeping.
#[derive(Debug)]
struct Inner {
    entries: Entries,
    /// Size at which the next insert of a new key sweeps expired entries.
    sweep_at: usize,
    /// Most entries kept.
    capacity: usize,
}

impl Inner {
    /// Makes room for one more key, `now` being the current instant: sweeps expired
    /// entries when the map has grown enough since the last sweep, then, if still at
    /// capacity, evicts the tenth of the entries closest to expiry.
    fn make_room(&mut self, now: Instant) {
        if self.entries.len() >= self.sweep_at {
            self.entries.retain(|_, (_, exp)| *exp > now);
            self.sweep_at =
                (self.entries.len() * 2).clamp(SWEEP_ABOVE.min(self.capacity), self.capacity);
        }
        if self.entries.len() >= self.capacity {
            let mut expiries: Vec<Instant> = self.entries.values().map(|(_, exp)| *exp).collect();
            let cut = (self.capacity / 10).max(1).min(expiries.len() - 1);
            let (_, threshold, _) = expiries.select_nth_unstable(cut);
            let threshold = *threshold;
            self.entries.retain(|_, (_, exp)| *exp > threshold);
            tracing::warn!(
                kept = self.entries.len(),
                "shared state full: entries closest to expiry dropped"
            );
        }
    }
}

/// Process-memory shared state.
#[derive(Debug)]
pub struct MemoryState {
    inner: Mutex<Inner>,
    subscribers: Mutex<Vec<mpsc::Sender<FeedSignal>>>,
}

impl Default for MemoryState {
    fn default() -> Self {
        Self::with_capacity(MAX_ENTRIES)
    }
}

impl MemoryState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty state holding at most `capacity` keys (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                sweep_at: SWEEP_ABOVE.min(capacity),
                capacity,
            }),
            subscribers: Mutex::new(Vec::new()),
        }
    }

    /// Keys held, live or expired but not yet swept.
    pub fn len(&self) -> usize {
        self.with_inner(|i| i.entries.len())
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with_inner<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    fn with_entries<T>(&self, f: impl FnOnce(&mut Entries) -> T) -> T {
        self.with_inner(|i| f(&mut i.entries))
    }
}

fn live(entry: Option<&(String, Instant)>, now: Instant) -> Option<String> {
    entry.filter(|(_, exp)| *exp > now).map(|(v, _)| v.clone())
}

#[async_trait]
impl SharedState for MemoryState {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), StateError> {
        Ok(())
    }

    async fn put_ttl(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StateError> {
        let now = Instant::now();
        self.with_inner(|i| {
            if !i.entries.contains_key(key) {
                i.make_room(now);
            }
            i.entries
                .insert(key.to_owned(), (value.to_owned(), now + ttl));
        });
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<String>, StateError> {
        Ok(self.with_entries(|m| live(m.get(key), Instant::now())))
    }

    async fn take(&self, key: &str) -> Result<Option<String>, StateError> {
        Ok(self.with_entries(|m| live(m.remove(key).as_ref(), Instant::now())))
    }

    async fn delete(&self, key: &str) -> Result<(), StateError> {
        self.with_entries(|m| m.remove(key));
        Ok(())
    }

    async fn incr_window(&self, key: &str, window: Duration) -> Result<u64, StateError> {
        let now = Instant::now();
        Ok(self.with_inner(|i| {
            if !i.entries.contains_key(key) {
                i.make_room(now);
            }
            let entry = i
                .entries
                .entry(key.to_owned())
                .or_insert_with(|| ("0".to_owned(), now + window));
            if entry.1 <= now {
                *entry = ("0".to_owned(), now + window);
            }
            let n = entry.0.parse::<u64>().unwrap_or(0) + 1;
            entry.0 = n.to_string();
            n
        }))
    }

    async fn publish(&self, payload: &str) -> Result<(), StateError> {
        let mut subs = self
            .subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        subs.retain(
            |tx| match tx.try_send(FeedSignal::Message(payload.to_owned())) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
        );
        Ok(())
    }

    fn subscribe(&self) -> mpsc::Receiver<FeedSignal> {
        let (tx, rx) = mpsc::channel(1024);
        let _ = tx.try_send(FeedSignal::Resync);
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(tx);
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `take` returns a value once; expired values are absent.
    #[tokio::test]
    async fn take_is_single_use_and_ttl_applies() {
        let s = MemoryState::new();
        s.put_ttl("a", "1", Duration::from_secs(60)).await.unwrap();
        assert_eq!(s.take("a").await.unwrap().as_deref(), Some("1"));
        assert_eq!(s.take("a").await.unwrap(), None);
        s.put_ttl("b", "2", Duration::from_millis(0)).await.unwrap();
        assert_eq!(s.get("b").await.unwrap(), None);
    }

    /// The window counter counts up and restarts after its window.
    #[tokio::test]
    async fn incr_window_counts_and_resets() {
        let s = MemoryState::new();
        assert_eq!(
            s.incr_window("c", Duration::from_secs(60)).await.unwrap(),
            1
        );
        assert_eq!(
            s.incr_window("c", Duration::from_secs(60)).await.unwrap(),
            2
        );
        assert_eq!(
            s.incr_window("z", Duration::from_millis(0)).await.unwrap(),
            1
        );
        assert_eq!(
            s.incr_window("z", Duration::from_millis(0)).await.unwrap(),
            1
        );
    }

    /// Counters of ever new keys (as a flood of unknown logins makes) do not grow the map
    /// without bound: expired ones are swept while a live counter keeps its count, and
    /// past the capacity the entries closest to expiry go first.
    #[tokio::test]
    async fn map_stays_bounded() {
        let s = MemoryState::with_capacity(1_000);
        let long = Duration::from_secs(3600);
        assert_eq!(s.incr_window("live", long).await.unwrap(), 1);
        for n in 0..5_000 {
            s.incr_window(&format!("gone{n}"), Duration::ZERO)
                .await
                .unwrap();
            assert!(s.len() <= 1_000, "{} entries after {n}", s.len());
        }
        assert_eq!(s.incr_window("live", long).await.unwrap(), 2, "live kept");
        for n in 0..5_000 {
            s.incr_window(&format!("held{n}"), long).await.unwrap();
            s.put_ttl(&format!("put{n}"), "v", long).await.unwrap();
            assert!(s.len() <= 1_000, "{} entries after {n}", s.len());
        }
        assert_eq!(
            s.get("put4999").await.unwrap().as_deref(),
            Some("v"),
            "the newest entry is kept"
        );
    }

    /// Subscribers get a Resync first, then every published payload.
    #[tokio::test]
    async fn publish_reaches_subscribers() {
        let s = MemoryState::new();
        let mut rx = s.subscribe();
        s.publish("x").await.unwrap();
        assert_eq!(rx.recv().await, Some(FeedSignal::Resync));
        assert_eq!(rx.recv().await, Some(FeedSignal::Message("x".into())));
    }
}
