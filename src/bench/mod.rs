//! The engine of `auth-service bench`: one run that starts the Kong simulator (in process) and
//! the servers under test (child processes), warms them up, and measures alternating A/B
//! windows so every ratio comes from back-to-back windows of the same run (PROFILING.md §5).
//!
//! Owns the order of the run and every process it starts: servers are stopped (SIGTERM) before
//! `run` returns, whatever failed, and the simulator is shut down. All load goes to 127.0.0.1
//! and every window is bounded in time. Must not import `server`, `handlers` or `kong` (the
//! servers are other processes) and must not print results: `cmd/bench.rs` renders and writes.
//!
//! Module map: `stats` (ratios, medians), `wrk` (script, command, output parsing), `child`
//! (a server child process and its `/proc` figures), `table` (targets and the Markdown report),
//! `sink` (the OTLP receiver of the telemetry rows).

pub mod child;
pub mod sink;
pub mod stats;
pub mod table;
pub mod wrk;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use child::{ChildError, Server};
use stats::{median, ratio_spread};
use table::{HotRow, Memory, OverheadRow, Results};

use crate::kong_sim::{self, SimError, SimOptions};
use crate::loadgen::remote::{DebugApi, Kind, RemoteError};
use crate::loadgen::scenario::{self, Consumer, Endpoint, Mix, Requests, ScenarioError};
use crate::loadgen::stages::Stages;
use crate::loadgen::stats::LatencyMs;
use crate::loadgen::{self, Live, Plan};

/// Consumers `/tokens` rotates over (all cache hits after the warm-up).
const CONSUMERS: usize = 10;
/// The concurrency of the overhead comparisons.
const OVERHEAD_CONCURRENCY: u32 = 16;
/// After a profiling session stops (symbolization, files), let the server settle.
const AFTER_STOP_PAUSE: Duration = Duration::from_millis(200);

/// Which load generator drives the windows.
#[derive(Clone, Debug)]
pub enum Tool {
    Wrk(PathBuf),
    Builtin,
}

pub struct Options {
    /// The binary of the main server (normally this executable).
    pub binary: PathBuf,
    /// The same service built with `--features system-alloc`, for the allocator row.
    pub system_alloc_binary: Option<PathBuf>,
    pub tool: Tool,
    /// A/B pairs per hot-path comparison.
    pub pairs: usize,
    /// A/B pairs per overhead comparison: the 1-2 % effects need more pairs than the ratios
    /// of the hot path.
    pub overhead_pairs: usize,
    pub window: Duration,
    pub warmup: Duration,
    /// How long after the last c64 window the settled RSS is read.
    pub settle: Duration,
    pub cold_starts: usize,
    /// Where servers write profiling artifacts and where wrk scripts go; removed by the caller.
    pub work_dir: PathBuf,
}

#[derive(Debug)]
pub enum BenchError {
    Simulator(SimError),
    Server {
        which: &'static str,
        source: ChildError,
    },
    Tokens(ScenarioError),
    Wrk(wrk::WrkError),
    Profiling(RemoteError),
    Script(std::io::Error),
    Sink(std::io::Error),
    NoSuccess(String),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Simulator(_) => f.write_str("cannot start the kong simulator"),
            BenchError::Server { which, .. } => write!(f, "the {which} server failed"),
            BenchError::Tokens(_) => f.write_str("cannot fetch tokens for /tokens/validate"),
            BenchError::Wrk(_) => f.write_str("a wrk window failed"),
            BenchError::Profiling(_) => f.write_str("a profiling session call failed"),
            BenchError::Script(_) => f.write_str("cannot write the wrk script"),
            BenchError::Sink(_) => f.write_str("cannot start the otlp sink"),
            BenchError::NoSuccess(what) => write!(f, "no request succeeded in {what}"),
        }
    }
}

impl std::error::Error for BenchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BenchError::Simulator(err) => Some(err),
            BenchError::Server { source, .. } => Some(source),
            BenchError::Tokens(err) => Some(err),
            BenchError::Wrk(err) => Some(err),
            BenchError::Profiling(err) => Some(err),
            BenchError::Script(err) | BenchError::Sink(err) => Some(err),
            BenchError::NoSuccess(_) => None,
        }
    }
}

