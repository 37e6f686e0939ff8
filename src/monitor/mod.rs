//! The SLA monitor: the side path from request latencies to automatic profiles.
//!
//! Workers `try_send` one `Sample` per answered request (`sample.rs`); this module's single
//! thread owns the `Receiver`, a rolling `Window` per route with a threshold, and every
//! decision. It waits on `recv_timeout(tick)`, drains whatever is queued, and evaluates once
//! per tick (250 ms), never per sample. A route whose nearest-rank p95 or p99 is over its
//! threshold is *violating*; the run of ticks while it stays so is one *episode*. An episode
//! asks `guard::decide` whether to profile: yes starts a CPU+heap session through the
//! `Profiler`; no is a `Blocked` reason. `sla_violations_total{endpoint,triggered}` counts
//! decisions: one when an episode starts, one more each time its outcome changes (busy →
//! triggered, triggered → throttled) and one per trigger; ticks that repeat the outcome count
//! nothing and log nothing.
//!
//! Automatic sessions are started with `seconds: None`: this thread stops them at the
//! deadline with `stop_with_metadata`, so the measured overhead lands in the reports, or
//! earlier when the overhead (CPU-seconds per request during the session against the ticks
//! before it) exceeds `CONTINUOUS_PROFILING_MAX_OVERHEAD_PERCENT`, which also pauses automatic
//! profiling for one throttle period. Storage is scanned once at start; afterwards only the
//! sizes of the files this thread had written are added.
//!
//! Latency is what a client feels: from the connection thread reading the request's first
//! byte to the response being handed to the socket (`server/adapter.rs`), so the wait for a
//! free worker counts and a saturated pool violates the SLA like a slow handler does. The
//! monitor knows nothing of `App`: `start` gets what it needs (`Inputs`).
//!
//! Shutdown (STYLE 20): `begin_shutdown` blocks new triggers; once the workers are joined the
//! last `SampleSender` is dropped (it lives in `App`), the thread sees `Disconnected` after
//! draining, stops a running automatic session and waits for its files, publishes a last
//! snapshot and returns; `MonitorHandle::join` waits for that, bounded by a deadline.
//!
//! The thread never touches the filesystem except the one start-up scan and `stat` of the files
//! its own sessions wrote.

mod guard;
pub mod sample;
pub mod state;
pub mod window;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

pub use guard::{Blocked, slug};
pub use sample::{Sample, SampleSender};
pub use state::{EndpointSnapshot, SlaState, Snapshot};

use crate::config::{SlaConfig, SlaThreshold};
use crate::metrics::{Metrics, RouteLabel};
use crate::monitor::guard::{Baseline, CpuMark, Policy, Situation};
use crate::monitor::window::{Percentiles, Window};
use crate::profiling::{
    self, FinishedSession, Formats, Naming, OutputSpec, Profiler, ProfilingError, SessionKind,
    SessionRequest, SlaContext, Trigger,
};
use crate::{process, timefmt};

/// How often windows are evaluated and the snapshot is published.
pub const TICK: Duration = Duration::from_millis(250);
/// After draining a batch the thread sleeps this long before waiting again, so a busy service
/// wakes it at most ~100 times a second rather than once per request.
const COALESCE: Duration = Duration::from_millis(10);
/// The overhead baseline: CPU and requests of the last minute of ticks without profiling.
const BASELINE_TICKS: usize = 240;

/// The running monitor thread.
pub struct MonitorHandle {
    thread: JoinHandle<()>,
    state: Arc<SlaState>,
}

impl MonitorHandle {
    /// Shutdown began: violations from now on are blocked with `shutting_down`.
    pub fn begin_shutdown(&self) {
        self.state.begin_shutdown();
    }

    /// Waits until the thread drained the channel, stopped a running automatic session and
    /// wrote its files, or until `deadline`. Call after the last `SampleSender` was dropped;
    /// if one survives (a worker abandoned at the end of the grace period), the thread is told
    /// to finish anyway.
    pub fn join(self, deadline: Instant) -> bool {
        self.state.begin_shutdown();
        self.state.request_close();
        while !self.thread.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if self.thread.is_finished() {
            let _ = self.thread.join();
            true
        } else {
            log::warn!("the SLA monitor did not finish before the shutdown deadline");
            false
        }
    }
}

