//! Whether a violation may start an automatic profile, and the overhead arithmetic.
//!
//! Pure: every function here is a function of its arguments (the caller passes `now` and the
//! CPU readings), so the decisions are table-tested without threads, clocks or files. The
//! monitor thread owns the state these functions read.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Why a violation did not start a profile; the label of `profiling_blocked_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Blocked {
    /// `CONTINUOUS_PROFILING_ENABLED=false`: violations are detected and reported only.
    Disabled,
    /// `CONTINUOUS_PROFILING_AUTO_TRIGGER_ON_SLA=false`: the same, by the finer switch.
    AutoTriggerDisabled,
    /// Shutdown began.
    ShuttingDown,
    /// An automatic session was stopped for costing too much; paused for one throttle period.
    Overhead,
    /// This route triggered less than `CONTINUOUS_PROFILING_THROTTLE_MINUTES` ago.
    Throttled,
    /// A session (manual, exit, pprof or automatic) is running.
    Busy,
    /// `CONTINUOUS_PROFILING_MAX_STORAGE_GB` is used up in the output directory.
    StorageQuota,
    /// The profiler refused for another reason (logged with the error).
    StartFailed,
}

impl Blocked {
    pub const ALL: [Blocked; 8] = [
        Blocked::Disabled,
        Blocked::AutoTriggerDisabled,
        Blocked::ShuttingDown,
        Blocked::Overhead,
        Blocked::Throttled,
        Blocked::Busy,
        Blocked::StorageQuota,
        Blocked::StartFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Blocked::Disabled => "disabled",
            Blocked::AutoTriggerDisabled => "auto_trigger_disabled",
            Blocked::ShuttingDown => "shutting_down",
            Blocked::Overhead => "overhead",
            Blocked::Throttled => "throttled",
            Blocked::Busy => "busy",
            Blocked::StorageQuota => "storage_quota",
            Blocked::StartFailed => "start_failed",
        }
    }

    pub fn index(self) -> usize {
        Blocked::ALL
            .iter()
            .position(|b| *b == self)
            .unwrap_or_default()
    }
}

/// The configured limits.
#[derive(Clone, Debug)]
pub struct Policy {
    pub enabled: bool,
    pub auto_trigger: bool,
    pub throttle: Duration,
    pub max_concurrent: usize,
    pub quota_bytes: u64,
}

/// What is true right now.
#[derive(Clone, Debug, Default)]
pub struct Situation {
    pub shutting_down: bool,
    /// Sessions running now (the profiler allows one at a time, of any trigger).
    pub active_sessions: usize,
    /// Bytes in the output directory: scanned once at start, plus what the monitor wrote.
    pub storage_used: u64,
    /// This route's last automatic trigger.
    pub last_trigger: Option<Instant>,
    /// Automatic profiling is paused until then after an overhead stop.
    pub paused_until: Option<Instant>,
}

/// `Ok(())` when a violating route may start a profile now. The checks run from the cheapest
/// and most permanent to the most situational, so the reason reported is the one an operator
/// can act on first.
pub fn decide(policy: &Policy, situation: &Situation, now: Instant) -> Result<(), Blocked> {
    if !policy.enabled {
        return Err(Blocked::Disabled);
    }
    if !policy.auto_trigger {
        return Err(Blocked::AutoTriggerDisabled);
    }
    if situation.shutting_down {
        return Err(Blocked::ShuttingDown);
    }
    if situation.paused_until.is_some_and(|until| now < until) {
        return Err(Blocked::Overhead);
    }
    if situation
        .last_trigger
        .is_some_and(|last| now.saturating_duration_since(last) < policy.throttle)
    {
        return Err(Blocked::Throttled);
    }
    // The profiler runs one session at a time whatever MAX_CONCURRENT says.
    if situation.active_sessions >= policy.max_concurrent.clamp(1, 1) {
        return Err(Blocked::Busy);
    }
    if situation.storage_used >= policy.quota_bytes {
        return Err(Blocked::StorageQuota);
    }
    Ok(())
}

