//! Export bookkeeping per signal: how many OTLP requests went out, how they ended, when the
//! last ones did, and the last few errors; the span queue's drops; and the backoff after a
//! failed export, during which batches are dropped without being encoded.
//!
//! Written only by the exporters' own threads (and the span gate, one relaxed add per
//! dropped span); read by `/health/telemetry`, the `/metrics` views and Prometheus. The small
//! mutex guards the error list and timestamps and is taken once per export, never by a
//! request worker.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// How many recent errors `/health/telemetry` lists.
const RECENT_ERRORS: usize = 10;

/// After a failed export no batch is encoded or sent for this long, doubling per failure in a
/// row up to `MAX_BACKOFF`: a dead collector then costs one connection attempt per window,
/// not the encoding of every span.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Drops this recent keep `/health/telemetry` at `degraded`.
pub const RECENT_DROP: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
        }
    }
}

#[derive(Default)]
struct Times {
    last_success_ms: Option<u64>,
    last_failure_ms: Option<u64>,
    /// Whether the latest export failed: what `status` reports.
    failing: bool,
    /// Failed exports in a row, and when the backoff they started ends.
    failures_in_a_row: u32,
    retry_at: Option<Instant>,
    recent_errors: VecDeque<(u64, String)>,
}

pub struct SignalStats {
    pub signal: Signal,
    pub endpoint: String,
    exports: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    /// Spans handed to the exporter (traces only).
    pub items_exported: AtomicU64,
    /// Spans dropped because the queue was full (traces only).
    pub items_dropped: AtomicU64,
    /// Spans dropped unencoded while backing off from a failing collector (traces only).
    pub items_dropped_backoff: AtomicU64,
    /// When spans were last dropped, either way (Unix ms; 0 = never).
    last_drop_ms: AtomicU64,
    times: Mutex<Times>,
}

/// A copy for rendering.
#[derive(Clone, Debug, Default)]
pub struct StatsSnapshot {
    pub exports: u64,
    pub successes: u64,
    pub failures: u64,
    pub items_exported: u64,
    pub items_dropped: u64,
    pub items_dropped_backoff: u64,
}

impl std::fmt::Debug for SignalStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalStats")
            .field("signal", &self.signal)
            .field("snapshot", &self.snapshot())
            .finish_non_exhaustive()
    }
}

impl SignalStats {
    pub fn new(signal: Signal, endpoint: &str) -> SignalStats {
        SignalStats {
            signal,
            endpoint: endpoint.to_owned(),
            exports: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            items_exported: AtomicU64::new(0),
            items_dropped: AtomicU64::new(0),
            items_dropped_backoff: AtomicU64::new(0),
            last_drop_ms: AtomicU64::new(0),
            times: Mutex::new(Times::default()),
        }
    }

    pub fn record_success(&self) {
        self.exports.fetch_add(1, Ordering::Relaxed);
        self.successes.fetch_add(1, Ordering::Relaxed);
        let mut times = self.lock();
        if times.failing {
            log::info!("otlp {} export recovered", self.signal.as_str());
        }
        times.failing = false;
        times.failures_in_a_row = 0;
        times.retry_at = None;
        times.last_success_ms = Some(unix_millis());
    }

    pub fn record_failure(&self, error: String) {
        self.exports.fetch_add(1, Ordering::Relaxed);
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut times = self.lock();
        // One line per outage, not per export: a dead collector must not flood the logs.
        if !times.failing {
            log::warn!(
                "otlp {} export to {} failed: {error} (further failures are counted in /health/telemetry)",
                self.signal.as_str(),
                self.endpoint
            );
        }
        times.failing = true;
        times.failures_in_a_row = times.failures_in_a_row.saturating_add(1);
        let doublings = (times.failures_in_a_row - 1).min(5);
        times.retry_at = Some(Instant::now() + (FIRST_BACKOFF * (1 << doublings)).min(MAX_BACKOFF));
        let now = unix_millis();
        times.last_failure_ms = Some(now);
        if times.recent_errors.len() == RECENT_ERRORS {
            times.recent_errors.pop_front();
        }
        times.recent_errors.push_back((now, error));
    }

    /// Whether a recent failure's backoff is still running (then the batch is dropped).
    pub fn backing_off(&self) -> bool {
        self.lock()
            .retry_at
            .is_some_and(|retry_at| Instant::now() < retry_at)
    }

    /// Counts `count` spans dropped: at the full queue, or unencoded during a backoff.
    pub fn record_dropped(&self, count: u64, during_backoff: bool) {
        let counter = if during_backoff {
            &self.items_dropped_backoff
        } else {
            &self.items_dropped
        };
        counter.fetch_add(count, Ordering::Relaxed);
        // Workers drop spans here when the queue is full, often all at once: the shared stamp
        // is written at most once a second, so they do not all fight over its cache line.
        let now = unix_millis();
        if now.saturating_sub(self.last_drop_ms.load(Ordering::Relaxed)) >= 1000 {
            self.last_drop_ms.store(now, Ordering::Relaxed);
        }
    }

