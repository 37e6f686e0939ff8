//! The circuit breaker in front of Kong (SPEC 3): closed → open when, within the rolling
//! window, at least `volume_threshold` calls happened and the failure share reached
//! `error_threshold_percent`; open for `reset_timeout`; then half-open, where one trial call
//! closes or re-opens it.
//!
//! Pure state machine: the caller passes `now`, so tests drive time. It owns no I/O and its
//! lock is held only for a few arithmetic steps, never across a Kong call.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::BreakerConfig;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }

    /// The `circuit_breaker_state` gauge value.
    pub fn gauge(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

/// Whether a Kong call may go out now.
#[derive(Debug, PartialEq, Eq)]
pub enum Permit {
    Allowed,
    /// The breaker is open (or a half-open trial is already in flight).
    Rejected {
        retry_after: Duration,
    },
}

#[derive(Clone, Copy, Default)]
struct Bucket {
    started: Option<Instant>,
    calls: u32,
    failures: u32,
}

struct Inner {
    state: BreakerState,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
    buckets: Vec<Bucket>,
}

pub struct Breaker {
    config: BreakerConfig,
    bucket_span: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(config: &BreakerConfig) -> Breaker {
        let buckets = config.rolling_buckets.max(1);
        Breaker {
            bucket_span: config.rolling_window / buckets,
            config: config.clone(),
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                opened_at: None,
                trial_in_flight: false,
                buckets: vec![Bucket::default(); buckets as usize],
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state is a few counters; a panic elsewhere cannot leave it inconsistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The state as an observer sees it at `now` (open turns half-open once the timeout ran).
    pub fn state(&self, now: Instant) -> BreakerState {
        let inner = self.lock();
        match (inner.state, inner.opened_at) {
            (BreakerState::Open, Some(opened))
                if now.duration_since(opened) >= self.config.reset_timeout =>
            {
                BreakerState::HalfOpen
            }
            (state, _) => state,
        }
    }

    pub fn acquire(&self, now: Instant) -> Permit {
        if !self.config.enabled {
            return Permit::Allowed;
        }
        let mut inner = self.lock();
        match inner.state {
            BreakerState::Closed => Permit::Allowed,
            BreakerState::Open => {
                let opened = inner.opened_at.unwrap_or(now);
                let waited = now.duration_since(opened);
                if waited >= self.config.reset_timeout {
                    inner.state = BreakerState::HalfOpen;
                    inner.trial_in_flight = true;
                    Permit::Allowed
                } else {
                    Permit::Rejected {
                        retry_after: self.config.reset_timeout - waited,
                    }
                }
            }
            BreakerState::HalfOpen if !inner.trial_in_flight => {
                inner.trial_in_flight = true;
                Permit::Allowed
            }
            BreakerState::HalfOpen => Permit::Rejected {
                retry_after: Duration::from_secs(1),
            },
        }
    }

    /// Records the outcome of a call that `acquire` allowed.
    pub fn record(&self, success: bool, now: Instant) {
        if !self.config.enabled {
            return;
        }
        let mut inner = self.lock();
        match inner.state {
            BreakerState::HalfOpen => {
                inner.trial_in_flight = false;
                if success {
                    log::info!("kong circuit breaker closed after a successful trial call");
                    inner.state = BreakerState::Closed;
                    inner.opened_at = None;
                    inner.buckets.fill(Bucket::default());
                } else {
                    log::warn!("kong circuit breaker re-opened: the trial call failed");
                    inner.state = BreakerState::Open;
                    inner.opened_at = Some(now);
                }
            }
            BreakerState::Open => {}
            BreakerState::Closed => {
                let bucket = self.current_bucket(&mut inner, now);
                bucket.calls += 1;
                if !success {
                    bucket.failures += 1;
                }
                let (calls, failures) = inner
                    .buckets
                    .iter()
                    .filter(|bucket| {
                        bucket.started.is_some_and(|started| {
                            now.duration_since(started) < self.config.rolling_window
                        })
                    })
                    .fold((0u32, 0u32), |(calls, failures), bucket| {
                        (calls + bucket.calls, failures + bucket.failures)
                    });
                if !success
                    && calls >= self.config.volume_threshold
                    && u64::from(failures) * 100
                        >= u64::from(self.config.error_threshold_percent) * u64::from(calls)
                {
                    log::warn!("kong circuit breaker opened: {failures} of {calls} calls failed");
                    inner.state = BreakerState::Open;
                    inner.opened_at = Some(now);
                }
            }
        }
    }

    /// The bucket for `now`, reset when its slot last served an older span.
    fn current_bucket<'a>(&self, inner: &'a mut Inner, now: Instant) -> &'a mut Bucket {
        let span = self.bucket_span.max(Duration::from_millis(1));
        let count = inner.buckets.len();
        // Slots rotate by the span index since an arbitrary origin: the first bucket's start.
        let origin = inner
            .buckets
            .iter()
            .filter_map(|bucket| bucket.started)
            .min()
            .unwrap_or(now);
        let spans = (now.duration_since(origin).as_nanos() / span.as_nanos()) as usize;
        let slot = spans % count;
        let slot_start = origin + span * spans as u32;
        let bucket = &mut inner.buckets[slot];
        if bucket.started != Some(slot_start) {
            *bucket = Bucket {
                started: Some(slot_start),
                calls: 0,
                failures: 0,
            };
        }
        bucket
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The documented defaults, for tests of the breaker and of what uses it.
    pub(crate) fn default_config() -> BreakerConfig {
        BreakerConfig {
            enabled: true,
            rolling_window: Duration::from_secs(10),
            rolling_buckets: 10,
            volume_threshold: 3,
            error_threshold_percent: 50,
            reset_timeout: Duration::from_secs(60),
        }
    }

    fn breaker() -> Breaker {
        Breaker::new(&default_config())
    }

    #[test]
    fn opens_after_volume_and_share_then_recovers() {
        let breaker = breaker();
        let t0 = Instant::now();
        breaker.record(false, t0);
        breaker.record(false, t0 + Duration::from_millis(10));
        assert_eq!(
            breaker.state(t0),
            BreakerState::Closed,
            "below volume threshold"
        );
        breaker.record(false, t0 + Duration::from_millis(20));
        assert_eq!(
            breaker.state(t0 + Duration::from_millis(20)),
            BreakerState::Open
        );
        assert_eq!(
            breaker.acquire(t0 + Duration::from_secs(20)),
            Permit::Rejected {
                retry_after: Duration::from_millis(40_020)
            }
        );
        let later = t0 + Duration::from_secs(61);
        assert_eq!(breaker.state(later), BreakerState::HalfOpen);
        assert_eq!(breaker.acquire(later), Permit::Allowed, "one trial call");
        assert!(
            matches!(breaker.acquire(later), Permit::Rejected { .. }),
            "only one trial"
        );
        breaker.record(true, later);
        assert_eq!(breaker.state(later), BreakerState::Closed);
    }

    #[test]
    fn failed_trial_reopens() {
        let breaker = breaker();
        let t0 = Instant::now();
        for i in 0..3 {
            breaker.record(false, t0 + Duration::from_millis(i));
        }
        let later = t0 + Duration::from_secs(61);
        assert_eq!(breaker.acquire(later), Permit::Allowed);
        breaker.record(false, later);
        assert_eq!(breaker.state(later), BreakerState::Open);
        assert!(matches!(
            breaker.acquire(later + Duration::from_secs(1)),
            Permit::Rejected { .. }
        ));
    }

    #[test]
    fn successes_keep_it_closed_and_old_failures_expire() {
        let breaker = breaker();
        let t0 = Instant::now();
        breaker.record(true, t0);
        breaker.record(true, t0);
        breaker.record(true, t0);
        breaker.record(false, t0);
        assert_eq!(
            breaker.state(t0),
            BreakerState::Closed,
            "1 of 4 failed: 25% < 50%"
        );
        breaker.record(false, t0);
        breaker.record(false, t0);
        assert_eq!(
            breaker.state(t0),
            BreakerState::Open,
            "3 of 6 failed: 50% reached"
        );
        let fresh = Breaker::new(&BreakerConfig {
            error_threshold_percent: 60,
            ..breaker.config.clone()
        });
        fresh.record(false, t0);
        fresh.record(false, t0);
        // Eleven seconds later the first two failures left the window.
        fresh.record(false, t0 + Duration::from_secs(11));
        assert_eq!(
            fresh.state(t0 + Duration::from_secs(11)),
            BreakerState::Closed
        );
    }

    #[test]
    fn disabled_breaker_always_allows() {
        let breaker = Breaker::new(&BreakerConfig {
            enabled: false,
            ..breaker().config.clone()
        });
        let t0 = Instant::now();
        for _ in 0..10 {
            breaker.record(false, t0);
        }
        assert_eq!(breaker.acquire(t0), Permit::Allowed);
    }
}
