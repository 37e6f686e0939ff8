//! Kong-backed credential lookup: cache first, then one Kong call per consumer at a time
//! (single-flight), guarded by the circuit breaker, with stale credentials as the fallback;
//! plus the two side threads that keep a slow Kong off the request path: the refresh-ahead
//! refresher (`kong-refresh`) and the health prober (`kong-health`).
//!
//! `CredentialStore::credential` is the only lookup the handlers use, and `health` only reads
//! the prober's last result. The store never holds the cache or flight locks while Kong is
//! called, never turns an infrastructure failure into "consumer not found", and lets at most
//! `KONG_MAX_WAITING_WORKERS` request workers wait on Kong at once. A known consumer (one with
//! a fresh or stale entry) waits only when it leads the refresh of an expired entry and a
//! waiting slot is free; everything else is answered at once. The side threads own no request
//! state: they end when the store is dropped (their channels disconnect), and a fresh hit
//! outside the refresh-ahead window never touches them.

pub mod breaker;
pub mod cache;
pub mod client;
pub mod types;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::config::{BreakerConfig, CacheConfig, KongConfig};
use crate::jwt::SigningKey;
use crate::metrics::Metrics;
use crate::telemetry::{self, Note};
use breaker::{Breaker, BreakerState, Permit};
use cache::{CredentialCache, Lookup};
use client::{Fetched, KongClient};

/// Consumer ids waiting for a background refresh. A request that finds the queue full drops
/// its ask: the entry then expires, and the request path refreshes it (stale-while-revalidate).
const REFRESH_QUEUE: usize = 256;
/// Background refresher threads: two, so one slow Kong call does not hold up every other hot
/// consumer's refresh.
const REFRESHERS: usize = 2;
/// How long dropping the store waits for a side thread inside a Kong call before leaving it to
/// end on its own (it does once the call returns, within `KONG_TIMEOUT_MS` per attempt).
const STOP_WAIT: Duration = Duration::from_millis(250);

/// Why no credential could be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// AUTH_002: Kong answered, and there is no such consumer or no usable credential.
    NotFound(&'static str),
    /// AUTH_004: Kong failed and nothing stale was cached.
    Unavailable(String),
    /// AUTH_005: the breaker is open and nothing stale was cached.
    BreakerOpen { retry_after: Duration },
    /// AUTH_004 at once: `KONG_MAX_WAITING_WORKERS` workers already wait on Kong, and nothing
    /// stale was cached.
    Saturated,
}

type FlightResult = Result<Arc<SigningKey>, LookupError>;

/// How long before the end of an entry's fresh TTL a hit asks for a background refresh: the
/// larger of 10 % of the TTL and two Kong timeouts (so even a slow Kong answers before the
/// entry expires), but at most half the TTL (so a short TTL still serves most of it from the
/// entry it has). With the defaults (300 s, 3 s) that is the last 30 s.
pub fn refresh_ahead(fresh_ttl: Duration, kong_timeout: Duration) -> Duration {
    (fresh_ttl / 10).max(kong_timeout * 2).min(fresh_ttl / 2)
}

/// One in-progress Kong lookup that concurrent requests for the same consumer wait on.
#[derive(Default)]
struct Flight {
    result: Mutex<Option<FlightResult>>,
    done: Condvar,
}

/// How long a request with nothing stale waits for a waiting slot before its 503, and how
/// often it looks.
const SLOT_PATIENCE: Duration = Duration::from_millis(100);
const SLOT_POLL: Duration = Duration::from_millis(2);

/// The cap on request workers waiting on Kong at once, leaders and followers together.
struct WaitSlots {
    max: usize,
    taken: AtomicUsize,
}

/// One taken slot; dropping it gives it back.
struct Slot<'a>(&'a AtomicUsize);

impl WaitSlots {
    fn new(max: usize) -> WaitSlots {
        WaitSlots {
            max: max.max(1),
            taken: AtomicUsize::new(0),
        }
    }