/// What the monitor thread works with; it knows nothing else of the service.
pub struct Inputs<'a> {
    pub config: &'a SlaConfig,
    /// The receiving end of the workers' sample channel.
    pub samples: Receiver<Sample>,
    pub profiler: Arc<Profiler>,
    pub metrics: Arc<Metrics>,
    /// Where the monitor publishes its snapshots for `/health` and `/metrics`.
    pub state: Arc<SlaState>,
}

/// Starts the monitor thread.
pub fn start(inputs: Inputs<'_>) -> io::Result<MonitorHandle> {
    let Inputs {
        config: sla,
        samples: rx,
        profiler,
        metrics,
        state,
    } = inputs;
    if sla.continuous_profiling
        && sla.auto_trigger
        && let Err(err) = profiling::check_writable(&sla.output_dir)
    {
        log::warn!(
            "CONTINUOUS_PROFILING_OUTPUT_DIR {}: {err}; automatic profiles will fail",
            sla.output_dir.display()
        );
    }
    let monitor = Monitor::new(
        sla,
        rx,
        profiler,
        metrics,
        Arc::clone(&state),
        directory_bytes(&sla.output_dir),
    );
    let thread = thread::Builder::new()
        .name("sla-monitor".into())
        .spawn(move || monitor.run())?;
    Ok(MonitorHandle { thread, state })
}

/// Bytes of the files under `dir`, recursively; 0 when it does not exist. Called once.
fn directory_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => directory_bytes(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// The outcome of one decision about a violating route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Triggered,
    Blocked(Blocked),
}

struct RouteState {
    threshold: SlaThreshold,
    slug: String,
    window: Window,
    percentiles: Option<Percentiles>,
    violating: bool,
    /// The current episode's last decision.
    outcome: Option<Outcome>,
    last_trigger: Option<Instant>,
    last_trigger_iso: Option<String>,
    violations: [u64; 2],
}

impl RouteState {
    fn over(&self) -> bool {
        self.percentiles.is_some_and(|p| {
            f64::from(p.p95_us) > self.threshold.p95_ms * 1000.0
                || f64::from(p.p99_us) > self.threshold.p99_ms * 1000.0
        })
    }
}

/// The automatic session this thread started.
struct AutoSession {
    id: String,
    route: usize,
    deadline: Instant,
    start: CpuMark,
    baseline: Option<f64>,
}

#[derive(Clone, Copy)]
enum StopReason {
    Duration,
    Overhead,
    Shutdown,
}

impl StopReason {
    fn as_str(self) -> &'static str {
        match self {
            StopReason::Duration => "duration",
            StopReason::Overhead => "overhead",
            StopReason::Shutdown => "shutdown",
        }
    }
}

struct Monitor {
    rx: Receiver<Sample>,
    policy: Policy,
    duration: Duration,
    output_dir: PathBuf,
    max_overhead_percent: f64,
    routes: Vec<RouteState>,
    /// `RouteLabel as usize` → index into `routes`.
    route_of: [Option<usize>; RouteLabel::ALL.len()],
    profiler: Arc<Profiler>,
    metrics: Arc<Metrics>,
    state: Arc<SlaState>,
    storage_used: u64,
    auto: Option<AutoSession>,
    paused_until: Option<Instant>,
    baseline: Baseline,
    last_blocked: Option<Blocked>,
    last_overhead: Option<f64>,
    blocked: [u64; Blocked::ALL.len()],
    scratch: Vec<u32>,
}

impl Monitor {
    fn new(
        sla: &SlaConfig,
        rx: Receiver<Sample>,
        profiler: Arc<Profiler>,
        metrics: Arc<Metrics>,
        state: Arc<SlaState>,
        storage_used: u64,
    ) -> Monitor {
        let mut route_of = [None; RouteLabel::ALL.len()];
        for (index, threshold) in sla.thresholds.iter().enumerate() {
            match RouteLabel::ALL
                .iter()
                .find(|label| label.as_str() == threshold.route)
            {
                Some(label) => route_of[*label as usize] = Some(index),
                None => log::warn!(
                    "SLA_THRESHOLDS names {}, which is not a route of this service",
                    threshold.route
                ),
            }
        }
        Monitor {
            rx,
            policy: Policy {
                enabled: sla.continuous_profiling,
                auto_trigger: sla.auto_trigger,
                throttle: sla.throttle,
                max_concurrent: sla.max_concurrent,
                quota_bytes: sla.max_storage_bytes,
            },
            duration: sla.duration,
            output_dir: sla.output_dir.clone(),
            max_overhead_percent: sla.max_overhead_percent,
            routes: sla
                .thresholds
                .iter()
                .map(|threshold| RouteState {
                    threshold: threshold.clone(),
                    slug: slug(&threshold.route),
                    window: Window::new(sla.buffer_size),
                    percentiles: None,
                    violating: false,
                    outcome: None,
                    last_trigger: None,
                    last_trigger_iso: None,
                    violations: [0, 0],
                })
                .collect(),
            route_of,
            profiler,
            metrics,
            state,
            storage_used,
            auto: None,
            paused_until: None,
            baseline: Baseline::new(BASELINE_TICKS),
            last_blocked: None,
            last_overhead: None,
            blocked: [0; Blocked::ALL.len()],
            scratch: Vec::with_capacity(sla.buffer_size),
        }
    }

