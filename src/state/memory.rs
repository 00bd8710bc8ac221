//! In-process [`SharedState`]: the default when no Redis is configured. One process is
//! then the whole truth.
//!
//! The map is bounded and partitioned by key kind (the text before the first `:`,
//! `login_fail`, `code`, `authz`, …), each kind with its own bound: a flood of one kind
//! (anonymous authorization requests parked by the thousand) only ever evicts entries of
//! that kind, never a lockout counter or a code. Within a kind, expired entries are
//! swept whenever it has doubled since its last sweep (amortised constant cost per
//! write), and when it is still full the entries closest to expiry are dropped, a tenth
//! at a time. Keys callers derive from input (the lockout counter of any login typed)
//! therefore cannot grow the process without bound.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{FeedSignal, SharedState, StateError};

/// Entries of one kind below which no sweep happens.
const SWEEP_ABOVE: usize = 10_000;
/// Default bound of each kind.
const MAX_ENTRIES: usize = 200_000;
/// Most kinds kept apart; keys of any further kind share the partition of keys
/// without a kind. Kinds are fixed by the code, so this is only a backstop.
const MAX_KINDS: usize = 32;

type Entries = HashMap<String, (String, Instant)>;

/// The kind of a key: the text before its first `:` (empty without one).
fn kind_of(key: &str) -> &str {
    key.split_once(':').map_or("", |(kind, _)| kind)
}

/// The entries of one kind and their sweep bookkeeping.
#[derive(Debug)]
struct Partition {
    entries: Entries,
    /// Size at which the next insert of a new key sweeps expired entries.
    sweep_at: usize,
}

impl Partition {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            sweep_at: SWEEP_ABOVE.min(capacity),
        }
    }

    /// Makes room for one more key, `now` being the current instant: sweeps expired
    /// entries when the partition has grown enough since the last sweep, then, if
    /// still at capacity, evicts the tenth of the entries closest to expiry.
    fn make_room(&mut self, now: Instant, capacity: usize, kind: &str) {
        if self.entries.len() >= self.sweep_at {
            self.entries.retain(|_, (_, exp)| *exp > now);
            self.sweep_at = (self.entries.len() * 2).clamp(SWEEP_ABOVE.min(capacity), capacity);
        }
        if self.entries.len() >= capacity {
            let mut expiries: Vec<Instant> = self.entries.values().map(|(_, exp)| *exp).collect();
            let cut = (capacity / 10).max(1).min(expiries.len() - 1);
            let (_, threshold, _) = expiries.select_nth_unstable(cut);
            let threshold = *threshold;
            self.entries.retain(|_, (_, exp)| *exp > threshold);
            tracing::warn!(
                kind,
                kept = self.entries.len(),
                "shared state full: entries of this kind closest to expiry dropped"
            );
        }
    }
}

/// The partitions and their bound.
#[derive(Debug)]
struct Inner {
    parts: HashMap<String, Partition>,
    /// Most entries kept per kind.
    capacity: usize,
}

impl Inner {
    /// The partition holding `key`, if any.
    fn part(&mut self, key: &str) -> Option<&mut Partition> {
        let kind = kind_of(key);
        if self.parts.contains_key(kind) {
            self.parts.get_mut(kind)
        } else {
            self.parts.get_mut("")
        }
    }

    /// The partition for `key`, created when its kind is new (up to [`MAX_KINDS`]).
    fn part_for_insert(&mut self, key: &str) -> (&mut Partition, usize) {
        let kind = kind_of(key);
        let name = if self.parts.contains_key(kind) || self.parts.len() < MAX_KINDS {
            kind
        } else {
            ""
        };
        let capacity = self.capacity;
        let part = self
            .parts
            .entry(name.to_owned())
            .or_insert_with(|| Partition::new(capacity));
        (part, capacity)
    }