    /// A slot when fewer than `max` are taken; never waits.
    fn try_take(&self) -> Option<Slot<'_>> {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
                (taken < self.max).then_some(taken + 1)
            })
            .ok()
            .map(|_| Slot(&self.taken))
    }

    fn taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a request that missed the fresh cache does, decided under the flights lock.
enum Role<'a> {
    /// A refresh is in flight and a stale credential is at hand: serve it now.
    Stale(Arc<SigningKey>),
    /// Lead the Kong call, holding a waiting slot.
    Lead(Arc<Flight>, Slot<'a>),
    /// Wait for the call in flight (a slot is taken after the lock is released).
    Follow(Arc<Flight>),
    /// No flight, and every waiting slot is taken.
    Full,
}

/// Everything the request path and the side threads share.
struct Shared {
    client: KongClient,
    cache: CredentialCache,
    breaker: Breaker,
    flights: Mutex<HashMap<String, Arc<Flight>>>,
    waiting: WaitSlots,
    /// How long a follower waits for the leader: one Kong timeout.
    follower_patience: Duration,
    metrics: Arc<Metrics>,
    health: KongHealth,
}

pub struct CredentialStore {
    shared: Arc<Shared>,
    /// Consumer ids to refresh ahead; `None` only while dropping (disconnects the refreshers).
    refresh: Option<Sender<String>>,
    /// Wakes the prober for a new probe; `None` only while dropping.
    probe: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl CredentialStore {
    /// Builds the store and starts its side threads; the prober probes Kong once at once.
    pub fn new(
        kong: &KongConfig,
        cache: &CacheConfig,
        breaker: &BreakerConfig,
        health_cache: Duration,
        pool_size: usize,
        metrics: Arc<Metrics>,
    ) -> io::Result<CredentialStore> {
        let shared = Arc::new(Shared {
            client: KongClient::new(kong, pool_size),
            cache: CredentialCache::new(cache, refresh_ahead(cache.fresh_ttl, kong.timeout)),
            breaker: Breaker::new(breaker),
            flights: Mutex::new(HashMap::new()),
            waiting: WaitSlots::new(kong.max_waiting_workers),
            follower_patience: kong.timeout,
            metrics,
            health: KongHealth::new(health_cache, Instant::now() + kong.timeout),
        });
        let (refresh_tx, refresh_rx) = crossbeam_channel::bounded::<String>(REFRESH_QUEUE);
        let (probe_tx, probe_rx) = crossbeam_channel::bounded::<()>(1);
        let mut store = CredentialStore {
            shared: Arc::clone(&shared),
            refresh: Some(refresh_tx),
            probe: Some(probe_tx),
            threads: Vec::with_capacity(REFRESHERS + 1),
        };
        // On an error `store` is dropped, which disconnects and joins what already started.
        for _ in 0..REFRESHERS {
            let (shared, rx) = (Arc::clone(&shared), refresh_rx.clone());
            store.threads.push(
                thread::Builder::new()
                    .name("kong-refresh".to_owned())
                    .spawn(move || refresh_loop(&shared, &rx))?,
            );
        }
        store.threads.push(
            thread::Builder::new()
                .name("kong-health".to_owned())
                .spawn(move || probe_loop(&shared, &probe_rx))?,
        );
        Ok(store)
    }

    pub fn client(&self) -> &KongClient {
        &self.shared.client
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.shared.breaker.state(Instant::now())
    }

    pub fn cache_len(&self) -> usize {
        self.shared.cache.len()
    }

    pub fn cache_counts(&self) -> (usize, usize) {
        self.shared.cache.counts(Instant::now())
    }

    /// Request workers waiting on Kong right now, and the cap (`KONG_MAX_WAITING_WORKERS`).
    pub fn waiting_on_kong(&self) -> (usize, usize) {
        (self.shared.waiting.taken(), self.shared.waiting.max)
    }

    /// The HS256 credential of `consumer_id`, from cache or Kong.
    pub fn credential(&self, consumer_id: &str) -> FlightResult {
        let shared = &*self.shared;
        // Set once every waiting slot was found taken: how long this request may wait for one.
        let mut patience: Option<Instant> = None;
        loop {
            let first_try = patience.is_none();
            let stale = match shared.cache.get(consumer_id, Instant::now()) {
                Lookup::Fresh { key, refresh } => {
                    if first_try {
                        shared.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
                        telemetry::note(Note::CacheHit);
                    }
                    if refresh {
                        self.ask_refresh(consumer_id);
                    }
                    return Ok(key);
                }
                Lookup::KnownMissing(reason) => {
                    if first_try {
                        shared.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
                        telemetry::note(Note::CacheHit);
                    }
                    return Err(LookupError::NotFound(reason));
                }
                Lookup::Stale(key) => Some(key),
                Lookup::Miss => None,
            };
            if first_try {
                shared.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
                telemetry::note(Note::CacheMiss);
            }
            match shared.lookup(consumer_id, stale) {
                // A burst of first lookups against a healthy Kong frees its slots within
                // milliseconds; only a slow Kong keeps them taken past the patience.
                Err(LookupError::Saturated) => {
                    let until = *patience.get_or_insert_with(|| Instant::now() + SLOT_PATIENCE);
                    if Instant::now() >= until {
                        shared
                            .metrics
                            .kong_wait_rejected
                            .fetch_add(1, Ordering::Relaxed);
                        return Err(LookupError::Saturated);
                    }
                    crate::blocking::section(|| thread::sleep(SLOT_POLL));
                }
                other => return other,
            }
        }
    }

    /// Queues `consumer_id` for the refresher; never blocks. A full queue drops the ask.
    fn ask_refresh(&self, consumer_id: &str) {
        if let Some(refresh) = &self.refresh
            && let Err(TrySendError::Full(_)) = refresh.try_send(consumer_id.to_owned())
        {
            log::debug!("refresh-ahead queue full; the entry will be refreshed when it expires");
        }
    }

    /// Kong's reachability as the prober last saw it. Never calls Kong: a result older than
    /// `HEALTH_KONG_CACHE_MS` wakes the prober and is still returned. Only before the first
    /// probe completed, and only until one Kong timeout after the store started, does it wait
    /// for that first probe; after that `KongProbe::NotYet` is returned at once.
    pub fn health(&self) -> KongProbe {
        let health = &self.shared.health;
        let probe = health.last_or_first(Instant::now());
        if health.due(Instant::now())
            && let Some(probe) = &self.probe
        {
            // Full means a wake-up is already pending.
            let _ = probe.try_send(());
        }
        probe
    }
}

impl Drop for CredentialStore {
    fn drop(&mut self) {
        // Disconnecting the channels ends the side threads: an idle one at once, one inside a
        // Kong call when the call returns. Wait for them briefly, then let them finish alone.
        self.refresh = None;
        self.probe = None;
        let deadline = Instant::now() + STOP_WAIT;
        while self.threads.iter().any(|thread| !thread.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        for thread in self.threads.drain(..) {
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                log::debug!("a kong side thread is still in a kong call; it ends after it");
            }
        }
    }
}

impl Shared {
    /// The request path after a fresh-cache miss; `stale` is the expired entry, if any.
    fn lookup(&self, consumer_id: &str, stale: Option<Arc<SigningKey>>) -> FlightResult {
        let role = {
            let mut flights = lock(&self.flights);
            match (flights.get(consumer_id).map(Arc::clone), &stale) {
                (Some(_), Some(key)) => Role::Stale(Arc::clone(key)),
                (Some(flight), None) => Role::Follow(flight),
                (None, _) => match self.waiting.try_take() {
                    Some(slot) => {
                        let flight = Arc::new(Flight::default());
                        flights.insert(consumer_id.to_owned(), Arc::clone(&flight));
                        Role::Lead(flight, slot)
                    }
                    None => Role::Full,
                },
            }
        };
        match role {
            Role::Stale(key) => self.serve_stale(key),
            Role::Full => self.saturated(stale),
            Role::Follow(flight) => match self.waiting.try_take() {
                Some(_slot) => crate::blocking::section(|| self.follow(&flight)),
                None => self.saturated(None),
            },
            Role::Lead(flight, _slot) => {
                // The guard publishes the result and retires the flight even if the lookup
                // panics; it is dropped before the slot is given back.
                let mut publish = PublishOnDrop {
                    shared: self,
                    consumer_id,
                    flight: &flight,
                    result: None,
                };
                let result = crate::blocking::section(|| self.lead(consumer_id, stale));
                publish.result = Some(result.clone());
                result
            }
        }
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

    /// The leader's lookup: Kong's answer, or the stale credential when Kong cannot answer.
    fn lead(&self, consumer_id: &str, stale: Option<Arc<SigningKey>>) -> FlightResult {
        match (self.fetch(consumer_id), stale) {
            (Err(LookupError::Unavailable(_) | LookupError::BreakerOpen { .. }), Some(key)) => {
                self.serve_stale(key)
            }
            (result, _) => result,
        }
    }

    /// One lookup through the breaker, stored in the cache: a credential or a negative entry.
    /// Knows nothing about stale entries; the caller decides what a failure becomes.
    fn fetch(&self, consumer_id: &str) -> FlightResult {
        if let Permit::Rejected { retry_after } = self.breaker.acquire(Instant::now()) {
            telemetry::note(Note::BreakerOpen);
            return Err(LookupError::BreakerOpen { retry_after });
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
                Err(LookupError::Unavailable(err.to_string()))
            }
        }
    }

