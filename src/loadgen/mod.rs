//! The load engine behind `load` and `profile`: closed-loop virtual users (one OS thread and
//! one keep-alive connection each), ramped by k6-style stages, optionally paced to a total
//! request rate, recording per-endpoint latency and status counts.
//!
//! Owns the VU threads and their lifetime: `run` returns only after every VU has stopped, so
//! nothing outlives a run. Must not import `server`, `handlers` or `kong` (it drives a
//! service over HTTP like any client) and must not read env vars or print; `cmd/` does that.
//!
//! Module map: `client` (HTTP/1.1 over TcpStream), `scenario` (endpoints, mixes, consumers,
//! pre-rendered requests), `stages` (VU targets over time), `stats` (histograms), `summary`
//! (per-endpoint results, SLA checks, table and JSON), `progress` (terminal status line),
//! `remote` (the target's `/debug/profiling` API).

pub mod child;
pub mod client;
pub mod progress;
pub mod remote;
pub mod scenario;
pub mod stages;
pub mod stats;
pub mod summary;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use client::{Conn, Target};
use scenario::{Endpoint, Requests};
use stages::Stages;
use stats::EndpointStats;

/// How often the controller re-reads the stage target and spawns VUs.
const TICK: Duration = Duration::from_millis(50);
/// How long an inactive VU sleeps before checking whether it is wanted again.
const IDLE: Duration = Duration::from_millis(20);
/// After a failed connect, a VU waits this long so a down target is not hammered in a loop.
const CONNECT_BACKOFF: Duration = Duration::from_millis(50);

/// One run's inputs.
pub struct Plan {
    pub target: Target,
    pub stages: Stages,
    pub requests: Arc<Requests>,
    /// Total requests per second across all VUs; `None` sends as fast as replies come.
    pub rate: Option<f64>,
}

/// Counters a progress display reads while the run goes on.
#[derive(Default)]
pub struct Live {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub active: AtomicU32,
}

/// What a run measured.
pub struct Outcome {
    pub elapsed: Duration,
    /// Per endpoint, in `Endpoint` order; only endpoints that were called.
    pub endpoints: Vec<(Endpoint, EndpointStats)>,
    pub peak_vus: u32,
    /// Requests completed in each whole second of the run, for its variability.
    pub per_second: Vec<u64>,
}

impl Outcome {
    pub fn successes(&self) -> u64 {
        self.endpoints.iter().map(|(_, s)| s.successes()).sum()
    }

    /// The coefficient of variation of the per-second request counts, in percent: how much
    /// the throughput moved from second to second. The first second (connections opening)
    /// is left out; `None` under three seconds to judge.
    pub fn rps_variation_percent(&self) -> Option<f64> {
        let steady = self.per_second.get(1..)?;
        if steady.len() < 3 {
            return None;
        }
        let n = steady.len() as f64;
        let mean = steady.iter().sum::<u64>() as f64 / n;
        if mean <= 0.0 {
            return None;
        }
        let variance = steady
            .iter()
            .map(|&c| (c as f64 - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0);
        Some(variance.sqrt() / mean * 100.0)
    }
}

struct Shared {
    requests: Arc<Requests>,
    live: Arc<Live>,
    stop: AtomicBool,
    start: Instant,
    deadline: Instant,
    rate: Option<f64>,
    /// Next pacing slot (request number across all VUs) when `rate` is set.
    ticket: AtomicU64,
}

/// Runs the plan to its end and returns the merged statistics.
pub fn run(plan: Plan, live: Arc<Live>) -> Outcome {
    let start = Instant::now();
    let total = plan.stages.total();
    let shared = Arc::new(Shared {
        requests: plan.requests,
        live,
        stop: AtomicBool::new(false),
        start,
        deadline: start + total,
        rate: plan.rate.filter(|r| *r > 0.0),
        ticket: AtomicU64::new(0),
    });
    let mut vus: Vec<JoinHandle<[Option<EndpointStats>; 4]>> = Vec::new();
    let mut peak = 0;
    let mut per_second = Vec::new();
    let mut counted = 0;
    loop {
        let elapsed = start.elapsed();
        // The controller ticks every 50 ms, so a second's count is off by at most a tick.
        if elapsed.as_secs() > per_second.len() as u64 {
            let now = shared.live.requests.load(Ordering::Relaxed);
            per_second.push(now - counted);
            counted = now;
        }
        if elapsed >= total {
            break;
        }
        let wanted = plan.stages.vus_at(elapsed);
        peak = peak.max(wanted);
        shared.live.active.store(wanted, Ordering::Relaxed);
        // VUs are spawned on first need and then park while not wanted, so a ramp down and
        // up again reuses threads.
        while vus.len() < wanted as usize {
            let index = vus.len();
            let shared = Arc::clone(&shared);
            let target = plan.target.clone();
            let spawned = thread::Builder::new()
                .name(format!("vu-{index}"))
                .stack_size(256 * 1024)
                .spawn(move || virtual_user(index, &target, &shared));
            match spawned {
                Ok(handle) => vus.push(handle),
                // Out of threads: carry on with the VUs we have rather than abort the run.
                Err(_) => break,
            }
        }
        thread::sleep(TICK.min(total - elapsed));
    }
    shared.stop.store(true, Ordering::Relaxed);
    shared.live.active.store(0, Ordering::Relaxed);
    let mut merged: [Option<EndpointStats>; 4] = Default::default();
    for handle in vus {
        // A VU thread cannot panic short of a bug; its numbers are then lost, not the run.
        if let Ok(recorded) = handle.join() {
            for (slot, stats) in merged.iter_mut().zip(recorded) {
                if let Some(stats) = stats {
                    slot.get_or_insert_with(EndpointStats::default)
                        .merge(&stats);
                }
            }
        }
    }
    let elapsed = start.elapsed();
    Outcome {
        elapsed,
        endpoints: Endpoint::ALL
            .iter()
            .zip(merged)
            .filter_map(|(&endpoint, stats)| stats.map(|s| (endpoint, s)))
            .collect(),
        peak_vus: peak,
        per_second,
    }
}

fn virtual_user(index: usize, target: &Target, shared: &Shared) -> [Option<EndpointStats>; 4] {
    let mut recorded: [Option<EndpointStats>; 4] = Default::default();
    let mut conn = Conn::new(target);
    let mut n: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        if index >= shared.live.active.load(Ordering::Relaxed) as usize {
            // Ramped down: give the server its connection back while idle.
            conn.disconnect();
            thread::sleep(IDLE);
            continue;
        }
        if let Some(rate) = shared.rate {
            let slot = shared.ticket.fetch_add(1, Ordering::Relaxed);
            let due = shared.start + Duration::from_secs_f64(slot as f64 / rate);
            if due >= shared.deadline {
                break;
            }
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
        }
        if Instant::now() >= shared.deadline {
            break;
        }
        let (endpoint, request) = shared.requests.nth(index, n);
        n += 1;
        let stats = recorded[endpoint.index()].get_or_insert_with(EndpointStats::default);
        let began = Instant::now();
        let result = conn.send(request);
        let micros = began.elapsed().as_micros() as u64;
        shared.live.requests.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(status) => {
                stats.record(status, micros);
                if !(200..300).contains(&status) {
                    shared.live.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(err) => {
                stats.record_transport_error();
                shared.live.errors.fetch_add(1, Ordering::Relaxed);
                if matches!(err, client::ClientError::Connect(_)) {
                    thread::sleep(CONNECT_BACKOFF);
                }
            }
        }
    }
    recorded
}