    /// The entry of `key`, inserted with `value` and `expires` (after making room in its
    /// partition) when absent.
    fn entry(
        &mut self,
        key: &str,
        now: Instant,
        fresh: impl FnOnce() -> (String, Instant),
    ) -> &mut (String, Instant) {
        let kind = kind_of(key).to_owned();
        let (part, capacity) = self.part_for_insert(key);
        if !part.entries.contains_key(key) {
            part.make_room(now, capacity, &kind);
        }
        part.entries.entry(key.to_owned()).or_insert_with(fresh)
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

    /// An empty state holding at most `capacity` keys (at least 1) of each kind.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                parts: HashMap::new(),
                capacity: capacity.max(1),
            }),
            subscribers: Mutex::new(Vec::new()),
        }
    }

    /// Keys held, live or expired but not yet swept.
    pub fn len(&self) -> usize {
        self.with_inner(|i| i.parts.values().map(|p| p.entries.len()).sum())
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

    /// Runs `f` on the entries of `key`'s partition, or returns `None` without one.
    fn with_part<T>(&self, key: &str, f: impl FnOnce(&mut Entries) -> Option<T>) -> Option<T> {
        self.with_inner(|i| i.part(key).and_then(|p| f(&mut p.entries)))
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
        let fresh = (value.to_owned(), now + ttl);
        self.with_inner(|i| {
            let entry = i.entry(key, now, || fresh.clone());
            *entry = fresh;
        });
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<String>, StateError> {
        Ok(self.with_part(key, |m| live(m.get(key), Instant::now())))
    }

    async fn take(&self, key: &str) -> Result<Option<String>, StateError> {
        Ok(self.with_part(key, |m| live(m.remove(key).as_ref(), Instant::now())))
    }

    async fn delete(&self, key: &str) -> Result<(), StateError> {
        self.with_part(key, |m| m.remove(key));
        Ok(())
    }

    async fn incr_window(&self, key: &str, window: Duration) -> Result<u64, StateError> {
        let now = Instant::now();
        Ok(self.with_inner(|i| {
            let entry = i.entry(key, now, || ("0".to_owned(), now + window));
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

    /// The bound applies per key kind: a flood of parked authorization requests (kind
    /// `authz`, as anonymous visitors make) evicts only parked requests, never the
    /// lockout counter (`login_fail`) or the code (`code`) although both are closer to
    /// expiry, so neither a lockout nor a code can be pushed out by eviction.
    #[tokio::test]
    async fn flood_of_one_kind_spares_the_others() {
        let s = MemoryState::with_capacity(100);
        let minute = Duration::from_secs(60);
        for n in 1..=3 {
            assert_eq!(s.incr_window("login_fail:abc", minute).await.unwrap(), n);
        }
        s.put_ttl("code:xyz", "grant", minute).await.unwrap();
        for n in 0..1_000 {
            s.put_ttl(&format!("authz:{n}"), "req", Duration::from_secs(900))
                .await
                .unwrap();
            assert!(s.len() <= 102, "{} entries after {n}", s.len());
        }
        assert_eq!(s.get("code:xyz").await.unwrap().as_deref(), Some("grant"));
        assert_eq!(s.incr_window("login_fail:abc", minute).await.unwrap(), 4);
        assert_eq!(s.get("authz:999").await.unwrap().as_deref(), Some("req"));
        assert_eq!(
            s.get("authz:0").await.unwrap(),
            None,
            "the flood evicted itself"
        );
    }

    /// Past the backstop of [`MAX_KINDS`] kinds, further kinds share one partition and
    /// their keys are still found, taken and deleted.
    #[tokio::test]
    async fn kinds_past_the_backstop_share_a_partition() {
        let s = MemoryState::with_capacity(10);
        let long = Duration::from_secs(3600);
        for n in 0..MAX_KINDS + 8 {
            s.put_ttl(&format!("k{n}:x"), &n.to_string(), long)
                .await
                .unwrap();
        }
        assert_eq!(s.with_inner(|i| i.parts.len()), MAX_KINDS + 1);
        assert_eq!(s.len(), MAX_KINDS + 8);
        let last = format!("k{}:x", MAX_KINDS + 7);
        assert_eq!(
            s.get(&last).await.unwrap(),
            Some((MAX_KINDS + 7).to_string())
        );
        assert_eq!(
            s.take(&last).await.unwrap(),
            Some((MAX_KINDS + 7).to_string())
        );
        s.delete("k0:x").await.unwrap();
        assert_eq!(s.get("k0:x").await.unwrap(), None);
        assert_eq!(s.len(), MAX_KINDS + 6);
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