    /// A background refresh of `consumer_id`, as a single-flight leader without a waiting
    /// slot: requests that find the entry expired meanwhile get it stale at once.
    fn refresh_ahead(&self, consumer_id: &str) {
        if !self.cache.wants_refresh(consumer_id, Instant::now()) {
            return;
        }
        let flight = {
            let mut flights = lock(&self.flights);
            if flights.contains_key(consumer_id) {
                return;
            }
            let flight = Arc::new(Flight::default());
            flights.insert(consumer_id.to_owned(), Arc::clone(&flight));
            flight
        };
        let mut publish = PublishOnDrop {
            shared: self,
            consumer_id,
            flight: &flight,
            result: None,
        };
        publish.result = Some(self.fetch(consumer_id));
    }

    fn serve_stale(&self, key: Arc<SigningKey>) -> FlightResult {
        self.metrics
            .cache_stale_served
            .fetch_add(1, Ordering::Relaxed);
        telemetry::note(Note::CacheStale);
        Ok(key)
    }

    /// Every waiting slot is taken: stale at once if there is one (counted as rejected
    /// here); otherwise `Saturated`, which the caller retries for `SLOT_PATIENCE` and counts
    /// when it gives up.
    fn saturated(&self, stale: Option<Arc<SigningKey>>) -> FlightResult {
        match stale {
            Some(key) => {
                self.metrics
                    .kong_wait_rejected
                    .fetch_add(1, Ordering::Relaxed);
                self.serve_stale(key)
            }
            None => Err(LookupError::Saturated),
        }
    }
}

/// The refresher: refreshes the consumers requests asked for, until the store is dropped.
fn refresh_loop(shared: &Shared, asks: &Receiver<String>) {
    while let Ok(consumer_id) = asks.recv() {
        shared.refresh_ahead(&consumer_id);
    }
}

/// The prober: probes Kong at start, then whenever a reader found the result due, until the
/// store is dropped. A wake-up that comes while the result is still recent costs nothing, so
/// Kong sees at most one probe per `HEALTH_KONG_CACHE_MS`, and none while nobody asks.
fn probe_loop(shared: &Shared, wakeups: &Receiver<()>) {
    loop {
        if shared.health.due(Instant::now()) {
            let result = shared
                .client
                .health(&shared.metrics)
                .map_err(|err| err.to_string());
            shared.health.publish(result);
        }
        if wakeups.recv().is_err() {
            return;
        }
    }
}

struct PublishOnDrop<'a> {
    shared: &'a Shared,
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
        lock(&self.shared.flights).remove(self.consumer_id);
        self.flight.done.notify_all();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The last Kong health probe, as a reader sees it.
#[derive(Clone, Debug)]
pub enum KongProbe {
    /// No probe has completed yet (reported as "kong not probed yet").
    NotYet,
    Checked {
        /// The probe's round trip, or why Kong is unreachable.
        result: Result<Duration, String>,
        at: Instant,
    },
}

impl KongProbe {
    /// `Some(true)` reachable, `Some(false)` unreachable, `None` not known yet.
    pub fn reachable(&self) -> Option<bool> {
        match self {
            KongProbe::NotYet => None,
            KongProbe::Checked { result, .. } => Some(result.is_ok()),
        }
    }
}

/// The prober's last result, shared with the readers.
struct KongHealth {
    reuse_for: Duration,
    /// Readers wait for the first probe until then (the store's start plus one Kong timeout).
    first_probe_deadline: Instant,
    last: Mutex<Option<(Instant, Result<Duration, String>)>>,
    probed: Condvar,
}

impl KongHealth {
    fn new(reuse_for: Duration, first_probe_deadline: Instant) -> KongHealth {
        KongHealth {
            reuse_for,
            first_probe_deadline,
            last: Mutex::new(None),
            probed: Condvar::new(),
        }
    }

