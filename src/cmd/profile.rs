//! `auth-service profile <tokens|health|validate|mixed>`: a scenario profiling run (SPEC 6).
//!
//! Owns the whole run: the embedded Kong simulator (unless `KONG_ADMIN_URL` is set), the
//! server as a child process of this binary with the profiling flags, the readiness wait, the
//! scenario load through `crate::loadgen`, SIGTERM and the exit wait, moving the artifacts to
//! the output dir under scenario names, then the results table and, through `cmd::profiled`,
//! the run's figures in the CPU report's `## Profile Metadata`, the analysis files beside the
//! profiles and the terminal summary.
//! With `--url` it profiles an already running server through its debug API instead. Must
//! not import `server`, `handlers` or `kong`: the server under test is another process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use argh::FromArgs;

use crate::cmd::CmdError;
use crate::cmd::{load, profiled};
use crate::config::Env;
use crate::kong_sim::{self, SimOptions};
use crate::loadgen::child::{Announcing, StderrTail, spawn_announcing};
use crate::loadgen::client::{self, Target};
use crate::loadgen::progress::Progress;
use crate::loadgen::remote::{self, DebugApi, Kind, RemoteError};
use crate::loadgen::scenario::{Endpoint, Mix, Requests};
use crate::loadgen::stages::Stages;
use crate::loadgen::summary;
use crate::loadgen::{self, Live, Outcome, Plan};
use crate::timefmt;
use crate::tools::Stdout;

/// Profile the service under one scenario: start kong-sim (unless KONG_ADMIN_URL is set) and
/// the server with CPU and heap profiling, drive the scenario, stop the server with SIGTERM,
/// store the profiles in the output dir as <scenario>-<YYYYMMDD_HHMMSS>.cpu-prof.md (and
/// .cpu-prof.pb.gz, .cpu-prof.svg, .heap-prof.md, .heap-prof.pb.gz) with the full analysis
/// beside them (.analysis.md, .analysis.json), and print the results and a summary: the SLA
/// verdict per route, throughput, errors, the top findings and the files written.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "profile")]
pub struct Args {
    /// scenario: tokens (/tokens over several consumers), health (/health), validate
    /// (/tokens/validate with real tokens) or mixed (70% tokens, 20% health, 10% validate)
    #[argh(positional)]
    pub scenario: String,
    /// seconds of load, or 30s/2m (default tokens 30, health 10, validate 20, mixed 60)
    #[argh(option)]
    pub duration: Option<String>,
    /// requests per second across all connections (default: as fast as replies come)
    #[argh(option)]
    pub rate: Option<f64>,
    /// concurrent connections, one thread each (default 8)
    #[argh(option, default = "8")]
    pub concurrency: u32,
    /// where the profiles go (default profiles/current)
    #[argh(option, default = "PathBuf::from(\"profiles/current\")")]
    pub output_dir: PathBuf,
    /// do not record a CPU profile
    #[argh(switch)]
    pub no_cpu: bool,
    /// do not record a heap profile
    #[argh(switch)]
    pub no_heap: bool,
    /// profile this already running server through its /debug/profiling API instead
    #[argh(option)]
    pub url: Option<String>,
    /// number of seeded consumers (test-consumer-001...) to use (default 10)
    #[argh(option)]
    pub consumers: Option<usize>,
    /// JSON file [{"id", "username"}, ...] of consumers to use instead (for a real Kong)
    #[argh(option)]
    pub consumer_file: Option<PathBuf>,
}

/// The server gets this long to print its address and turn ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The server gets this long after SIGTERM to drain and write its profiles.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_CONCURRENCY: u32 = 1_000;
const STDERR_TAIL_LINES: usize = 40;

struct Scenario {
    name: &'static str,
    mix: Mix,
    default_seconds: u64,
}