/// What one window measured.
#[derive(Clone, Copy, Debug, Default)]
struct Window {
    rps: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    errors: u64,
    /// Server CPU seconds per request over the window.
    cpu_per_request: Option<f64>,
}

/// Runs the whole benchmark; `progress` gets one line per step.
pub fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> Result<Results, BenchError> {
    let simulator = kong_sim::start(SimOptions {
        consumers: CONSUMERS,
        ..SimOptions::embedded()
    })
    .map_err(BenchError::Simulator)?;
    let result = run_with(options, &simulator.url(), progress);
    simulator.shutdown();
    result
}

fn server_env(options: &Options, kong_url: &str, continuous: bool) -> Vec<(&'static str, String)> {
    let dir = options.work_dir.join("profiles").display().to_string();
    vec![
        ("KONG_ADMIN_URL", kong_url.to_owned()),
        ("APP_ENV", "development".to_owned()),
        ("KONG_JWT_AUTHORITY", "https://auth.example.com".to_owned()),
        ("KONG_JWT_AUDIENCE", "kong-api".to_owned()),
        ("CONTINUOUS_PROFILING_ENABLED", continuous.to_string()),
        ("PROFILING_OUTPUT_DIR", dir.clone()),
        ("CONTINUOUS_PROFILING_OUTPUT_DIR", dir),
        // Whatever the caller's environment says: the baseline exports nothing.
        ("TELEMETRY_MODE", "console".to_owned()),
    ]
}