    /// True when there is no result yet or it is at least `reuse_for` old.
    fn due(&self, now: Instant) -> bool {
        lock(&self.last)
            .as_ref()
            .is_none_or(|(at, _)| now.saturating_duration_since(*at) >= self.reuse_for)
    }

    fn publish(&self, result: Result<Duration, String>) {
        *lock(&self.last) = Some((Instant::now(), result));
        self.probed.notify_all();
    }

    /// The last result; before the first one, waits for it until `first_probe_deadline`.
    fn last_or_first(&self, now: Instant) -> KongProbe {
        let mut last = lock(&self.last);
        if last.is_none() && now < self.first_probe_deadline {
            let patience = self.first_probe_deadline - now;
            // A wait on Kong, if a short one: hand the worker's turn over meanwhile.
            last = crate::blocking::section(|| {
                self.probed
                    .wait_timeout_while(last, patience, |last| last.is_none())
                    .map(|(last, _)| last)
                    .unwrap_or_else(|poisoned| poisoned.into_inner().0)
            });
        }
        match &*last {
            None => KongProbe::NotYet,
            Some((at, result)) => KongProbe::Checked {
                result: result.clone(),
                at: *at,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{KongMode, Secret};
    use crate::kong_sim::{self, KongSim, SimOptions};

    #[test]
    fn refresh_window() {
        let check = |ttl_s: f64, timeout_ms: u64, expected_s: f64| {
            let window = refresh_ahead(
                Duration::from_secs_f64(ttl_s),
                Duration::from_millis(timeout_ms),
            );
            assert_eq!(window, Duration::from_secs_f64(expected_s), "{ttl_s} s");
        };
        check(300.0, 3000, 30.0); // 10 % of the TTL
        check(600.0, 1000, 60.0);
        check(30.0, 3000, 6.0); // two Kong timeouts
        check(10.0, 3000, 5.0); // at most half the TTL
        check(1.0, 3000, 0.5);
        check(0.0, 3000, 0.0); // caching off
    }

    #[test]
    fn waiting_slots_cap_and_give_back() {
        let slots = WaitSlots::new(2);
        let first = slots.try_take().expect("first slot");
        let second = slots.try_take().expect("second slot");
        assert!(slots.try_take().is_none(), "the cap is 2");
        assert_eq!(slots.taken(), 2);
        drop(first);
        let third = slots.try_take().expect("a given-back slot is free again");
        drop((second, third));
        assert_eq!(slots.taken(), 0);
        assert_eq!(WaitSlots::new(0).max, 1, "at least one");
    }

    fn sim(latency_ms: u64) -> KongSim {
        kong_sim::start(SimOptions {
            latency_ms,
            ..SimOptions::embedded()
        })
        .expect("in-process kong-sim")
    }

    fn store(sim: &KongSim, max_waiting: usize, fresh_ttl: Duration) -> CredentialStore {
        let kong = KongConfig {
            mode: KongMode::ApiGateway,
            admin_url: sim.url(),
            admin_token: None::<Secret>,
            timeout: Duration::from_secs(5),
            auto_provision: true,
            secret_creation_max_retries: 3,
            max_waiting_workers: max_waiting,
        };
        let cache = CacheConfig {
            max_entries: 100,
            fresh_ttl,
            stale_tolerance: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
        };
        let breaker = breaker::tests::default_config();
        CredentialStore::new(
            &kong,
            &cache,
            &breaker,
            Duration::from_secs(600),
            4,
            Arc::new(Metrics::default()),
        )
        .expect("store")
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn beyond_the_cap_a_lookup_is_refused_at_once_and_counted() {
        let sim = sim(400);
        let consumers = sim.consumers();
        let store = store(&sim, 1, Duration::from_secs(60));
        thread::scope(|scope| {
            let leader = scope.spawn(|| store.credential(&consumers[0].id));
            wait_until("the leader to take the slot", || {
                store.waiting_on_kong() == (1, 1)
            });
            assert_eq!(
                store.credential(&consumers[1].id).err(),
                Some(LookupError::Saturated),
                "another consumer"
            );
            assert_eq!(
                store.credential(&consumers[0].id).err(),
                Some(LookupError::Saturated),
                "a follower of the same consumer counts too"
            );
            assert!(leader.join().unwrap().is_ok());
        });
        let metrics = &store.shared.metrics;
        assert_eq!(metrics.kong_wait_rejected.load(Ordering::Relaxed), 2);
        assert_eq!(store.waiting_on_kong(), (0, 1), "the slot was given back");
        assert!(store.credential(&consumers[1].id).is_ok(), "free again");
    }

    #[test]
    fn an_expired_entry_is_served_stale_while_its_refresh_is_in_flight() {
        let sim = sim(400);
        let id = sim.consumers()[0].id.clone();
        // A 1 s TTL asks for refresh-ahead at 0.5 s; the first lookup after expiry leads.
        let store = store(&sim, 4, Duration::from_secs(1));
        assert!(store.credential(&id).is_ok());
        thread::sleep(Duration::from_millis(1100));
        thread::scope(|scope| {
            let leader = scope.spawn(|| store.credential(&id));
            wait_until("the refresh to be in flight", || {
                store.waiting_on_kong().0 == 1
            });
            for _ in 0..3 {
                assert!(store.credential(&id).is_ok());
            }
            assert_eq!(store.waiting_on_kong().0, 1, "nobody else waited");
            assert!(leader.join().unwrap().is_ok());
        });
        let metrics = &store.shared.metrics;
        assert_eq!(metrics.cache_stale_served.load(Ordering::Relaxed), 3);
        assert_eq!(metrics.kong_wait_rejected.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_side_threads_end_when_the_store_is_dropped() {
        let sim = sim(0);
        let store = store(&sim, 1, Duration::from_secs(60));
        wait_until("the first probe", || {
            matches!(store.health(), KongProbe::Checked { result: Ok(_), .. })
        });
        let shared = Arc::downgrade(&store.shared);
        drop(store);
        assert!(
            shared.upgrade().is_none(),
            "the refreshers and the prober let go of the shared state"
        );
    }
}
