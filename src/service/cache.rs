//! An in-process cache of database rows that a concurrent invalidation always wins
//! against. A load reads the database, then caches what it read; if an invalidation
//! (a feed entry, a local change) ran at any point of that load, the loaded value may
//! predate the change, so it is dropped again instead of being served until evicted.
//! Entries have no time to live: the change feed is the authority, and an instance that
//! may have missed entries (its catch-up lagged past the feed's retention) drops every
//! entry at once ([`GuardedCache::invalidate_all`]). So a warm entry is served without a
//! database round trip for as long as nothing changes, and through a database outage.
//! Calls nothing but `moka`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// A cache of at most `capacity` entries (the least used are evicted beyond it).
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: moka::sync::Cache::builder().max_capacity(capacity).build(),
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

    /// Drops every entry; any load in flight will not cache its result.
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate_all();
    }

    /// Number of entries (approximate).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
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

    /// An invalidation after the load drops the entry, `invalidate_all` drops every
    /// entry, and a miss is not cached; a warm entry stays until then (no time to live).
    #[tokio::test]
    async fn invalidation_drops_entries() {
        let cache: GuardedCache<u8> = GuardedCache::new(10);
        for k in ["k", "l"] {
            cache
                .get_or_load(k, || async { Ok::<_, ()>(Some(1)) })
                .await
                .unwrap();
        }
        assert_eq!(cache.get("k"), Some(1));
        cache.invalidate("k");
        assert_eq!(cache.get("k"), None);
        assert_eq!(cache.get("l"), Some(1), "only the named entry goes");
        cache.invalidate_all();
        assert_eq!(cache.get("l"), None);
        let got = cache
            .get_or_load("l", || async {
                cache.invalidate_all();
                Ok::<_, ()>(Some(2))
            })
            .await;
        assert_eq!(got, Ok(Some(2)));
        assert_eq!(
            cache.get("l"),
            None,
            "a load racing invalidate_all is not kept"
        );
        let miss = cache
            .get_or_load("absent", || async { Ok::<_, ()>(None) })
            .await;
        assert_eq!(miss, Ok(None));
        assert_eq!(cache.get("absent"), None);
    }
}