/// `server_env` exporting every span (100 % sampling) and the metrics to `endpoint`.
fn otlp_env(options: &Options, kong_url: &str, endpoint: &str) -> Vec<(&'static str, String)> {
    let mut env = server_env(options, kong_url, false);
    env.retain(|(name, _)| *name != "TELEMETRY_MODE");
    env.extend([
        ("TELEMETRY_MODE", "otlp".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
        ("OTEL_TRACES_SAMPLER", "always_on".to_owned()),
    ]);
    env
}

fn start(
    which: &'static str,
    binary: &Path,
    env: &[(&'static str, String)],
) -> Result<Server, BenchError> {
    Server::start(binary, env).map_err(|source| BenchError::Server { which, source })
}

fn stop(which: &'static str, server: Server) -> Result<(), BenchError> {
    server
        .stop()
        .map_err(|source| BenchError::Server { which, source })
}

fn run_with(
    options: &Options,
    kong_url: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<Results, BenchError> {
    let mut results = Results::default();
    let env_off = server_env(options, kong_url, false);
    let main = start("main", &options.binary, &env_off)?;
    // Idle: started and ready, nothing asked of it yet beyond the readiness probe.
    thread::sleep(Duration::from_millis(200));
    results.memory.idle = main.rss_bytes();

    let consumers = scenario::seeded_consumers(CONSUMERS);
    let tokens = scenario::fetch_tokens(&main.target, &consumers).map_err(BenchError::Tokens)?;
    let driver = Driver::new(options, consumers, tokens)?;
    // Fetching the tokens filled the credential cache; one short window starts the
    // connection threads and touches the rest of the request path.
    progress(&format!(
        "bench: warming up ({:.1} s)",
        options.warmup.as_secs_f64()
    ));
    driver.measure(
        &main,
        Endpoint::Tokens,
        OVERHEAD_CONCURRENCY,
        options.warmup,
    )?;

    for concurrency in [16, 64] {
        progress(&format!(
            "bench: hot path at c{concurrency}: {} pairs of /health/live, /tokens, /tokens/validate, /health",
            options.pairs
        ));
        results.hot.extend(hot_path(
            &driver,
            &main,
            concurrency,
            options.pairs,
            options.window,
        )?);
    }
    results.memory.end_of_load = main.rss_bytes();
    progress(&format!(
        "bench: letting the server settle for {:.0} s",
        options.settle.as_secs_f64()
    ));
    thread::sleep(options.settle);
    results.memory.after_load = main.rss_bytes();
    results.memory.after_load_secs = options.settle.as_secs_f64();
    results.memory.peak_without_session = main.peak_rss_bytes();

    progress(&format!(
        "bench: profiling sessions: {} pairs of off / CPU 99 Hz, then of off / heap",
        options.overhead_pairs
    ));
    results.overhead.extend(sessions(
        &driver,
        &main,
        options.overhead_pairs,
        options.window,
    )?);
    session_memory(&driver, &main, options, &mut results.memory)?;

    progress(&format!(
        "bench: SLA monitor, then allocator wrapper: {} pairs each (alternating servers)",
        options.overhead_pairs
    ));
    results
        .overhead
        .extend(servers(&driver, options, kong_url, &mut results.memory)?);
    results.memory.peak = main.peak_rss_bytes();
    stop("main", main)?;

    progress(&format!("bench: cold start x{}", options.cold_starts));
    for _ in 0..options.cold_starts {
        let server = start("cold-start", &options.binary, &env_off)?;
        results
            .cold_start_ms
            .push(server.start_to_ready.as_secs_f64() * 1000.0);
        stop("cold-start", server)?;
    }
    Ok(results)
}

/// Every route against `/health/live`: per pair one window of each, the order rotating so no
/// route always runs first or last.
fn hot_path(
    driver: &Driver,
    server: &Server,
    concurrency: u32,
    pairs: usize,
    window: Duration,
) -> Result<Vec<HotRow>, BenchError> {
    let order = [
        Endpoint::Live,
        Endpoint::Tokens,
        Endpoint::Validate,
        Endpoint::Health,
    ];
    let mut windows: Vec<Vec<Window>> = vec![Vec::new(); order.len()];
    for pair in 0..pairs {
        for k in 0..order.len() {
            let at = (pair + k) % order.len();
            windows[at].push(driver.measure(server, order[at], concurrency, window)?);
        }
    }
    let live = &windows[0];
    Ok(order[1..]
        .iter()
        .zip(&windows[1..])
        .map(|(endpoint, measured)| HotRow {
            route: endpoint.route(),
            concurrency,
            ratio: ratio_spread(&pair_rps(live, measured)),
            route_rps: median_of(measured, |w| Some(w.rps)),
            live_rps: median_of(live, |w| Some(w.rps)),
            p50_ms: median_of(measured, |w| w.p50_ms),
            p99_ms: median_of(measured, |w| w.p99_ms),
            errors: measured.iter().map(|w| w.errors).sum(),
        })
        .collect())
}

/// Runs `pairs` A/B pairs of windows, swapping the order every other pair (A B, B A, ...) so
/// a drift of the machine during a pair does not always favour the same side.
fn ab_pairs(
    pairs: usize,
    mut a: impl FnMut() -> Result<Window, BenchError>,
    mut b: impl FnMut() -> Result<Window, BenchError>,
) -> Result<(Vec<Window>, Vec<Window>), BenchError> {
    let (mut a_windows, mut b_windows) = (Vec::with_capacity(pairs), Vec::with_capacity(pairs));
    for pair in 0..pairs {
        if pair % 2 == 0 {
            a_windows.push(a()?);
            b_windows.push(b()?);
        } else {
            b_windows.push(b()?);
            a_windows.push(a()?);
        }
    }
    Ok((a_windows, b_windows))
}

/// `/tokens` without a session against with a CPU session, then against with a heap session.
fn sessions(
    driver: &Driver,
    server: &Server,
    pairs: usize,
    window: Duration,
) -> Result<Vec<OverheadRow>, BenchError> {
    let debug = DebugApi::new(&server.target);
    // The first stop pays for symbolization (PROFILING.md §5); keep it out of the windows.
    debug.start(Kind::Cpu).map_err(BenchError::Profiling)?;
    driver.measure(server, Endpoint::Tokens, OVERHEAD_CONCURRENCY, window / 2)?;
    debug.stop().map_err(BenchError::Profiling)?;
    thread::sleep(AFTER_STOP_PAUSE);

    let without = || driver.measure(server, Endpoint::Tokens, OVERHEAD_CONCURRENCY, window);
    let with = |kind: Kind| {
        debug.start(kind).map_err(BenchError::Profiling)?;
        let measured = driver.measure(server, Endpoint::Tokens, OVERHEAD_CONCURRENCY, window);
        // Stop even when the window failed, so no session runs on.
        debug.stop().map_err(BenchError::Profiling)?;
        thread::sleep(AFTER_STOP_PAUSE);
        measured
    };
    let (cpu_off, cpu_on) = ab_pairs(pairs, without, || with(Kind::Cpu))?;
    let (heap_off, heap_on) = ab_pairs(pairs, without, || with(Kind::Heap))?;
    Ok(vec![
        overhead_row(
            "CPU profiling session at 99 Hz (/tokens)",
            &cpu_off,
            &cpu_on,
            Some(2.0),
        ),
        overhead_row(
            "heap profiling session (/tokens)",
            &heap_off,
            &heap_on,
            None,
        ),
    ])
}

/// RSS at the end of a c64 window under a CPU+heap session, and after the session settled.
fn session_memory(
    driver: &Driver,
    server: &Server,
    options: &Options,
    memory: &mut Memory,
) -> Result<(), BenchError> {
    let debug = DebugApi::new(&server.target);
    debug.start(Kind::Both).map_err(BenchError::Profiling)?;
    let measured = driver.measure(server, Endpoint::Tokens, 64, options.window);
    memory.with_session = server.rss_bytes();
    debug.stop().map_err(BenchError::Profiling)?;
    measured?;
    thread::sleep(options.settle);
    memory.after_session = server.rss_bytes();
    Ok(())
}

/// The main server against one with `CONTINUOUS_PROFILING_ENABLED=true`, two exporting OTLP
/// (to a sink, and to a closed port) and, when given, one built with the System allocator:
/// one `/tokens` window on each per pair, rotating.
fn servers(
    driver: &Driver,
    options: &Options,
    kong_url: &str,
    memory: &mut Memory,
) -> Result<Vec<OverheadRow>, BenchError> {
    // Fresh servers only: the main one has been through profiling sessions by now, and a
    // process with that history against a fresh one measures the history, not the feature.
    let plain = start(
        "plain",
        &options.binary,
        &server_env(options, kong_url, false),
    )?;
    let monitored = start(
        "continuous-profiling",
        &options.binary,
        &server_env(options, kong_url, true),
    )?;
    let sink = sink::Sink::start().map_err(BenchError::Sink)?;
    let otlp_up = start(
        "otlp",
        &options.binary,
        &otlp_env(options, kong_url, &sink.url()),
    )?;
    // A port that was just free: connections are refused, as by a collector that is down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(BenchError::Sink)?;
    let otlp_down = start(
        "otlp-down",
        &options.binary,
        &otlp_env(options, kong_url, &format!("http://{closed}")),
    )?;
    let system = match &options.system_alloc_binary {
        Some(binary) => Some(start(
            "system-alloc",
            binary,
            &server_env(options, kong_url, false),
        )?),
        None => None,
    };
    for server in [&plain, &monitored, &otlp_up, &otlp_down]
        .into_iter()
        .chain(system.as_ref())
    {
        // Fills this server's credential cache, so its windows are all cache hits too.
        scenario::fetch_tokens(&server.target, &driver.consumers).map_err(BenchError::Tokens)?;
        // And starts its connection threads, as the warm-up did for the main server.
        driver.measure(
            server,
            Endpoint::Tokens,
            OVERHEAD_CONCURRENCY,
            options.warmup,
        )?;
    }
    let tokens = |server: &Server| {
        driver.measure(
            server,
            Endpoint::Tokens,
            OVERHEAD_CONCURRENCY,
            options.window,
        )
    };
    let pairs = options.overhead_pairs;
    let (off, on) = ab_pairs(pairs, || tokens(&plain), || tokens(&monitored))?;
    let mut rows = vec![overhead_row(
        "SLA monitor, CONTINUOUS_PROFILING_ENABLED=true (/tokens)",
        &off,
        &on,
        Some(2.0),
    )];
    let (off, on) = ab_pairs(pairs, || tokens(&plain), || tokens(&otlp_up))?;
    memory.with_otlp = otlp_up.rss_bytes();
    rows.push(overhead_row(
        "OpenTelemetry OTLP export, 100 % sampling (/tokens)",
        &off,
        &on,
        Some(5.0),
    ));
    let (off, on) = ab_pairs(pairs, || tokens(&plain), || tokens(&otlp_down))?;
    rows.push(overhead_row(
        "OpenTelemetry OTLP export, collector down (/tokens)",
        &off,
        &on,
        Some(5.0),
    ));
    let alloc_name = "allocator wrapper vs System allocator (/tokens)";
    rows.push(match &system {
        // Ours is "with", the plain System allocator "without".
        Some(system) => {
            let (system_windows, ours) = ab_pairs(pairs, || tokens(system), || tokens(&plain))?;
            overhead_row(alloc_name, &system_windows, &ours, Some(1.0))
        }
        None => OverheadRow {
            name: alloc_name,
            target_percent: Some(1.0),
            skipped: Some("no system-alloc binary".to_owned()),
            ..OverheadRow::default()
        },
    });
    stop("plain", plain)?;
    stop("continuous-profiling", monitored)?;
    stop("otlp", otlp_up)?;
    stop("otlp-down", otlp_down)?;
    drop(sink);
    if let Some(system) = system {
        stop("system-alloc", system)?;
    }
    Ok(rows)
}

fn overhead_row(
    name: &'static str,
    without: &[Window],
    with: &[Window],
    target_percent: Option<f64>,
) -> OverheadRow {
    let cpu_ratios: Vec<f64> = without
        .iter()
        .zip(with)
        .filter_map(|(a, b)| Some(b.cpu_per_request? / a.cpu_per_request.filter(|v| *v > 0.0)?))
        .collect();
    OverheadRow {
        name,
        ratio: ratio_spread(&pair_rps(without, with)),
        with_rps: median_of(with, |w| Some(w.rps)),
        without_rps: median_of(without, |w| Some(w.rps)),
        cpu_per_request_ratio: median(&cpu_ratios),
        target_percent,
        skipped: None,
        errors: with.iter().chain(without).map(|w| w.errors).sum(),
    }
}

fn pair_rps(a: &[Window], b: &[Window]) -> Vec<(f64, f64)> {
    a.iter().zip(b).map(|(a, b)| (a.rps, b.rps)).collect()
}

fn median_of(windows: &[Window], field: impl Fn(&Window) -> Option<f64>) -> Option<f64> {
    let values: Vec<f64> = windows.iter().filter_map(field).collect();
    median(&values)
}

/// Sends one route's load for one window with the chosen tool.
struct Driver {
    tool: Tool,
    consumers: Vec<Consumer>,
    tokens: Vec<String>,
    /// wrk scripts per endpoint, in `Endpoint::ALL` order.
    scripts: Vec<PathBuf>,
}

impl Driver {
    fn new(
        options: &Options,
        consumers: Vec<Consumer>,
        tokens: Vec<String>,
    ) -> Result<Driver, BenchError> {
        let mut scripts = Vec::new();
        if let Tool::Wrk(_) = options.tool {
            std::fs::create_dir_all(&options.work_dir).map_err(BenchError::Script)?;
            for endpoint in Endpoint::ALL {
                let path = options
                    .work_dir
                    .join(format!("{}.lua", Mix::Only(endpoint).name()));
                let requests = wrk_requests(endpoint, &consumers, &tokens);
                std::fs::write(&path, wrk::script(&requests)).map_err(BenchError::Script)?;
                scripts.push(path);
            }
        }
        Ok(Driver {
            tool: options.tool.clone(),
            consumers,
            tokens,
            scripts,
        })
    }

    fn measure(
        &self,
        server: &Server,
        endpoint: Endpoint,
        concurrency: u32,
        window: Duration,
    ) -> Result<Window, BenchError> {
        let cpu_before = server.cpu_seconds();
        let (mut measured, requests) = match &self.tool {
            Tool::Wrk(wrk_path) => {
                // wrk takes whole seconds.
                let seconds = window.as_secs_f64().ceil().max(1.0) as u64;
                let script = &self.scripts[endpoint.index()];
                let out = wrk::run(wrk_path, script, &server.url, concurrency, seconds)
                    .map_err(BenchError::Wrk)?;
                let window = Window {
                    rps: out.rps,
                    p50_ms: out.p50_ms,
                    p99_ms: out.p99_ms,
                    errors: out.errors,
                    cpu_per_request: None,
                };
                (window, out.requests)
            }
            Tool::Builtin => self.builtin(server, endpoint, concurrency, window),
        };
        if requests == 0 || measured.errors >= requests {
            return Err(BenchError::NoSuccess(format!(
                "a {} window on {}",
                endpoint.route(),
                server.url
            )));
        }
        if let (Some(before), Some(after)) = (cpu_before, server.cpu_seconds()) {
            measured.cpu_per_request = Some((after - before) / requests as f64);
        }
        Ok(measured)
    }

    fn builtin(
        &self,
        server: &Server,
        endpoint: Endpoint,
        concurrency: u32,
        window: Duration,
    ) -> (Window, u64) {
        let mix = Mix::Only(endpoint);
        let requests = Requests::render(&server.target, mix, &self.consumers, &self.tokens);
        let outcome = loadgen::run(
            Plan {
                target: server.target.clone(),
                stages: Stages::constant(concurrency, window),
                requests: Arc::new(requests),
                rate: None,
            },
            Arc::new(Live::default()),
        );
        let Some((_, stats)) = outcome.endpoints.first() else {
            return (Window::default(), 0);
        };
        let latency = LatencyMs::of(&stats.latency);
        let elapsed = outcome.elapsed.as_secs_f64().max(1e-9);
        let window = Window {
            rps: stats.requests() as f64 / elapsed,
            p50_ms: Some(latency.p50),
            p99_ms: Some(latency.p99),
            errors: stats.errors(),
            cpu_per_request: None,
        };
        (window, stats.requests())
    }
}

/// The rotation a wrk script sends for one route: one request per consumer for the consumer
/// routes (with that consumer's token for validate), one request otherwise.
fn wrk_requests(
    endpoint: Endpoint,
    consumers: &[Consumer],
    tokens: &[String],
) -> Vec<wrk::Request> {
    match endpoint {
        Endpoint::Tokens | Endpoint::Validate => consumers
            .iter()
            .enumerate()
            .map(|(i, consumer)| {
                let mut headers = vec![
                    ("X-Consumer-ID".to_owned(), consumer.id.clone()),
                    ("X-Consumer-Username".to_owned(), consumer.username.clone()),
                ];
                if endpoint == Endpoint::Validate
                    && let Some(token) = tokens.get(i)
                {
                    headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
                }
                wrk::Request {
                    path: endpoint.route().to_owned(),
                    headers,
                }
            })
            .collect(),
        Endpoint::Health | Endpoint::Live => vec![wrk::Request {
            path: endpoint.route().to_owned(),
            headers: Vec::new(),
        }],
    }
}

/// wrk's version line when `wrk` runs from `PATH` (Command searches it, so no env read here).
pub fn wrk_version() -> Option<String> {
    // `wrk --version` prints its banner and exits 1; only a failed spawn means "not installed".
    let output = std::process::Command::new("wrk")
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.lines().next().unwrap_or("wrk").trim();
    // "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer"
    Some(first.split(" Copyright").next().unwrap_or(first).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_rotation_carries_consumer_headers_and_tokens() {
        let consumers = scenario::seeded_consumers(2);
        let tokens = vec!["t1".to_owned(), "t2".to_owned()];
        let validate = wrk_requests(Endpoint::Validate, &consumers, &tokens);
        assert_eq!(validate.len(), 2);
        assert_eq!(validate[1].path, "/tokens/validate");
        assert_eq!(
            validate[1].headers,
            vec![
                (
                    "X-Consumer-ID".to_owned(),
                    "00000000-0000-4000-8000-000000000002".to_owned()
                ),
                (
                    "X-Consumer-Username".to_owned(),
                    "test-consumer-002".to_owned()
                ),
                ("Authorization".to_owned(), "Bearer t2".to_owned()),
            ]
        );
        assert_eq!(
            wrk_requests(Endpoint::Tokens, &consumers, &tokens)[0]
                .headers
                .len(),
            2
        );
        let live = wrk_requests(Endpoint::Live, &consumers, &tokens);
        assert_eq!((live.len(), live[0].path.as_str()), (1, "/health/live"));
    }
}