/// Process CPU time and requests answered, read together at one tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuMark {
    pub cpu_seconds: f64,
    pub requests: u64,
}

/// Fewer requests than this in the baseline or the session: overhead is not measurable (the
/// idle cost of the process would dominate the ratio).
pub const MIN_REQUESTS: u64 = 50;

/// CPU-seconds per request over the ticks before a session: a ring of per-tick deltas, fed
/// only while no session of any kind runs.
#[derive(Clone, Debug)]
pub struct Baseline {
    deltas: VecDeque<(f64, u64)>,
    capacity: usize,
    last: Option<CpuMark>,
}

impl Baseline {
    /// Keeps the last `ticks` deltas.
    pub fn new(ticks: usize) -> Baseline {
        Baseline {
            deltas: VecDeque::with_capacity(ticks),
            capacity: ticks.max(1),
            last: None,
        }
    }

    /// Records a tick without profiling.
    pub fn observe(&mut self, mark: CpuMark) {
        if let Some(last) = self.last {
            if self.deltas.len() == self.capacity {
                self.deltas.pop_front();
            }
            self.deltas.push_back((
                (mark.cpu_seconds - last.cpu_seconds).max(0.0),
                mark.requests.saturating_sub(last.requests),
            ));
        }
        self.last = Some(mark);
    }

    /// A tick spent profiling: the next delta must not span it.
    pub fn skip(&mut self) {
        self.last = None;
    }

    /// CPU-seconds per request, when at least `MIN_REQUESTS` are in the ring.
    pub fn ratio(&self) -> Option<f64> {
        let (cpu, requests) = self
            .deltas
            .iter()
            .fold((0.0, 0u64), |(c, r), (dc, dr)| (c + dc, r + dr));
        (requests >= MIN_REQUESTS && cpu > 0.0).then(|| cpu / requests as f64)
    }
}

/// Overhead of a session in percent: its CPU-seconds per request against the baseline's.
/// `None` when either side has too few requests to say.
pub fn overhead_percent(baseline: Option<f64>, start: CpuMark, now: CpuMark) -> Option<f64> {
    let baseline = baseline?;
    let requests = now.requests.saturating_sub(start.requests);
    if requests < MIN_REQUESTS || baseline <= 0.0 {
        return None;
    }
    let session = (now.cpu_seconds - start.cpu_seconds).max(0.0) / requests as f64;
    Some((session / baseline - 1.0) * 100.0)
}

