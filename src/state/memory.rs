//! In-process [`SharedState`]: the default when no Redis is configured. One process is
//! then the whole truth.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{FeedSignal, SharedState, StateError};

/// Entries above which a write sweeps expired keys.
const SWEEP_ABOVE: usize = 10_000;

/// Process-memory shared state.
#[derive(Debug, Default)]
pub struct MemoryState {
    entries: Mutex<HashMap<String, (String, Instant)>>,
    subscribers: Mutex<Vec<mpsc::Sender<FeedSignal>>>,
}

impl MemoryState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_entries<T>(&self, f: impl FnOnce(&mut HashMap<String, (String, Instant)>) -> T) -> T {
        let mut guard = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
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
        self.with_entries(|m| {
            if m.len() > SWEEP_ABOVE {
                m.retain(|_, (_, exp)| *exp > now);
            }
            m.insert(key.to_owned(), (value.to_owned(), now + ttl));
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
        Ok(self.with_entries(|m| {
            let entry = m
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
