//! The credential cache: `Mutex<lru::LruCache>` keyed by consumer id, with a fresh TTL, a stale
//! window served only when Kong fails, and a short negative cache for unknown consumers.
//!
//! Every method takes the lock for a map operation and returns; nothing here does I/O, so the
//! lock is never held across a Kong call. Time is passed in by the caller.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::config::CacheConfig;
use crate::jwt::SigningKey;

enum Cached {
    Found(Arc<SigningKey>),
    NotFound(&'static str),
}

struct Entry {
    value: Cached,
    stored: Instant,
}

/// What the cache knows about a consumer right now.
pub enum Lookup {
    Fresh(Arc<SigningKey>),
    /// Kong said recently that this consumer has no usable credential.
    KnownMissing(&'static str),
    /// Past the fresh TTL but inside the stale window: use only if Kong cannot answer.
    Stale(Arc<SigningKey>),
    Miss,
}

/// How long a stale-entry count is reused by `counts`.
const STALE_COUNT_REUSE: Duration = Duration::from_secs(1);

pub struct CredentialCache {
    entries: Mutex<LruCache<String, Entry>>,
    stale_count: Mutex<Option<(Instant, usize)>>,
    fresh_ttl: Duration,
    stale_until: Duration,
    negative_ttl: Duration,
}

impl CredentialCache {
    pub fn new(config: &CacheConfig) -> CredentialCache {
        let capacity = NonZeroUsize::new(config.max_entries).unwrap_or(NonZeroUsize::MIN);
        CredentialCache {
            entries: Mutex::new(LruCache::new(capacity)),
            stale_count: Mutex::new(None),
            fresh_ttl: config.fresh_ttl,
            stale_until: config.fresh_ttl + config.stale_tolerance,
            negative_ttl: config.negative_ttl,
        }
    }

    fn enabled(&self) -> bool {
        !self.fresh_ttl.is_zero()
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<String, Entry>> {
        // Entries are replaced whole; a panic while the lock was held cannot leave half a value.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn get(&self, consumer_id: &str, now: Instant) -> Lookup {
        if !self.enabled() {
            return Lookup::Miss;
        }
        let mut entries = self.lock();
        let Some(entry) = entries.get(consumer_id) else {
            return Lookup::Miss;
        };
        let age = now.saturating_duration_since(entry.stored);
        let lookup = match &entry.value {
            Cached::Found(key) if age < self.fresh_ttl => Lookup::Fresh(Arc::clone(key)),
            Cached::Found(key) if age < self.stale_until => Lookup::Stale(Arc::clone(key)),
            Cached::NotFound(reason) if age < self.negative_ttl => Lookup::KnownMissing(reason),
            _ => Lookup::Miss,
        };
        if matches!(lookup, Lookup::Miss) {
            entries.pop(consumer_id);
        }
        lookup
    }

    pub fn insert_found(&self, consumer_id: &str, key: Arc<SigningKey>, now: Instant) {
        if self.enabled() {
            self.lock().put(
                consumer_id.to_owned(),
                Entry {
                    value: Cached::Found(key),
                    stored: now,
                },
            );
        }
    }

    pub fn insert_not_found(&self, consumer_id: &str, reason: &'static str, now: Instant) {
        if self.enabled() && !self.negative_ttl.is_zero() {
            self.lock().put(
                consumer_id.to_owned(),
                Entry {
                    value: Cached::NotFound(reason),
                    stored: now,
                },
            );
        }
    }

    /// Entries held (fresh, stale and negative); O(1).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(entries, stale entries)` for `/health`. Counting stale entries walks the whole cache
    /// under the lock every `/tokens` request needs, so the walk is done at most once per
    /// `STALE_COUNT_REUSE` and its result reused in between.
    pub fn counts(&self, now: Instant) -> (usize, usize) {
        let mut memo = self.stale_count.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, stale)) = *memo
            && now.saturating_duration_since(at) < STALE_COUNT_REUSE
        {
            return (self.len(), stale);
        }
        let entries = self.lock();
        let stale = entries
            .iter()
            .filter(|(_, entry)| {
                matches!(entry.value, Cached::Found(_))
                    && now.saturating_duration_since(entry.stored) >= self.fresh_ttl
            })
            .count();
        *memo = Some((now, stale));
        (entries.len(), stale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(fresh: u64, stale_minutes: u64, negative: u64) -> CredentialCache {
        CredentialCache::new(&CacheConfig {
            max_entries: 2,
            fresh_ttl: Duration::from_secs(fresh),
            stale_tolerance: Duration::from_secs(stale_minutes * 60),
            negative_ttl: Duration::from_secs(negative),
        })
    }

    fn key(name: &str) -> Arc<SigningKey> {
        Arc::new(SigningKey::new(name.to_owned(), "secret"))
    }

    #[test]
    fn fresh_then_stale_then_gone() {
        let cache = cache(10, 1, 5);
        let t0 = Instant::now();
        cache.insert_found("c", key("k"), t0);
        assert!(matches!(
            cache.get("c", t0 + Duration::from_secs(9)),
            Lookup::Fresh(_)
        ));
        assert!(matches!(
            cache.get("c", t0 + Duration::from_secs(10)),
            Lookup::Stale(_)
        ));
        assert_eq!(cache.counts(t0 + Duration::from_secs(11)), (1, 1));
        assert!(matches!(
            cache.get("c", t0 + Duration::from_secs(70)),
            Lookup::Miss
        ));
        assert_eq!(cache.counts(t0).0, 0, "expired entries are dropped");
    }

    #[test]
    fn negative_entries_expire() {
        let cache = cache(10, 1, 5);
        let t0 = Instant::now();
        cache.insert_not_found("ghost", "consumer does not exist in kong", t0);
        assert!(matches!(
            cache.get("ghost", t0 + Duration::from_secs(4)),
            Lookup::KnownMissing(_)
        ));
        assert!(matches!(
            cache.get("ghost", t0 + Duration::from_secs(5)),
            Lookup::Miss
        ));
    }

    #[test]
    fn zero_ttl_disables_caching_and_lru_evicts() {
        let disabled = cache(0, 30, 5);
        let t0 = Instant::now();
        disabled.insert_found("c", key("k"), t0);
        assert!(matches!(disabled.get("c", t0), Lookup::Miss));
        let small = cache(10, 1, 5);
        small.insert_found("a", key("a"), t0);
        small.insert_found("b", key("b"), t0);
        assert!(matches!(small.get("a", t0), Lookup::Fresh(_)));
        small.insert_found("c", key("c"), t0);
        assert!(
            matches!(small.get("b", t0), Lookup::Miss),
            "least recently used goes first"
        );
    }
}