/// `/tokens` → `tokens`, `/tokens/validate` → `tokens-validate`, `/` → `root`: the file-name
/// form of a route.
pub fn slug(route: &str) -> String {
    let mut out = String::with_capacity(route.len());
    for c in route.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() { "root".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn policy() -> Policy {
        Policy {
            enabled: true,
            auto_trigger: true,
            throttle: 60 * MIN,
            max_concurrent: 1,
            quota_bytes: 1000,
        }
    }

    #[test]
    fn decisions() {
        let now = Instant::now() + 24 * 60 * MIN;
        let ago = |d: Duration| Some(now - d);
        let free = Situation::default();
        let disabled = Policy {
            enabled: false,
            ..policy()
        };
        let manual_only = Policy {
            auto_trigger: false,
            ..policy()
        };
        let no_throttle = Policy {
            throttle: Duration::ZERO,
            ..policy()
        };
        let cases: Vec<(&str, Policy, Situation, Result<(), Blocked>)> = vec![
            ("free", policy(), free.clone(), Ok(())),
            (
                "disabled wins",
                disabled,
                Situation {
                    active_sessions: 1,
                    ..free.clone()
                },
                Err(Blocked::Disabled),
            ),
            (
                "auto trigger off",
                manual_only,
                free.clone(),
                Err(Blocked::AutoTriggerDisabled),
            ),
            (
                "shutting down",
                policy(),
                Situation {
                    shutting_down: true,
                    ..free.clone()
                },
                Err(Blocked::ShuttingDown),
            ),
            (
                "paused after overhead",
                policy(),
                Situation {
                    paused_until: Some(now + MIN),
                    ..free.clone()
                },
                Err(Blocked::Overhead),
            ),
            (
                "pause over",
                policy(),
                Situation {
                    paused_until: ago(MIN),
                    ..free.clone()
                },
                Ok(()),
            ),
            (
                "throttled",
                policy(),
                Situation {
                    last_trigger: ago(59 * MIN),
                    ..free.clone()
                },
                Err(Blocked::Throttled),
            ),
            (
                "throttle over",
                policy(),
                Situation {
                    last_trigger: ago(60 * MIN),
                    ..free.clone()
                },
                Ok(()),
            ),
            (
                "throttle 0",
                no_throttle,
                Situation {
                    last_trigger: ago(Duration::ZERO),
                    ..free.clone()
                },
                Ok(()),
            ),
            (
                "throttled before busy",
                policy(),
                Situation {
                    last_trigger: ago(MIN),
                    active_sessions: 1,
                    ..free.clone()
                },
                Err(Blocked::Throttled),
            ),
            (
                "busy",
                policy(),
                Situation {
                    active_sessions: 1,
                    ..free.clone()
                },
                Err(Blocked::Busy),
            ),
            (
                "max concurrent 4 still one",
                Policy {
                    max_concurrent: 4,
                    ..policy()
                },
                Situation {
                    active_sessions: 1,
                    ..free.clone()
                },
                Err(Blocked::Busy),
            ),
            (
                "quota reached",
                policy(),
                Situation {
                    storage_used: 1000,
                    ..free.clone()
                },
                Err(Blocked::StorageQuota),
            ),
            (
                "quota nearly reached",
                policy(),
                Situation {
                    storage_used: 999,
                    ..free.clone()
                },
                Ok(()),
            ),
            (
                "quota 0",
                Policy {
                    quota_bytes: 0,
                    ..policy()
                },
                free.clone(),
                Err(Blocked::StorageQuota),
            ),
        ];
        for (name, policy, situation, expected) in cases {
            assert_eq!(decide(&policy, &situation, now), expected, "{name}");
        }
    }

    #[test]
    fn overhead_math() {
        let mark = |cpu_seconds, requests| CpuMark {
            cpu_seconds,
            requests,
        };
        let mut baseline = Baseline::new(4);
        baseline.observe(mark(10.0, 1000));
        assert_eq!(baseline.ratio(), None);
        baseline.observe(mark(11.0, 1100));
        // 1 s over 100 requests.
        assert_eq!(baseline.ratio(), Some(0.01));
        baseline.skip();
        baseline.observe(mark(50.0, 5000)); // re-anchors, no delta across the gap
        assert_eq!(baseline.ratio(), Some(0.01));
        for i in 1..=4u32 {
            baseline.observe(mark(50.0 + f64::from(i) * 2.0, 5000 + u64::from(i) * 100));
        }
        // The first delta rolled out: 8 s over 400 requests.
        assert_eq!(baseline.ratio(), Some(0.02));

        let cases = [
            (Some(0.01), mark(0.0, 0), mark(1.01, 100), Some(1.0)),
            (Some(0.01), mark(0.0, 0), mark(1.0, 100), Some(0.0)),
            (Some(0.01), mark(0.0, 0), mark(0.9, 100), Some(-10.0)),
            (Some(0.01), mark(0.0, 0), mark(5.0, 49), None),
            (None, mark(0.0, 0), mark(5.0, 500), None),
        ];
        for (base, start, now, expected) in cases {
            let got = overhead_percent(base, start, now);
            match (got, expected) {
                (Some(g), Some(e)) => assert!((g - e).abs() < 1e-9, "{g} vs {e}"),
                (g, e) => assert_eq!(g, e),
            }
        }
    }

    #[test]
    fn slugs() {
        for (route, expected) in [
            ("/tokens", "tokens"),
            ("/tokens/validate", "tokens-validate"),
            ("/health", "health"),
            ("/health/ready", "health-ready"),
            ("/", "root"),
            ("/API//v1_x/", "api-v1-x"),
        ] {
            assert_eq!(slug(route), expected, "{route}");
        }
    }
}