fn scenario(name: &str) -> Option<Scenario> {
    let (name, mix, default_seconds) = match name {
        "tokens" => ("tokens", Mix::Only(Endpoint::Tokens), 30),
        "health" => ("health", Mix::Only(Endpoint::Health), 10),
        "validate" => ("validate", Mix::Only(Endpoint::Validate), 20),
        "mixed" => ("mixed", Mix::Mixed, 60),
        _ => return None,
    };
    Some(Scenario {
        name,
        mix,
        default_seconds,
    })
}

pub fn run(args: Args) -> Result<ExitCode, CmdError> {
    let scenario = scenario(&args.scenario).ok_or_else(|| {
        CmdError::usage(format!(
            "unknown scenario '{}': expected tokens, health, validate or mixed",
            args.scenario
        ))
    })?;
    let duration = match &args.duration {
        Some(text) => load::duration_value("--duration", text)?,
        None => Duration::from_secs(scenario.default_seconds),
    };
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0)
    {
        return Err(CmdError::usage(format!(
            "--rate: {rate} is out of range (requests per second, above 0, at most 1000000)"
        )));
    }
    if !(1..=MAX_CONCURRENCY).contains(&args.concurrency) {
        return Err(CmdError::usage(format!(
            "--concurrency: {} is out of range (1 to {MAX_CONCURRENCY})",
            args.concurrency
        )));
    }
    let env = load::load_env()?;
    let thresholds = load::sla_thresholds(&env)?;
    let consumers = load::consumers(args.consumers, args.consumer_file.as_deref())?;
    let started_unix = timefmt::unix_now() as i64;
    let stamp = timefmt::compact_timestamp(started_unix);
    let load = LoadSpec {
        scenario: &scenario,
        duration,
        rate: args.rate,
        concurrency: args.concurrency,
        consumers: &consumers,
    };

    let (outcome, moved) = match &args.url {
        Some(url) => {
            let target =
                Target::parse(url).map_err(|err| CmdError::usage(format!("--url: {err}")))?;
            remote_run(&args, &target, &load, &stamp)?
        }
        None => local_run(&args, &env, &load, &stamp)?,
    };

    let summary = summary::summarize(&outcome, &thresholds);
    let mut out = Stdout::new();
    let rows = profiled::metadata_rows(
        ("scenario", scenario.name),
        scenario.mix.route(),
        &outcome,
        &summary,
    );
    profiled::record_metadata(&moved, &rows)?;
    profiled::report(
        &format!("profile {}", scenario.name),
        &summary,
        &moved,
        profiled::colour(&env),
        &mut out,
    )?;
    if outcome.successes() == 0 {
        return Err(CmdError::failed(format!(
            "no request of the {} scenario succeeded",
            scenario.name
        )));
    }
    Ok(ExitCode::SUCCESS)
}

struct LoadSpec<'a> {
    scenario: &'a Scenario,
    duration: Duration,
    rate: Option<f64>,
    concurrency: u32,
    consumers: &'a [crate::loadgen::scenario::Consumer],
}

/// Prepares tokens, runs the load with a progress line, returns what it measured.
fn drive(target: &Target, spec: &LoadSpec<'_>) -> Result<Outcome, CmdError> {
    let mix = spec.scenario.mix;
    let tokens = load::prepare_tokens(target, mix, spec.consumers)?;
    let requests = Arc::new(Requests::render(target, mix, spec.consumers, &tokens));
    println!(
        "profile {}: {} connections for {:.1}s{}",
        spec.scenario.name,
        spec.concurrency,
        spec.duration.as_secs_f64(),
        match spec.rate {
            Some(rate) => format!(" at {rate} requests/s"),
            None => String::new(),
        }
    );
    let live = Arc::new(Live::default());
    let progress = Progress::start(Arc::clone(&live), spec.duration, false);
    let outcome = loadgen::run(
        Plan {
            target: target.clone(),
            stages: Stages::constant(spec.concurrency, spec.duration),
            requests,
            rate: spec.rate,
        },
        live,
    );
    progress.finish();
    Ok(outcome)
}

