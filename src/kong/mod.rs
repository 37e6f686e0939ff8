//! Kong-backed credential lookup: cache first, then one Kong call per consumer at a time
//! (single-flight), guarded by the circuit breaker, with stale credentials as the fallback.
//!
//! `CredentialStore::credential` is the only entry point the handlers use. It never holds the
//! cache or flight locks while Kong is called, and it never turns an infrastructure failure
//! into "consumer not found".

pub mod breaker;
pub mod cache;
pub mod client;
pub mod types;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::{BreakerConfig, CacheConfig, KongConfig};
use crate::jwt::SigningKey;
use crate::metrics::Metrics;
use breaker::{Breaker, BreakerState, Permit};
use cache::{CredentialCache, Lookup};
use client::{Fetched, KongClient};

/// Why no credential could be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// AUTH_002: Kong answered, and there is no such consumer or no usable credential.
    NotFound(&'static str),
    /// AUTH_004: Kong failed and nothing stale was cached.
    Unavailable(String),
    /// AUTH_005: the breaker is open and nothing stale was cached.
    BreakerOpen { retry_after: Duration },
}

type FlightResult = Result<Arc<SigningKey>, LookupError>;

/// One in-progress Kong lookup that concurrent requests for the same consumer wait on.
#[derive(Default)]
struct Flight {
    result: Mutex<Option<FlightResult>>,
    done: Condvar,
}

pub struct CredentialStore {
    client: KongClient,
    cache: CredentialCache,
    breaker: Breaker,
    flights: Mutex<HashMap<String, Arc<Flight>>>,
    /// How long a follower waits for the leader: every attempt and the retry, plus slack.
    follower_patience: Duration,
    metrics: Arc<Metrics>,
    health: KongHealth,
}

impl CredentialStore {
    pub fn new(
        kong: &KongConfig,
        cache: &CacheConfig,
        breaker: &BreakerConfig,
        health_cache: Duration,
        pool_size: usize,
        metrics: Arc<Metrics>,
    ) -> CredentialStore {
        CredentialStore {
            client: KongClient::new(kong, pool_size),
            cache: CredentialCache::new(cache),
            breaker: Breaker::new(breaker),
            flights: Mutex::new(HashMap::new()),
            follower_patience: kong.timeout * (2 * (kong.secret_creation_max_retries + 2))
                + Duration::from_secs(1),
            metrics,
            health: KongHealth::new(health_cache),
        }
    }

    pub fn client(&self) -> &KongClient {
        &self.client
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state(Instant::now())
    }

    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    pub fn cache_counts(&self) -> (usize, usize) {
        self.cache.counts(Instant::now())
    }

    /// The HS256 credential of `consumer_id`, from cache or Kong.
    pub fn credential(&self, consumer_id: &str) -> FlightResult {
        let now = Instant::now();
        let stale = match self.cache.get(consumer_id, now) {
            Lookup::Fresh(key) => {
                self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(key);
            }
            Lookup::KnownMissing(reason) => {
                self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Err(LookupError::NotFound(reason));
            }
            Lookup::Stale(key) => Some(key),
            Lookup::Miss => None,
        };
        self.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);

