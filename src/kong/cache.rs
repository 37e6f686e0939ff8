//! The credential cache: `Mutex<lru::LruCache>` keyed by consumer id, with a fresh TTL, a
//! refresh-ahead mark near its end, a stale window, and a short negative cache for unknown
//! consumers.
//!
//! Owns what an entry is and how old it may get; it does not decide when stale is served or
//! who calls Kong (that is `kong::CredentialStore`). Every method takes the lock for a map
//! operation and returns; nothing here does I/O or reads a clock, so the lock is never held
//! across a Kong call. Time is passed in by the caller.

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
    /// A `Fresh` lookup already asked for this entry to be refreshed ahead. A new entry (a new
    /// generation, stored by `insert_found`) starts without the mark.
    refresh_asked: bool,
}

/// What the cache knows about a consumer right now.
pub enum Lookup {
    Fresh {
        key: Arc<SigningKey>,
        /// True for exactly one lookup per entry: the first one that finds the entry inside
        /// its refresh-ahead window (the last `refresh_ahead` of the fresh TTL). That caller
        /// should have the entry refreshed in the background.
        refresh: bool,
    },
    /// Kong said recently that this consumer has no usable credential.
    KnownMissing(&'static str),
    /// Past the fresh TTL but inside the stale window: served while a refresh is in flight,
    /// while Kong fails or the breaker is open, or when too many workers wait on Kong.
    Stale(Arc<SigningKey>),
    Miss,
}

/// How long a stale-entry count is reused by `counts`.
const STALE_COUNT_REUSE: Duration = Duration::from_secs(1);

pub struct CredentialCache {
    entries: Mutex<LruCache<String, Entry>>,
    stale_count: Mutex<Option<(Instant, usize)>>,
    fresh_ttl: Duration,
    /// Age from which a fresh entry asks to be refreshed ahead (`fresh_ttl - refresh_ahead`).
    refresh_from: Duration,
    stale_until: Duration,
    negative_ttl: Duration,
}

impl CredentialCache {
    /// `refresh_ahead`: how long before the end of the fresh TTL a hit asks for a background
    /// refresh (clamped to the TTL).
    pub fn new(config: &CacheConfig, refresh_ahead: Duration) -> CredentialCache {
        let capacity = NonZeroUsize::new(config.max_entries).unwrap_or(NonZeroUsize::MIN);
        CredentialCache {
            entries: Mutex::new(LruCache::new(capacity)),
            stale_count: Mutex::new(None),
            fresh_ttl: config.fresh_ttl,
            refresh_from: config.fresh_ttl.saturating_sub(refresh_ahead),
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
        let Some(entry) = entries.get_mut(consumer_id) else {
            return Lookup::Miss;
        };
        let age = now.saturating_duration_since(entry.stored);
        let lookup = match &entry.value {
            Cached::Found(key) if age < self.fresh_ttl => {
                // One comparison on the hot path; the mark is written once per entry.
                let refresh = age >= self.refresh_from && !entry.refresh_asked;
                if refresh {
                    entry.refresh_asked = true;
                }
                Lookup::Fresh {
                    key: Arc::clone(key),
                    refresh,
                }
            }
            Cached::Found(key) if age < self.stale_until => Lookup::Stale(Arc::clone(key)),
            Cached::NotFound(reason) if age < self.negative_ttl => Lookup::KnownMissing(reason),
            _ => Lookup::Miss,
        };
        if matches!(lookup, Lookup::Miss) {
            entries.pop(consumer_id);
        }
        lookup
    }

    /// Whether the background refresher should still refresh `consumer_id`: its entry is the
    /// one that asked (`Lookup::Fresh { refresh: true }`) and has not expired out of the stale
    /// window. False once a newer entry replaced it, so an ask that a refresh on the request
    /// path already answered costs Kong nothing. Does not touch the LRU order.
    pub fn wants_refresh(&self, consumer_id: &str, now: Instant) -> bool {
        let entries = self.lock();
        entries.peek(consumer_id).is_some_and(|entry| {
            matches!(entry.value, Cached::Found(_))
                && entry.refresh_asked
                && now.saturating_duration_since(entry.stored) < self.stale_until
        })
    }

    pub fn insert_found(&self, consumer_id: &str, key: Arc<SigningKey>, now: Instant) {
        if self.enabled() {
            self.lock().put(
                consumer_id.to_owned(),
                Entry {
                    value: Cached::Found(key),
                    stored: now,
                    refresh_asked: false,
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
                    refresh_asked: false,
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
        CredentialCache::new(
            &CacheConfig {
                max_entries: 2,
                fresh_ttl: Duration::from_secs(fresh),
                stale_tolerance: Duration::from_secs(stale_minutes * 60),
                negative_ttl: Duration::from_secs(negative),
            },
            Duration::from_secs(2),
        )
    }

    /// The `refresh` flag of a lookup at `at`, or `None` when it was not `Fresh`.
    fn refresh_flag(cache: &CredentialCache, id: &str, at: Instant) -> Option<bool> {
        match cache.get(id, at) {
            Lookup::Fresh { refresh, .. } => Some(refresh),
            _ => None,
        }
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
            Lookup::Fresh { .. }
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
        assert!(matches!(small.get("a", t0), Lookup::Fresh { .. }));
        small.insert_found("c", key("c"), t0);
        assert!(
            matches!(small.get("b", t0), Lookup::Miss),
            "least recently used goes first"
        );
    }

    #[test]
    fn refresh_is_asked_once_per_entry_generation() {
        // Fresh for 10 s, refresh-ahead window 2 s: the mark is due from age 8 s.
        let cache = cache(10, 1, 5);
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        cache.insert_found("c", key("k1"), t0);
        assert_eq!(
            refresh_flag(&cache, "c", at(7)),
            Some(false),
            "before the window"
        );
        assert!(!cache.wants_refresh("c", at(7)));
        assert_eq!(
            refresh_flag(&cache, "c", at(8)),
            Some(true),
            "first hit in it"
        );
        assert!(cache.wants_refresh("c", at(8)));
        assert_eq!(refresh_flag(&cache, "c", at(8)), Some(false), "only once");
        assert_eq!(refresh_flag(&cache, "c", at(9)), Some(false));

        // The refresh stores a new generation: no mark, and the next window asks again.
        cache.insert_found("c", key("k2"), at(9));
        assert!(
            !cache.wants_refresh("c", at(9)),
            "the new entry did not ask"
        );
        assert_eq!(refresh_flag(&cache, "c", at(16)), Some(false));
        assert_eq!(refresh_flag(&cache, "c", at(17)), Some(true));
        assert_eq!(refresh_flag(&cache, "c", at(18)), Some(false));

        // Negative entries, unknown and expired consumers never ask.
        cache.insert_not_found("ghost", "consumer does not exist in kong", t0);
        assert!(!cache.wants_refresh("ghost", at(1)));
        assert!(!cache.wants_refresh("nobody", at(1)));
        assert!(
            !cache.wants_refresh("c", at(19 + 60)),
            "out of the stale window"
        );
    }

    #[test]
    fn a_window_longer_than_the_ttl_asks_on_the_first_hit() {
        let cache = CredentialCache::new(
            &CacheConfig {
                max_entries: 2,
                fresh_ttl: Duration::from_secs(1),
                stale_tolerance: Duration::from_secs(60),
                negative_ttl: Duration::from_secs(5),
            },
            Duration::from_secs(30),
        );
        let t0 = Instant::now();
        cache.insert_found("c", key("k"), t0);
        assert_eq!(refresh_flag(&cache, "c", t0), Some(true));
        assert_eq!(refresh_flag(&cache, "c", t0), Some(false));
    }
}