    fn run(mut self) {
        let mut next_tick = Instant::now() + TICK;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(sample) => {
                    self.push(sample);
                    self.drain();
                    let left = next_tick.saturating_duration_since(Instant::now());
                    if !self.state.close_requested() && !left.is_zero() {
                        thread::sleep(COALESCE.min(left));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.state.close_requested() {
                break;
            }
            let now = Instant::now();
            if now >= next_tick {
                self.tick(now);
                next_tick = (next_tick + TICK).max(now);
            }
        }
        self.drain();
        self.finish();
    }

    fn push(&mut self, sample: Sample) {
        if let Some(index) = self.route_of[sample.route as usize] {
            self.routes[index].window.push(sample.micros);
        }
    }

    /// Takes what is queued now (bounded, so producers cannot keep the thread here).
    fn drain(&mut self) {
        for _ in 0..self.rx.len() {
            match self.rx.try_recv() {
                Ok(sample) => self.push(sample),
                Err(_) => break,
            }
        }
    }

    fn mark(&self) -> CpuMark {
        CpuMark {
            cpu_seconds: process::cpu_seconds(),
            requests: self.metrics.requests_total(),
        }
    }

    fn tick(&mut self, now: Instant) {
        let mark = self.mark();
        let profiling_before = self.auto.is_some() || self.profiler.is_active();
        self.watch_auto_session(now, mark);
        if profiling_before || self.profiler.is_active() {
            self.baseline.skip();
        } else {
            self.baseline.observe(mark);
        }
        for index in 0..self.routes.len() {
            self.evaluate(index, now);
        }
        self.publish();
    }

    /// Stops our automatic session at its deadline or when it costs too much.
    fn watch_auto_session(&mut self, now: Instant, mark: CpuMark) {
        let Some(auto) = &self.auto else { return };
        let running = self
            .profiler
            .active_session()
            .is_some_and(|session| session.id == auto.id);
        if !running {
            // Someone else stopped it (`POST /debug/profiling/stop`); its files still count.
            let auto = self.auto.take().expect("checked above");
            log::info!(
                "automatic profile {} was stopped by another caller",
                auto.id
            );
            if let Some(finished) = self
                .profiler
                .status()
                .sessions
                .into_iter()
                .find(|s| s.info.id == auto.id)
            {
                self.account(&finished);
            }
            return;
        }
        let overhead = guard::overhead_percent(auto.baseline, auto.start, mark);
        if overhead.is_some() {
            self.last_overhead = overhead;
        }
        if overhead.is_some_and(|percent| percent > self.max_overhead_percent) {
            self.paused_until = Some(now + self.policy.throttle);
            self.stop_auto(StopReason::Overhead, mark);
        } else if now >= auto.deadline {
            self.stop_auto(StopReason::Duration, mark);
        }
    }

    fn evaluate(&mut self, index: usize, now: Instant) {
        let route = &mut self.routes[index];
        route.percentiles = route.window.percentiles(&mut self.scratch);
        if !route.over() {
            if route.violating {
                log::info!(
                    "SLA on {} is met again ({})",
                    route.threshold.route,
                    figures(route)
                );
            }
            route.violating = false;
            route.outcome = None;
            return;
        }
        route.violating = true;
        if self.auto.as_ref().is_some_and(|auto| auto.route == index) {
            return; // being profiled right now
        }
        let situation = Situation {
            shutting_down: self.state.is_shutting_down(),
            active_sessions: usize::from(self.profiler.is_active()),
            storage_used: self.storage_used,
            last_trigger: route.last_trigger,
            paused_until: self.paused_until,
        };
        let outcome = match guard::decide(&self.policy, &situation, now) {
            Ok(()) => match self.start_auto(index, now) {
                Ok(()) => Outcome::Triggered,
                Err(reason) => Outcome::Blocked(reason),
            },
            Err(reason) => Outcome::Blocked(reason),
        };
        self.record(index, outcome);
    }

    /// Counts and logs a decision unless it repeats the episode's last one.
    fn record(&mut self, index: usize, outcome: Outcome) {
        let route = &mut self.routes[index];
        let repeated = route.outcome == Some(outcome) && outcome != Outcome::Triggered;
        route.outcome = Some(outcome);
        if repeated {
            return;
        }
        match outcome {
            Outcome::Triggered => route.violations[1] += 1,
            Outcome::Blocked(reason) => {
                route.violations[0] += 1;
                self.blocked[reason.index()] += 1;
                self.last_blocked = Some(reason);
                log::warn!(
                    "SLA violation on {} ({}): no automatic profile: {}",
                    route.threshold.route,
                    figures(route),
                    explain(reason)
                );
            }
        }
    }

    fn start_auto(&mut self, index: usize, now: Instant) -> Result<(), Blocked> {
        let route = &self.routes[index];
        let percentiles = route
            .percentiles
            .expect("a violating route has percentiles");
        let prefix = format!(
            "{}-sla-violation-{}",
            route.slug,
            timefmt::compact_timestamp(timefmt::unix_now() as i64)
        );
        let request = SessionRequest {
            kind: SessionKind::Both,
            trigger: Trigger::Sla(SlaContext {
                route: route.threshold.route.clone(),
                p95_ms: f64::from(percentiles.p95_us) / 1000.0,
                p99_ms: f64::from(percentiles.p99_us) / 1000.0,
                threshold_p95_ms: route.threshold.p95_ms,
                threshold_p99_ms: route.threshold.p99_ms,
                window_samples: route.window.len(),
            }),
            output: OutputSpec {
                dir: self.output_dir.clone(),
                naming: Naming::Prefix(prefix.clone()),
                formats: Formats {
                    heap_pprof: false,
                    ..Formats::all()
                },
            },
            seconds: None,
        };
        match self.profiler.start(request) {
            Ok(info) => {
                let start = self.mark();
                let baseline = self.baseline.ratio();
                let route = &mut self.routes[index];
                route.last_trigger = Some(now);
                route.last_trigger_iso = Some(timefmt::now_iso8601());
                log::warn!(
                    "SLA violation on {} ({}): profiling CPU and heap for {}s into {}/{prefix}.*",
                    route.threshold.route,
                    figures(route),
                    self.duration.as_secs(),
                    self.output_dir.display()
                );
                self.auto = Some(AutoSession {
                    id: info.id,
                    route: index,
                    deadline: now + self.duration,
                    start,
                    baseline,
                });
                Ok(())
            }
            Err(ProfilingError::Busy) => Err(Blocked::Busy),
            Err(err) => {
                log::error!(
                    "cannot start the automatic profile for {}: {err}",
                    route.threshold.route
                );
                Err(Blocked::StartFailed)
            }
        }
    }

    /// Stops our session with the overhead rows and waits for its files.
    fn stop_auto(&mut self, reason: StopReason, mark: CpuMark) {
        let Some(auto) = self.auto.take() else { return };
        let overhead = guard::overhead_percent(auto.baseline, auto.start, mark);
        let per_request_ms = |ratio: Option<f64>| {
            ratio.map_or_else(|| "n/a".to_owned(), |r| format!("{:.3}", r * 1000.0))
        };
        let session_requests = mark.requests.saturating_sub(auto.start.requests);
        let session_ratio = (session_requests > 0).then(|| {
            (mark.cpu_seconds - auto.start.cpu_seconds).max(0.0) / session_requests as f64
        });
        let rows = vec![
            (
                "overhead_percent".to_owned(),
                overhead.map_or_else(
                    || {
                        format!(
                            "n/a (needs a baseline and {} requests)",
                            guard::MIN_REQUESTS
                        )
                    },
                    |o| format!("{o:.2}"),
                ),
            ),
            (
                "overhead_limit_percent".to_owned(),
                format!("{}", self.max_overhead_percent),
            ),
            (
                "baseline_cpu_ms_per_request".to_owned(),
                per_request_ms(auto.baseline),
            ),
            (
                "session_cpu_ms_per_request".to_owned(),
                per_request_ms(session_ratio),
            ),
            ("session_requests".to_owned(), session_requests.to_string()),
            ("stopped_by".to_owned(), reason.as_str().to_owned()),
        ];
        match reason {
            StopReason::Overhead => log::warn!(
                "automatic profile {} stopped early: overhead {:.2}% > {}%; automatic profiling paused for {} min",
                auto.id,
                overhead.unwrap_or(f64::NAN),
                self.max_overhead_percent,
                self.policy.throttle.as_secs() / 60
            ),
            StopReason::Shutdown => {
                log::info!("shutting down: stopping automatic profile {}", auto.id)
            }
            StopReason::Duration => {}
        }
        match self.profiler.stop_with_metadata(rows) {
            Ok(Some(finished)) => {
                if finished.info.id != auto.id {
                    // Ours ended on its own in between and another session was stopped;
                    // the profiler API has no stop-by-id, so this is only logged.
                    log::warn!(
                        "stopped session {} instead of automatic {}",
                        finished.info.id,
                        auto.id
                    );
                }
                self.account(&finished);
                for artifact in &finished.artifacts {
                    log::info!("automatic profile written: {}", artifact.path.display());
                }
            }
            Ok(None) => {}
            Err(err) => log::error!("automatic profile {}: {err}", auto.id),
        }
    }

    /// Adds the sizes of files a session wrote into the output directory.
    fn account(&mut self, finished: &FinishedSession) {
        for artifact in &finished.artifacts {
            if artifact.path.starts_with(&self.output_dir)
                && let Ok(meta) = std::fs::metadata(&artifact.path)
            {
                self.storage_used += meta.len();
            }
        }
    }

    /// The channel is closed and drained: stop our session, publish the last snapshot.
    fn finish(&mut self) {
        self.state.begin_shutdown();
        // Fresh figures for the last snapshot; no new decisions while stopping.
        for route in &mut self.routes {
            route.percentiles = route.window.percentiles(&mut self.scratch);
            route.violating = route.over();
        }
        if self.auto.is_some() {
            let mark = self.mark();
            self.stop_auto(StopReason::Shutdown, mark);
        }
        self.publish();
    }

    fn publish(&self) {
        let endpoints = self
            .routes
            .iter()
            .map(|route| EndpointSnapshot {
                route: route.threshold.route.clone(),
                samples: route.window.len(),
                p95_ms: route.percentiles.map(|p| f64::from(p.p95_us) / 1000.0),
                p99_ms: route.percentiles.map(|p| f64::from(p.p99_us) / 1000.0),
                threshold_p95_ms: route.threshold.p95_ms,
                threshold_p99_ms: route.threshold.p99_ms,
                violating: route.violating,
                last_trigger: route.last_trigger_iso.clone(),
                violations: route.violations,
            })
            .collect();
        self.state.publish(Snapshot {
            endpoints,
            active_session: self.auto.as_ref().map(|auto| auto.id.clone()),
            last_blocked_reason: self.last_blocked,
            storage_used_bytes: self.storage_used,
            storage_quota_bytes: self.policy.quota_bytes,
            overhead_percent: self.last_overhead,
            blocked: self.blocked,
        });
    }
}

/// `p95 180.3ms / 100ms, p99 201.0ms / 200ms, 100 samples`.
fn figures(route: &RouteState) -> String {
    match route.percentiles {
        Some(p) => format!(
            "p95 {:.1}ms / {}ms, p99 {:.1}ms / {}ms, {} samples",
            f64::from(p.p95_us) / 1000.0,
            route.threshold.p95_ms,
            f64::from(p.p99_us) / 1000.0,
            route.threshold.p99_ms,
            route.window.len()
        ),
        None => format!("{} samples", route.window.len()),
    }
}

/// Why an automatic profile did not start, in words; `/health` shows it beside the code.
pub fn explain(reason: Blocked) -> &'static str {
    match reason {
        Blocked::Disabled => "CONTINUOUS_PROFILING_ENABLED is false",
        Blocked::AutoTriggerDisabled => "CONTINUOUS_PROFILING_AUTO_TRIGGER_ON_SLA is false",
        Blocked::ShuttingDown => "shutting down",
        Blocked::Overhead => {
            "paused after a session exceeded CONTINUOUS_PROFILING_MAX_OVERHEAD_PERCENT"
        }
        Blocked::Throttled => {
            "throttled (CONTINUOUS_PROFILING_THROTTLE_MINUTES since this route's last profile)"
        }
        Blocked::Busy => "another profiling session is running",
        // The words users search for (the profiling guide's troubleshooting) come first.
        Blocked::StorageQuota => {
            "Storage quota exceeded: CONTINUOUS_PROFILING_MAX_STORAGE_GB is used up"
        }
        Blocked::StartFailed => "the profiler could not start (see the error above)",
    }
}
