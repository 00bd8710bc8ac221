//! An in-process cache of database rows that a concurrent invalidation always wins
//! against. A load reads the database, then caches what it read; if an invalidation
//! (a feed entry, a local change) ran at any point of that load, the loaded value may
//! predate the change, so it is dropped again instead of being served until evicted.
//! Entries also expire after a time to live: a safety net should an invalidation ever be
//! missed. Calls nothing but `moka`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long an entry is served at most without being re-read.
pub const TIME_TO_LIVE: Duration = Duration::from_secs(60);

/// A cache keyed by id whose loads never outlive an invalidation that raced them.
pub struct GuardedCache<V> {
    entries: moka::sync::Cache<String, V>,
    /// Bumped by every invalidation, before the entry is dropped.
    generation: AtomicU64,
}

impl<V> std::fmt::Debug for GuardedCache<V>
where
    V: Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedCache")
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl<V> GuardedCache<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// A cache of at most `capacity` entries, each kept at most [`TIME_TO_LIVE`].
    pub fn new(capacity: u64) -> Self {
        Self::with_ttl(capacity, TIME_TO_LIVE)
    }

    /// A cache with another time to live.
    pub fn with_ttl(capacity: u64, ttl: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            generation: AtomicU64::new(0),
        }
    }

    /// The cached value, if any.
    pub fn get(&self, key: &str) -> Option<V> {
        self.entries.get(key)
    }

    /// The cached value, or the one `load` reads (cached unless an invalidation ran
    /// while it was loading). `Ok(None)` from `load` is returned and not cached.
    pub async fn get_or_load<F, Fut, E>(&self, key: &str, load: F) -> Result<Option<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        if let Some(hit) = self.entries.get(key) {
            return Ok(Some(hit));
        }
        let before = self.generation.load(Ordering::SeqCst);
        let Some(value) = load().await? else {
            return Ok(None);
        };
        self.entries.insert(key.to_owned(), value.clone());
        // An invalidation bumps the generation before dropping the entry. If it ran
        // before the insert, the generation has moved: drop what we cached. If it runs
        // after, it drops the entry itself. Either way nothing stale stays.
        if self.generation.load(Ordering::SeqCst) != before {
            self.entries.invalidate(key);
        }
        Ok(Some(value))
    }

    /// Drops `key`; any load in flight will not cache its result.
    pub fn invalidate(&self, key: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate(key);
    }

    /// Number of entries (approximate).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// The configured time to live.
    pub fn time_to_live(&self) -> Option<Duration> {
        self.entries.policy().time_to_live()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A load that read the database before a change, and finishes after that change's
    /// invalidation, is not cached: the next read loads again.
    #[tokio::test]
    async fn load_racing_an_invalidation_is_not_cached() {
        let cache: GuardedCache<&'static str> = GuardedCache::new(10);
        let got = cache
            .get_or_load("k", || async {
                // The database answered "old"; the change commits and is invalidated now.
                cache.invalidate("k");
                Ok::<_, ()>(Some("old"))
            })
            .await;
        assert_eq!(got, Ok(Some("old")), "the caller still gets its answer");
        assert_eq!(cache.get("k"), None, "but it is not kept");
        let got = cache
            .get_or_load("k", || async { Ok::<_, ()>(Some("new")) })
            .await;
        assert_eq!(got, Ok(Some("new")));
        assert_eq!(cache.get("k"), Some("new"));
    }

    /// An invalidation after the load drops the entry; a miss is not cached; the time to
    /// live is the safety net's.
    #[tokio::test]
    async fn invalidation_and_ttl() {
        let cache: GuardedCache<u8> = GuardedCache::new(10);
        assert_eq!(cache.time_to_live(), Some(TIME_TO_LIVE));
        assert!((30..=60).contains(&TIME_TO_LIVE.as_secs()));
        cache
            .get_or_load("k", || async { Ok::<_, ()>(Some(1)) })
            .await
            .unwrap();
        assert_eq!(cache.get("k"), Some(1));
        cache.invalidate("k");
        assert_eq!(cache.get("k"), None);
        let miss = cache
            .get_or_load("absent", || async { Ok::<_, ()>(None) })
            .await;
        assert_eq!(miss, Ok(None));
        assert_eq!(cache.get("absent"), None);
    }
}
