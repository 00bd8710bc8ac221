//! The cache of already verified tokens, keyed by the token's SHA-256, with the `kid` of
//! the key that signed each (a hit is only trusted while that key is still published).
//! Built for a cheap miss: a hit is a shard read lock and a hash lookup, a miss adds one insert
//! under the shard's write lock. No background work.
//!
//! Each of 16 shards keeps two generations: entries go into the current one, which is
//! retired to "previous" when it is half a TTL old or half the shard's capacity full;
//! the previous one is dropped at the next retirement. So an entry lives at most one
//! TTL and a shard holds at most its capacity. Keys are SHA-256 digests that callers
//! cannot choose, so the map hashes them by their first eight bytes. Calls nothing else
//! in the crate.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::Claims;

const SHARDS: usize = 16;

/// Hashes a SHA-256 key by its first eight bytes.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }
}

/// A verified token: its claims and the `kid` of the key whose signature was checked.
#[derive(Debug, Clone)]
pub(crate) struct CachedToken {
    /// The verified claims.
    pub(crate) claims: Arc<Claims>,
    /// The key that signed the token.
    pub(crate) kid: Arc<str>,
}

type Map = HashMap<[u8; 32], CachedToken, BuildHasherDefault<DigestHasher>>;

struct Generation {
    map: Map,
    started: Instant,
}

struct Shard {
    current: Generation,
    previous: Generation,
}

/// Verified claims by token digest.
pub(crate) struct VerifiedCache {
    shards: Box<[RwLock<Shard>]>,
    ttl: Duration,
    per_generation: usize,
}

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl VerifiedCache {
    /// A cache of about `capacity` tokens, each kept at most `ttl`.
    pub(crate) fn new(capacity: u64, ttl: Duration) -> Self {
        let now = Instant::now();
        let empty = || Generation {
            map: Map::default(),
            started: now,
        };
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    RwLock::new(Shard {
                        current: empty(),
                        previous: empty(),
                    })
                })
                .collect(),
            ttl,
            per_generation: (capacity as usize / SHARDS / 2).max(1),
        }
    }

    fn shard(&self, key: &[u8; 32]) -> &RwLock<Shard> {
        &self.shards[usize::from(key[31]) % SHARDS]
    }

    /// The token cached for `key`, if fresh.
    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<CachedToken> {
        let shard = self.shard(key).read().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        [&shard.current, &shard.previous]
            .into_iter()
            .filter(|g| now.duration_since(g.started) < self.ttl)
            .find_map(|g| g.map.get(key).cloned())
    }

    /// Caches `token` under `key`.
    pub(crate) fn insert(&self, key: [u8; 32], token: CachedToken) {
        let mut shard = self.shard(&key).write().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now.duration_since(shard.current.started) >= self.ttl / 2
            || shard.current.map.len() >= self.per_generation
        {
            let fresh = Generation {
                map: Map::with_capacity_and_hasher(shard.current.map.len(), Default::default()),
                started: now,
            };
            shard.previous = std::mem::replace(&mut shard.current, fresh);
        }
        shard.current.map.insert(key, token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(n: u8) -> CachedToken {
        let claims = Arc::new(Claims {
            sub: format!("u{n}"),
            client_id: "web".into(),
            sid: None,
            scope: String::new(),
            roles: Vec::new(),
            superuser: false,
            exp: 0,
            iat: 0,
            jti: format!("j{n}"),
        });
        CachedToken {
            claims,
            kid: "k1".into(),
        }
    }

    /// Entries are found until their generation has been retired twice; a full
    /// generation is retired early, so the cache stays within its capacity.
    #[test]
    fn generations_bound_size() {
        let cache = VerifiedCache::new(64, Duration::from_secs(60));
        let key = |n: u8| {
            let mut k = [n; 32];
            k[31] = 0; // all in one shard: 2 per generation
            k
        };
        cache.insert(key(1), claims(1));
        cache.insert(key(2), claims(2));
        assert_eq!(cache.get(&key(1)).unwrap().claims.sub, "u1");
        cache.insert(key(3), claims(3)); // retires {1, 2}
        assert!(cache.get(&key(1)).is_some() && cache.get(&key(3)).is_some());
        cache.insert(key(4), claims(4));
        cache.insert(key(5), claims(5)); // retires {3, 4}, drops {1, 2}
        assert!(cache.get(&key(1)).is_none());
        assert!(cache.get(&key(4)).is_some() && cache.get(&key(5)).is_some());
    }

    /// With a zero TTL nothing is ever served.
    #[test]
    fn zero_ttl_serves_nothing() {
        let cache = VerifiedCache::new(64, Duration::ZERO);
        cache.insert([7; 32], claims(7));
        assert!(cache.get(&[7; 32]).is_none());
    }
}