    /// Whether spans were dropped within `RECENT_DROP`.
    pub fn dropped_recently(&self) -> bool {
        let last = self.last_drop_ms.load(Ordering::Relaxed);
        last != 0 && unix_millis().saturating_sub(last) < RECENT_DROP.as_millis() as u64
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            exports: self.exports.load(Ordering::Relaxed),
            successes: self.successes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            items_exported: self.items_exported.load(Ordering::Relaxed),
            items_dropped: self.items_dropped.load(Ordering::Relaxed),
            items_dropped_backoff: self.items_dropped_backoff.load(Ordering::Relaxed),
        }
    }

    /// `idle` before the first export, then `ok` or `failing` after the latest one.
    pub fn status(&self) -> &'static str {
        let times = self.lock();
        match (times.failing, times.last_success_ms, times.last_failure_ms) {
            (true, _, _) => "failing",
            (false, None, None) => "idle",
            _ => "ok",
        }
    }

    pub fn json(&self) -> Value {
        let snapshot = self.snapshot();
        let status = self.status();
        let times = self.lock();
        let recent: Vec<Value> = times
            .recent_errors
            .iter()
            .rev()
            .map(|(at, error)| json!({"at": iso(*at), "error": error}))
            .collect();
        json!({
            "endpoint": self.endpoint,
            "status": status,
            "exports": snapshot.exports,
            "successes": snapshot.successes,
            "failures": snapshot.failures,
            "lastSuccess": times.last_success_ms.map(iso),
            "lastFailure": times.last_failure_ms.map(iso),
            "lastError": times.recent_errors.back().map(|(_, error)| error.clone()),
            "recentErrors": recent,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Times> {
        self.times.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `otel_exports_total{signal,result}`, `otel_spans_exported_total`, `otel_spans_dropped_total`.
/// `stats` is empty in console mode: the series are still there, at zero.
pub fn render_prometheus(out: &mut String, traces: &StatsSnapshot, metrics: &StatsSnapshot) {
    out.push_str(
        "# HELP otel_exports_total OTLP export requests by signal and result.\n\
         # TYPE otel_exports_total counter\n",
    );
    for (signal, stats) in [("traces", traces), ("metrics", metrics)] {
        for (result, value) in [("success", stats.successes), ("failure", stats.failures)] {
            let _ = writeln!(
                out,
                "otel_exports_total{{signal=\"{signal}\",result=\"{result}\"}} {value}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP otel_spans_exported_total Spans handed to the OTLP exporter.\n\
         # TYPE otel_spans_exported_total counter\n\
         otel_spans_exported_total {}\n\
         # HELP otel_spans_dropped_total Spans dropped: the export queue (OTEL_BSP_MAX_QUEUE_SIZE) was full, or the collector failed and its backoff was running.\n\
         # TYPE otel_spans_dropped_total counter\n\
         otel_spans_dropped_total{{reason=\"queue_full\"}} {}\n\
         otel_spans_dropped_total{{reason=\"collector_backoff\"}} {}",
        traces.items_exported, traces.items_dropped, traces.items_dropped_backoff
    );
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn iso(millis: u64) -> String {
    crate::timefmt::iso8601_millis((millis / 1000) as i64, (millis % 1000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_latest_export_and_errors_are_bounded() {
        let stats = SignalStats::new(Signal::Traces, "http://c/v1/traces");
        assert_eq!(stats.status(), "idle");
        for n in 0..15 {
            stats.record_failure(format!("error {n}"));
        }
        assert_eq!(stats.status(), "failing");
        let json = stats.json();
        assert_eq!(
            json["recentErrors"].as_array().unwrap().len(),
            RECENT_ERRORS
        );
        assert_eq!(json["recentErrors"][0]["error"], "error 14");
        assert_eq!(json["lastError"], "error 14");
        stats.record_success();
        assert_eq!(stats.status(), "ok");
        assert_eq!(
            (stats.snapshot().exports, stats.snapshot().failures),
            (16, 15)
        );
        let mut text = String::new();
        render_prometheus(&mut text, &stats.snapshot(), &StatsSnapshot::default());
        assert!(text.contains("otel_exports_total{signal=\"traces\",result=\"failure\"} 15\n"));
        assert!(text.contains("otel_spans_dropped_total{reason=\"queue_full\"} 0\n"));
    }

    #[test]
    fn failures_start_a_backoff_that_a_success_ends() {
        let stats = SignalStats::new(Signal::Traces, "http://c/v1/traces");
        assert!(!stats.backing_off());
        stats.record_failure("refused".into());
        assert!(stats.backing_off());
        stats.record_success();
        assert!(!stats.backing_off());
        assert!(!stats.dropped_recently());
        stats.record_dropped(512, true);
        assert!(stats.dropped_recently());
        assert_eq!(stats.snapshot().items_dropped_backoff, 512);
        assert_eq!(stats.snapshot().items_dropped, 0);
    }
}