/// Kong simulator + server child + load + SIGTERM + artifact move.
fn local_run(
    args: &Args,
    env: &Env,
    spec: &LoadSpec<'_>,
    stamp: &str,
) -> Result<(Outcome, Vec<PathBuf>), CmdError> {
    let simulator = match env.get("KONG_ADMIN_URL") {
        Some(_) => None,
        None => {
            let options = SimOptions {
                consumers: spec.consumers.len().max(1),
                ..SimOptions::embedded()
            };
            let simulator = kong_sim::start(options).map_err(|err| {
                CmdError::failed_with("cannot start the embedded kong simulator", err)
            })?;
            Some(simulator)
        }
    };
    let kong_url = match (&simulator, env.get("KONG_ADMIN_URL")) {
        (Some(simulator), _) => simulator.url(),
        (None, Some(url)) => url.to_owned(),
        (None, None) => unreachable!("a simulator runs when KONG_ADMIN_URL is unset"),
    };
    let work = std::env::temp_dir().join(format!(
        "auth-service-profile-{}-{stamp}",
        std::process::id()
    ));
    std::fs::create_dir_all(&work)
        .map_err(|err| CmdError::failed_with(format!("cannot create {}", work.display()), err))?;

    let result = serve_and_drive(args, env, spec, stamp, &kong_url, &work);
    if let Some(simulator) = simulator {
        simulator.shutdown();
    }
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn serve_and_drive(
    args: &Args,
    env: &Env,
    spec: &LoadSpec<'_>,
    stamp: &str,
    kong_url: &str,
    work: &Path,
) -> Result<(Outcome, Vec<PathBuf>), CmdError> {
    let mut server = Server::start(args, env, kong_url, work)?;
    let target = Target::parse(&server.url)
        .map_err(|err| CmdError::failed_with("the server printed an unusable address", err))?;
    server.wait_ready(&target)?;
    let outcome = drive(&target, spec);
    // Stop the server whatever the load did, so it never outlives this command.
    let status = server.stop()?;
    let outcome = outcome?;
    if !status.success() {
        return Err(CmdError::failed(format!(
            "the server exited with {status} after SIGTERM; its last output:\n{}",
            server.stderr.text()
        )));
    }
    let moved = move_artifacts(work, &args.output_dir, spec.scenario.name, stamp)?;
    Ok((outcome, moved))
}

/// The server under test: a child process of this binary.
struct Server {
    child: Child,
    url: String,
    stderr: StderrTail,
}

impl Server {
    fn start(args: &Args, env: &Env, kong_url: &str, work: &Path) -> Result<Server, CmdError> {
        let exe = std::env::current_exe()
            .map_err(|err| CmdError::failed_with("cannot find this executable", err))?;
        let dir = work.display().to_string();
        let mut command = Command::new(exe);
        command.args(["serve", "--host", "127.0.0.1", "--port", "0"]);
        if !args.no_cpu {
            command.args([
                "--cpu-prof-md",
                "--cpu-prof",
                "--cpu-prof-flamegraph",
                "--cpu-prof-dir",
                &dir,
            ]);
        }
        if !args.no_heap {
            command.args(["--heap-prof-md", "--heap-prof", "--heap-prof-dir", &dir]);
        }
        command
            .env("KONG_ADMIN_URL", kong_url)
            .env("APP_ENV", "development");
        for (name, example) in [
            ("KONG_JWT_AUTHORITY", "https://auth.example.com"),
            ("KONG_JWT_AUDIENCE", "kong-api"),
            // An SLA-triggered session inside the child would compete with the whole-run
            // profile this command records.
            ("CONTINUOUS_PROFILING_ENABLED", "false"),
        ] {
            if env.get(name).is_none() {
                command.env(name, example);
            }
        }
        let Announcing {
            child,
            address: url_rx,
            stderr_tail: stderr,
        } = spawn_announcing(&mut command, STDERR_TAIL_LINES)
            .map_err(|err| CmdError::failed_with("cannot start the server", err))?;
        let mut server = Server {
            child,
            url: String::new(),
            stderr,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match url_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(url) => {
                    server.url = url;
                    return Ok(server);
                }
                // Stdout closed without an address means the child is exiting: wait for
                // its status rather than the full timeout.
                Err(_) if Instant::now() < deadline => {
                    if let Ok(Some(status)) = server.child.try_wait() {
                        thread::sleep(Duration::from_millis(100));
                        return Err(
                            server.failed(&format!("the server exited with {status} at start-up"))
                        );
                    }
                    thread::sleep(Duration::from_millis(20));
                }
                Err(_) => {
                    let error = server.failed("the server did not print its address within 20s");
                    server.kill();
                    return Err(error);
                }
            }
        }
    }

    /// Polls `/health/ready` until 200.
    fn wait_ready(&mut self, target: &Target) -> Result<(), CmdError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok((200, _)) = client::fetch(target, "GET", "/health/ready", &[]) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failed(&format!("the server exited with {status} before ready")));
            }
            if Instant::now() > deadline {
                let error = self.failed("the server was not ready (/health/ready) within 20s");
                self.kill();
                return Err(error);
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then wait for the exit (the profiles are written on the way out).
    fn stop(&mut self) -> Result<ExitStatus, CmdError> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Ok(status);
        }
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    // Let the stderr reader catch the last lines.
                    thread::sleep(Duration::from_millis(50));
                    return Ok(status);
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                _ => {
                    let error = self.failed("the server did not exit within 60s of SIGTERM");
                    self.kill();
                    return Err(error);
                }
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn failed(&self, message: &str) -> CmdError {
        let tail = self.stderr.text();
        if tail.is_empty() {
            CmdError::failed(message)
        } else {
            CmdError::failed(format!("{message}; its last output:\n{tail}"))
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Debug-API session around the load on an already running server.
fn remote_run(
    args: &Args,
    target: &Target,
    spec: &LoadSpec<'_>,
    stamp: &str,
) -> Result<(Outcome, Vec<PathBuf>), CmdError> {
    let kind = match (args.no_cpu, args.no_heap) {
        (false, false) => Some(Kind::Both),
        (false, true) => Some(Kind::Cpu),
        (true, false) => Some(Kind::Heap),
        (true, true) => None,
    };
    load::check_target(target, args.url.as_deref().unwrap_or_default())?;
    let debug = DebugApi::new(target);
    if let Some(kind) = kind {
        debug.start(kind).map_err(|err| match err {
            RemoteError::NotAvailable => CmdError::failed(format!(
                "{}: {err}; start it with APP_ENV=development (and PROFILING_ENABLED not false)",
                args.url.as_deref().unwrap_or_default()
            )),
            other => CmdError::failed_with("cannot start a profiling session", other),
        })?;
    }
    let outcome = drive(target, spec);
    if kind.is_none() {
        return Ok((outcome?, Vec::new()));
    }
    // Stop even when the load failed, so the session does not run on.
    let stopped = debug
        .stop()
        .map_err(|err| CmdError::failed_with("cannot stop the profiling session", err))?;
    let outcome = outcome?;
    let files = debug
        .session_files(&stopped)
        .map_err(|err| CmdError::failed_with("cannot list the profiling reports", err))?;
    create_dir(&args.output_dir)?;
    let mut moved = Vec::new();
    for file in files {
        let dest = args
            .output_dir
            .join(scenario_name(&file, spec.scenario.name, stamp));
        debug
            .download(&file, &dest)
            .map_err(|err| CmdError::failed_with(format!("cannot download {file}"), err))?;
        moved.push(dest);
    }
    Ok((outcome, moved))
}

fn create_dir(dir: &Path) -> Result<(), CmdError> {
    std::fs::create_dir_all(dir)
        .map_err(|err| CmdError::failed_with(format!("cannot create {}", dir.display()), err))
}

/// The scenario suffix of an artifact name: `CPU.<ts>.<pid>.md` is `cpu-prof.md`, and so on;
/// `None` for a file that is not a profile.
fn artifact_suffix(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let cpu = lower.starts_with("cpu") || lower.contains(".cpu") || lower.contains("cpu-");
    let heap = lower.starts_with("heap") || lower.contains(".heap") || lower.contains("heap-");
    let ext = if lower.ends_with(".pb.gz") {
        "pb.gz"
    } else if lower.ends_with(".md") {
        "md"
    } else if lower.ends_with(".svg") {
        "svg"
    } else {
        return None;
    };
    Some(match (cpu, heap, ext) {
        (true, _, "md") => "cpu-prof.md",
        (true, _, "pb.gz") => "cpu-prof.pb.gz",
        (true, _, "svg") | (false, false, "svg") => "cpu-prof.svg",
        (false, true, "md") => "heap-prof.md",
        (false, true, "pb.gz") => "heap-prof.pb.gz",
        _ => return None,
    })
}

/// `<scenario>-<stamp>.<suffix>`, or the original name behind the prefix when unknown.
fn scenario_name(file: &str, scenario: &str, stamp: &str) -> String {
    match artifact_suffix(file) {
        Some(suffix) => format!("{scenario}-{stamp}.{suffix}"),
        None => format!("{scenario}-{stamp}.{file}"),
    }
}

/// Moves every profile artifact of `from` into `to` under the scenario names.
fn move_artifacts(
    from: &Path,
    to: &Path,
    scenario: &str,
    stamp: &str,
) -> Result<Vec<PathBuf>, CmdError> {
    let entries = std::fs::read_dir(from)
        .map_err(|err| CmdError::failed_with(format!("cannot read {}", from.display()), err))?;
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| artifact_suffix(name).is_some() && !name.contains(".tmp"))
        .collect();
    names.sort();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    create_dir(to)?;
    let mut moved = Vec::new();
    for name in names {
        let dest = to.join(scenario_name(&name, scenario, stamp));
        move_file(&from.join(&name), &dest)?;
        moved.push(dest);
    }
    Ok(moved)
}

/// Rename, or copy and remove when the two paths are on different filesystems.
fn move_file(from: &Path, to: &Path) -> Result<(), CmdError> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    let bytes = std::fs::read(from)
        .map_err(|err| CmdError::failed_with(format!("cannot read {}", from.display()), err))?;
    remote::write_atomically(to, &bytes)
        .map_err(|err| CmdError::failed_with("cannot store a profile", err))?;
    let _ = std::fs::remove_file(from);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_get_scenario_names() {
        let check = |name: &str, expected: Option<&str>| {
            assert_eq!(artifact_suffix(name), expected, "{name}");
        };
        check("CPU.20260101_120000.42.md", Some("cpu-prof.md"));
        check("CPU.20260101_120000.42.pb.gz", Some("cpu-prof.pb.gz"));
        check("CPU.20260101_120000.42.svg", Some("cpu-prof.svg"));
        check("Heap.20260101_120000.42.md", Some("heap-prof.md"));
        check("Heap.20260101_120000.42.pb.gz", Some("heap-prof.pb.gz"));
        check("profile-1-ab.cpu.md", Some("cpu-prof.md"));
        check("notes.txt", None);
        assert_eq!(
            scenario_name("Heap.1.2.md", "tokens", "20260101_120000"),
            "tokens-20260101_120000.heap-prof.md"
        );
    }

    #[test]
    fn scenarios_and_flags_validate() {
        assert_eq!(scenario("mixed").map(|s| s.default_seconds), Some(60));
        assert!(scenario("soak").is_none());
        let args =
            Args::from_args(&["profile"], &["health", "--duration", "2", "--no-cpu"]).unwrap();
        assert!(args.no_cpu && !args.no_heap);
        assert_eq!(args.concurrency, 8);
    }
}