        let (flight, leader) = {
            let mut flights = lock(&self.flights);
            match flights.get(consumer_id) {
                Some(flight) => (Arc::clone(flight), false),
                None => {
                    let flight = Arc::new(Flight::default());
                    flights.insert(consumer_id.to_owned(), Arc::clone(&flight));
                    (flight, true)
                }
            }
        };
        if !leader {
            return crate::blocking::section(|| self.follow(&flight));
        }
        // The guard publishes the result and retires the flight even if the lookup panics.
        let mut publish = PublishOnDrop {
            store: self,
            consumer_id,
            flight: &flight,
            result: None,
        };
        let result = crate::blocking::section(|| self.fetch(consumer_id, stale));
        publish.result = Some(result.clone());
        result
    }

    fn follow(&self, flight: &Flight) -> FlightResult {
        let guard = lock(&flight.result);
        let (guard, _) = flight
            .done
            .wait_timeout_while(guard, self.follower_patience, |result| result.is_none())
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match guard.as_ref() {
            Some(result) => result.clone(),
            None => Err(LookupError::Unavailable(
                "timed out waiting for a concurrent kong lookup".into(),
            )),
        }
    }

    fn fetch(&self, consumer_id: &str, stale: Option<Arc<SigningKey>>) -> FlightResult {
        if let Permit::Rejected { retry_after } = self.breaker.acquire(Instant::now()) {
            return match stale {
                Some(key) => self.serve_stale(key),
                None => Err(LookupError::BreakerOpen { retry_after }),
            };
        }
        let fetched = self.client.fetch_credential(consumer_id, &self.metrics);
        let now = Instant::now();
        match fetched {
            Ok(Fetched::Credential(credential)) => {
                self.breaker.record(true, now);
                let key = Arc::new(SigningKey::new(credential.key, &credential.secret));
                self.cache.insert_found(consumer_id, Arc::clone(&key), now);
                Ok(key)
            }
            Ok(Fetched::NotFound(reason)) => {
                self.breaker.record(true, now);
                self.cache.insert_not_found(consumer_id, reason, now);
                Err(LookupError::NotFound(reason))
            }
            Err(err) => {
                self.breaker.record(false, now);
                log::warn!("kong credential lookup failed: {err}");
                match stale {
                    Some(key) => self.serve_stale(key),
                    None => Err(LookupError::Unavailable(err.to_string())),
                }
            }
        }
    }

    fn serve_stale(&self, key: Arc<SigningKey>) -> FlightResult {
        self.metrics
            .cache_stale_served
            .fetch_add(1, Ordering::Relaxed);
        Ok(key)
    }

    /// Kong's reachability, probed at most once per `HEALTH_KONG_CACHE_MS`.
    pub fn health(&self) -> KongProbe {
        self.health.probe(|| {
            crate::blocking::section(|| self.client.health(&self.metrics))
                .map_err(|err| err.to_string())
        })
    }
}

struct PublishOnDrop<'a> {
    store: &'a CredentialStore,
    consumer_id: &'a str,
    flight: &'a Flight,
    result: Option<FlightResult>,
}

impl Drop for PublishOnDrop<'_> {
    fn drop(&mut self) {
        let result = self.result.take().unwrap_or_else(|| {
            Err(LookupError::Unavailable(
                "kong lookup failed unexpectedly".into(),
            ))
        });
        *lock(&self.flight.result) = Some(result);
        // Retire the flight before waking followers: a request arriving now must find the
        // cache (or start a new flight), not join a finished one.
        lock(&self.store.flights).remove(self.consumer_id);
        self.flight.done.notify_all();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The last Kong health probe.
#[derive(Clone, Debug)]
pub struct KongProbe {
    pub result: Result<Duration, String>,
    pub checked_at: Option<Instant>,
}

struct KongHealth {
    reuse_for: Duration,
    last: Mutex<Option<(Instant, Result<Duration, String>)>>,
    probing: AtomicBool,
}

impl KongHealth {
    fn new(reuse_for: Duration) -> KongHealth {
        KongHealth {
            reuse_for,
            last: Mutex::new(None),
            probing: AtomicBool::new(false),
        }
    }

    /// Reuses a recent result; otherwise one caller probes while the others keep reading the
    /// previous result, so a burst of health checks costs Kong one request.
    fn probe(&self, check: impl FnOnce() -> Result<Duration, String>) -> KongProbe {
        let now = Instant::now();
        let previous = lock(&self.last).clone();
        if let Some((at, result)) = &previous
            && now.saturating_duration_since(*at) < self.reuse_for
        {
            {
                return KongProbe {
                    result: result.clone(),
                    checked_at: Some(*at),
                };
            }
        }
        let first_prober = !self.probing.swap(true, Ordering::AcqRel);
        if !first_prober && let Some((at, result)) = previous {
            {
                return KongProbe {
                    result,
                    checked_at: Some(at),
                };
            }
        }
        let result = check();
        let at = Instant::now();
        *lock(&self.last) = Some((at, result.clone()));
        if first_prober {
            self.probing.store(false, Ordering::Release);
        }
        KongProbe {
            result,
            checked_at: Some(at),
        }
    }
}
