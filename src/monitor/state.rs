//! What the monitor publishes for `/health` and `/metrics`: a `Snapshot` replaced once per
//! tick. Readers hold the lock only to clone it; the monitor only to swap it.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::config::SlaConfig;
use crate::metrics::{Family, family};
use crate::monitor::guard::Blocked;

/// One route with a threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointSnapshot {
    pub route: String,
    pub samples: usize,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub threshold_p95_ms: f64,
    pub threshold_p99_ms: f64,
    pub violating: bool,
    /// ISO-8601 of the last automatic trigger.
    pub last_trigger: Option<String>,
    /// `sla_violations_total{endpoint, triggered="false"|"true"}`.
    pub violations: [u64; 2],
}

#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub endpoints: Vec<EndpointSnapshot>,
    /// The running automatic session.
    pub active_session: Option<String>,
    pub last_blocked_reason: Option<Blocked>,
    pub storage_used_bytes: u64,
    pub storage_quota_bytes: u64,
    /// The last measured overhead of an automatic session, in percent.
    pub overhead_percent: Option<f64>,
    /// `profiling_blocked_total{reason}`, indexed like `Blocked::ALL`.
    pub blocked: [u64; Blocked::ALL.len()],
}

impl Snapshot {
    /// Before the first tick: every threshold, no samples.
    pub fn initial(sla: &SlaConfig) -> Snapshot {
        Snapshot {
            endpoints: sla
                .thresholds
                .iter()
                .map(|threshold| EndpointSnapshot {
                    route: threshold.route.clone(),
                    samples: 0,
                    p95_ms: None,
                    p99_ms: None,
                    threshold_p95_ms: threshold.p95_ms,
                    threshold_p99_ms: threshold.p99_ms,
                    violating: false,
                    last_trigger: None,
                    violations: [0, 0],
                })
                .collect(),
            active_session: None,
            last_blocked_reason: None,
            storage_used_bytes: 0,
            storage_quota_bytes: sla.max_storage_bytes,
            overhead_percent: None,
            blocked: [0; Blocked::ALL.len()],
        }
    }

    /// The monitor's Prometheus lines (everything but `profiling_storage_bytes`, which has its
    /// own gauge); `dropped` is `sla_samples_dropped_total`.
    pub fn prometheus(&self, dropped: u64) -> String {
        let mut out = String::with_capacity(2048);
        for (Family { name, help }, pick) in [
            (
                family::SLA_P95,
                (|e: &EndpointSnapshot| e.p95_ms) as fn(&EndpointSnapshot) -> Option<f64>,
            ),
            (family::SLA_P99, |e: &EndpointSnapshot| e.p99_ms),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for endpoint in &self.endpoints {
                if let Some(ms) = pick(endpoint) {
                    let _ = writeln!(
                        out,
                        "{name}{{route=\"{}\"}} {}",
                        escape(&endpoint.route),
                        ms / 1000.0
                    );
                }
            }
        }
        let Family { name, help } = family::SLA_VIOLATIONS;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for endpoint in &self.endpoints {
            for (triggered, count) in ["false", "true"].iter().zip(endpoint.violations) {
                let _ = writeln!(
                    out,
                    "sla_violations_total{{endpoint=\"{}\",triggered=\"{triggered}\"}} {count}",
                    escape(&endpoint.route)
                );
            }
        }
        out.push_str(
            "# HELP profiling_blocked_total Automatic profiles not started, by reason.\n\
             # TYPE profiling_blocked_total counter\n",
        );
        for (reason, count) in Blocked::ALL.iter().zip(self.blocked) {
            let _ = writeln!(
                out,
                "profiling_blocked_total{{reason=\"{}\"}} {count}",
                reason.as_str()
            );
        }
        if let Some(percent) = self.overhead_percent {
            let _ = writeln!(
                out,
                "# HELP profiling_last_overhead_percent Measured CPU overhead of the last automatic session.\n\
                 # TYPE profiling_last_overhead_percent gauge\n\
                 profiling_last_overhead_percent {percent}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP sla_samples_dropped_total Latency samples dropped because the monitor's channel was full.\n\
             # TYPE sla_samples_dropped_total counter\n\
             sla_samples_dropped_total {dropped}"
        );
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Shared between the monitor thread (writer) and the handlers (readers).
pub struct SlaState {
    snapshot: Mutex<Snapshot>,
    shutting_down: AtomicBool,
    close: AtomicBool,
}

impl SlaState {
    pub fn new(sla: &SlaConfig) -> SlaState {
        SlaState {
            snapshot: Mutex::new(Snapshot::initial(sla)),
            shutting_down: AtomicBool::new(false),
            close: AtomicBool::new(false),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        lock(&self.snapshot).clone()
    }

    pub(crate) fn publish(&self, snapshot: Snapshot) {
        *lock(&self.snapshot) = snapshot;
    }

    /// No new automatic sessions from now on.
    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Asks the monitor to finish even though a sender may still exist (a worker abandoned at
    /// the end of the grace period keeps its clone).
    pub(crate) fn request_close(&self) {
        self.close.store(true, Ordering::SeqCst);
    }

    pub(crate) fn close_requested(&self) -> bool {
        self.close.load(Ordering::SeqCst)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_sla_thresholds;
    use std::path::PathBuf;
    use std::time::Duration;

    #[test]
    fn prometheus_lines() {
        let sla = SlaConfig {
            continuous_profiling: true,
            auto_trigger: true,
            buffer_size: 100,
            thresholds: parse_sla_thresholds("/tokens=100:200,/health=400:500").unwrap(),
            duration: Duration::from_secs(30),
            output_dir: PathBuf::from("profiles/auto"),
            throttle: Duration::from_secs(3600),
            max_concurrent: 1,
            max_storage_bytes: 1 << 30,
            max_overhead_percent: 2.0,
        };
        let mut snapshot = Snapshot::initial(&sla);
        snapshot.endpoints[0].p95_ms = Some(150.0);
        snapshot.endpoints[0].p99_ms = Some(250.5);
        snapshot.endpoints[0].violations = [2, 1];
        snapshot.blocked[Blocked::Throttled.index()] = 2;
        let text = snapshot.prometheus(7);
        for line in [
            "sla_p95_seconds{route=\"/tokens\"} 0.15\n",
            "sla_p99_seconds{route=\"/tokens\"} 0.2505\n",
            "sla_violations_total{endpoint=\"/tokens\",triggered=\"true\"} 1\n",
            "sla_violations_total{endpoint=\"/tokens\",triggered=\"false\"} 2\n",
            "sla_violations_total{endpoint=\"/health\",triggered=\"false\"} 0\n",
            "profiling_blocked_total{reason=\"throttled\"} 2\n",
            "profiling_blocked_total{reason=\"busy\"} 0\n",
            "sla_samples_dropped_total 7\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("sla_p95_seconds{route=\"/health\"}"));
        assert!(!text.contains("profiling_last_overhead_percent "));
    }
}
