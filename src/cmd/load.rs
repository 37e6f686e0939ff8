//! `auth-service load <smoke|load|stress|spike|soak>`: the k6-style load test (SPEC 7).
//!
//! Owns the flags and env vars of a load test, their validation (exit 2 naming the flag or
//! variable), the optional profiling of the target around the run, printing the results
//! table, writing the JSON summary atomically under the results dir, and the threshold
//! verdict (exit 3). A target that does not accept connections fails the run at once (exit 1)
//! with how to start one; `load` never starts a server itself. After a profiled run the
//! analysis summary is printed too (`cmd::profiled`). The engine itself is `crate::loadgen`;
//! this file must not send load requests itself. Also holds the small helpers `profile`
//! shares (consumers, thresholds, the target check).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use argh::FromArgs;
use serde_json::json;

use crate::cmd::{CmdError, profiled};
use crate::config::{self, Env, SlaThreshold};
use crate::loadgen::client::{self, Target};
use crate::loadgen::progress::Progress;
use crate::loadgen::remote::{self, DebugApi, Kind, RemoteError};
use crate::loadgen::scenario::{self, Consumer, Mix, Requests};
use crate::loadgen::stages::{self, Stages};
use crate::loadgen::summary;
use crate::loadgen::{self, Live, Plan};
use crate::timefmt;
use crate::tools::Stdout;

/// Run a k6-style load test against a running service: smoke (K6_SMOKE_VUS, default 3, for
/// K6_SMOKE_DURATION, default 30s), load (ramp to 50 VUs over 30s, hold 60s, down over 15s),
/// stress (50, 100, 200 VUs in steps, 200s), spike (10 VUs, 200 for 20s, back to 10; 47s),
/// soak (30 VUs for 10m). Thresholds: p95/p99 per route from SLA_THRESHOLDS and an error rate
/// under 1%; exit 3 when one is crossed.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "load")]
pub struct Args {
    /// test profile: smoke, load, stress, spike or soak
    #[argh(positional, arg_name = "profile")]
    pub test_profile: String,
    /// endpoints to call: health, tokens, validate, mixed (70% tokens, 20% health, 10%
    /// validate), all (= mixed) or live (/health/live); default health for smoke, else mixed
    #[argh(option)]
    pub endpoint: Option<String>,
    /// peak number of virtual users (the stages keep their shape)
    #[argh(option)]
    pub vus: Option<u32>,
    /// total length, e.g. 30s, 2m, 1h or plain seconds (the stages keep their proportions)
    #[argh(option)]
    pub duration: Option<String>,
    /// base URL of the service (default BASE_URL or http://127.0.0.1:3000)
    #[argh(option)]
    pub url: Option<String>,
    /// profile the target during the test through its /debug/profiling API (same as
    /// ENABLE_PROFILING=true); artifacts go to <results-dir>/profiling
    #[argh(switch)]
    pub profile: bool,
    /// number of kong-sim seeded consumers to spread /tokens over (default 10)
    #[argh(option)]
    pub consumers: Option<usize>,
    /// JSON file [{"id", "username"}, ...] of consumers to use instead (for a real Kong)
    #[argh(option)]
    pub consumer_file: Option<PathBuf>,
    /// where the JSON summary goes (default test/results)
    #[argh(option, default = "PathBuf::from(\"test/results\")")]
    pub results_dir: PathBuf,
}

const MAX_VUS: u32 = 5_000;
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
const MAX_CONSUMERS: usize = 100_000;
const DEFAULT_URL: &str = "http://127.0.0.1:3000";

pub fn run(args: Args) -> Result<ExitCode, CmdError> {
    let env = load_env()?;
    let stages = stages_for(&args, &env)?;
    let mix = match &args.endpoint {
        Some(text) => Mix::parse(text).ok_or_else(|| {
            CmdError::usage(format!(
                "--endpoint: '{text}' is not one of health, tokens, validate, mixed, all, live"
            ))
        })?,
        None if args.test_profile == "smoke" => Mix::parse("health").expect("known mix"),
        None => Mix::Mixed,
    };
    let (url, url_source) = match (&args.url, env.get("BASE_URL")) {
        (Some(url), _) => (url.clone(), "--url"),
        (None, Some(url)) => (url.to_owned(), "BASE_URL"),
        (None, None) => (DEFAULT_URL.to_owned(), "--url"),
    };
    let target =
        Target::parse(&url).map_err(|err| CmdError::usage(format!("{url_source}: {err}")))?;
    let thresholds = sla_thresholds(&env)?;
    let profiling = args.profile || env_flag(&env, "ENABLE_PROFILING")?;
    let consumers = consumers(args.consumers, args.consumer_file.as_deref())?;

    check_target(&target, &url)?;
    let tokens = prepare_tokens(&target, mix, &consumers)?;
    let requests = Arc::new(Requests::render(&target, mix, &consumers, &tokens));
    let started_unix = timefmt::unix_now() as i64;
    let total = stages.total();
    println!(
        "load {}: peak {} VUs for {:.1}s, endpoint {}, target {url}",
        args.test_profile,
        stages.peak(),
        total.as_secs_f64(),
        mix.name()
    );

    let debug = DebugApi::new(&target);
    let session = if profiling {
        start_profiling(&debug)
    } else {
        None
    };

    let live = Arc::new(Live::default());
    let progress = Progress::start(Arc::clone(&live), total, true);
    let outcome = loadgen::run(
        Plan {
            target: target.clone(),
            stages: stages.clone(),
            requests,
            rate: None,
        },
        live,
    );
    progress.finish();

    let artifacts = match session {
        Some(()) => collect_profiling(&debug, &args.results_dir.join("profiling")),
        None => Vec::new(),
    };

    let summary = summary::summarize(&outcome, &thresholds);
    print!("\n{}", summary::render(&summary));
    if !artifacts.is_empty() {
        summarize_profiles(&args, &env, mix, &outcome, &summary, &artifacts);
    }
    let report = json!({
        "tool": "auth-service load",
        "profile": args.test_profile,
        "endpoint": mix.name(),
        "url": url,
        "started_at": timefmt::iso8601(started_unix),
        "stages": {
            "start_vus": stages.start,
            "stages": stages.stages.iter().map(|s| json!({
                "duration_seconds": s.duration.as_secs_f64(),
                "target": s.target,
            })).collect::<Vec<_>>(),
        },
        "consumers": consumers.len(),
        "thresholds": {
            "sla": thresholds.iter().map(|t| json!({
                "route": t.route, "p95_ms": t.p95_ms, "p99_ms": t.p99_ms,
            })).collect::<Vec<_>>(),
            "max_error_rate": summary::MAX_ERROR_RATE,
        },
        "summary": summary,
        "profiling": {
            "enabled": profiling,
            "artifacts": artifacts.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        },
    });
    let path = write_summary(&args.results_dir, &args.test_profile, started_unix, &report)?;
    println!("summary written to {}", path.display());
    if summary.passed {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CmdError::thresholds(format!(
            "thresholds crossed: {}",
            summary.failures.join("; ")
        )))
    }
}

/// The stages of the named profile with the env and flag overrides applied.
fn stages_for(args: &Args, env: &Env) -> Result<Stages, CmdError> {
    let duration = match &args.duration {
        Some(text) => Some(duration_value("--duration", text)?),
        None => None,
    };
    let vus = match args.vus {
        Some(vus) => Some(vus_value("--vus", vus)?),
        None => None,
    };
    let base = match args.test_profile.as_str() {
        "smoke" => {
            let vus = match env.get("K6_SMOKE_VUS") {
                Some(text) => vus_value(
                    "K6_SMOKE_VUS",
                    text.parse().map_err(|_| {
                        CmdError::usage(format!(
                            "K6_SMOKE_VUS: '{text}' is not a number of virtual users (1 to {MAX_VUS})"
                        ))
                    })?,
                )?,
                None => 3,
            };
            let length = match env.get("K6_SMOKE_DURATION") {
                Some(text) => duration_value("K6_SMOKE_DURATION", text)?,
                None => Duration::from_secs(30),
            };
            Stages::constant(vus, length)
        }
        "load" => Stages::load(),
        "stress" => Stages::stress(),
        "spike" => Stages::spike(),
        "soak" => Stages::soak(),
        other => {
            return Err(CmdError::usage(format!(
                "unknown load profile '{other}': expected smoke, load, stress, spike or soak"
            )));
        }
    };
    let scaled = match vus {
        Some(vus) => base.with_peak(vus),
        None => base,
    };
    Ok(match duration {
        Some(total) => scaled.with_total(total),
        None => scaled,
    })
}

fn vus_value(name: &str, vus: u32) -> Result<u32, CmdError> {
    if (1..=MAX_VUS).contains(&vus) {
        Ok(vus)
    } else {
        Err(CmdError::usage(format!(
            "{name}: {vus} virtual users is out of range (1 to {MAX_VUS})"
        )))
    }
}

/// A duration flag or variable: `30s`, `2m`, `1h` or plain seconds, up to 24 h.
pub fn duration_value(name: &str, text: &str) -> Result<Duration, CmdError> {
    stages::parse_duration(text)
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| {
            CmdError::usage(format!(
                "{name}: '{text}' is not a duration (e.g. 30s, 2m, 1h or plain seconds; at most 24h)"
            ))
        })
}

/// The environment (with `.env` of the working directory), as `serve` reads it.
pub fn load_env() -> Result<Env, CmdError> {
    let cwd = std::env::current_dir()
        .map_err(|err| CmdError::failed_with("cannot read the working directory", err))?;
    Env::load(&cwd).map_err(|err| CmdError::usage(err.to_string()))
}

/// `SLA_THRESHOLDS` (default `DEFAULT_SLA_THRESHOLDS`), validated like `serve` does.
pub fn sla_thresholds(env: &Env) -> Result<Vec<SlaThreshold>, CmdError> {
    let text = env
        .get("SLA_THRESHOLDS")
        .unwrap_or(config::DEFAULT_SLA_THRESHOLDS);
    config::parse_sla_thresholds(text).map_err(|accepted| {
        CmdError::usage(format!(
            "SLA_THRESHOLDS: invalid value '{text}': expected {accepted}"
        ))
    })
}

fn env_flag(env: &Env, name: &str) -> Result<bool, CmdError> {
    match env.get(name).map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no" | "off") => Ok(false),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some(_) => Err(CmdError::usage(format!(
            "{name}: '{}' is not a boolean (true or false)",
            env.get(name).unwrap_or_default()
        ))),
    }
}

/// The consumers a run spreads over: `--consumer-file`, else `--consumers` seeded ones.
pub fn consumers(count: Option<usize>, file: Option<&Path>) -> Result<Vec<Consumer>, CmdError> {
    if let (Some(_), Some(_)) = (count, file) {
        return Err(CmdError::usage(
            "--consumers and --consumer-file exclude each other",
        ));
    }
    if let Some(file) = file {
        return scenario::load_consumers(file).map_err(|err| CmdError::usage(err.to_string()));
    }
    let count = count.unwrap_or(10);
    if !(1..=MAX_CONSUMERS).contains(&count) {
        return Err(CmdError::usage(format!(
            "--consumers: {count} is out of range (1 to {MAX_CONSUMERS})"
        )));
    }
    Ok(scenario::seeded_consumers(count))
}

/// Fails at once (exit 1) when nothing listens at the target, saying how to start a server;
/// `load` does not start one itself, so what it measures is always the server named.
pub fn check_target(target: &Target, url: &str) -> Result<(), CmdError> {
    client::reachable(target).map_err(|err| {
        CmdError::failed_with(
            format!(
                "no service answers at {url}; start one with `./run.sh serve --kong-sim` \
                 (or pass --url / BASE_URL of a running one)"
            ),
            err,
        )
    })
}

/// One real token per consumer when the mix validates tokens.
pub fn prepare_tokens(
    target: &Target,
    mix: Mix,
    consumers: &[Consumer],
) -> Result<Vec<String>, CmdError> {
    if !mix.uses(scenario::Endpoint::Validate) {
        return Ok(Vec::new());
    }
    scenario::fetch_tokens(target, consumers)
        .map_err(|err| CmdError::failed_with("cannot prepare tokens for /tokens/validate", err))
}

/// Starts a `both` session; any failure is a warning and the test runs unprofiled.
fn start_profiling(debug: &DebugApi) -> Option<()> {
    match debug.start(Kind::Both) {
        Ok(session) => {
            println!(
                "profiling session {} started on the target",
                session.as_deref().unwrap_or("(unnamed)")
            );
            Some(())
        }
        Err(RemoteError::NotAvailable) => {
            eprintln!(
                "warning: profiling requested but the target answers 404 for /debug/profiling \
                 (production, or PROFILING_ENABLED=false); running without profiling"
            );
            None
        }
        Err(err) => {
            eprintln!(
                "warning: cannot start profiling ({}); running without profiling",
                error_chain(&err)
            );
            None
        }
    }
}

/// The run's p95/p99 (per route) into the downloaded CPU profile's metadata, then the analysis
/// files beside the artifacts and the terminal summary; failures are warnings, the load
/// verdict stands.
fn summarize_profiles(
    args: &Args,
    env: &Env,
    mix: Mix,
    outcome: &loadgen::Outcome,
    summary: &summary::Summary,
    artifacts: &[PathBuf],
) {
    let rows = profiled::metadata_rows(
        ("load_profile", &args.test_profile),
        mix.route(),
        outcome,
        summary,
    );
    let title = format!("load {}", args.test_profile);
    let result = profiled::record_metadata(artifacts, &rows).and_then(|()| {
        profiled::report(
            &title,
            summary,
            artifacts,
            profiled::colour(env),
            &mut Stdout::new(),
        )
    });
    if let Err(err) = result {
        eprintln!("warning: cannot analyze the profiles: {}", err.chain());
    }
}

/// Stops the session and downloads its artifacts into `dir`; failures are warnings.
fn collect_profiling(debug: &DebugApi, dir: &Path) -> Vec<PathBuf> {
    let fetched = debug.stop().and_then(|stopped| {
        let files = debug.session_files(&stopped)?;
        std::fs::create_dir_all(dir).map_err(|source| RemoteError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut saved = Vec::new();
        for file in files {
            let dest = dir.join(&file);
            debug.download(&file, &dest)?;
            saved.push(dest);
        }
        Ok(saved)
    });
    match fetched {
        Ok(saved) => {
            for path in &saved {
                println!("profile artifact: {}", path.display());
            }
            if saved.is_empty() {
                eprintln!("warning: the profiling session produced no artifacts");
            }
            saved
        }
        Err(err) => {
            eprintln!(
                "warning: cannot collect the profiling artifacts: {}",
                error_chain(&err)
            );
            Vec::new()
        }
    }
}

pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// `<dir>/load-<profile>-<YYYYMMDD_HHMMSS>.json`, written through a temp file and a rename.
fn write_summary(
    dir: &Path,
    profile: &str,
    started_unix: i64,
    report: &serde_json::Value,
) -> Result<PathBuf, CmdError> {
    std::fs::create_dir_all(dir)
        .map_err(|err| CmdError::failed_with(format!("cannot create {}", dir.display()), err))?;
    let stamp = timefmt::compact_timestamp(started_unix);
    let mut path = dir.join(format!("load-{profile}-{stamp}.json"));
    let mut n = 2;
    while path.exists() {
        path = dir.join(format!("load-{profile}-{stamp}-{n}.json"));
        n += 1;
    }
    let text = serde_json::to_string_pretty(report).expect("summary serializes") + "\n";
    remote::write_atomically(&path, text.as_bytes())
        .map_err(|err| CmdError::failed_with("cannot write the JSON summary", err))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::from_args(&["load"], args).expect("parses")
    }

    #[test]
    fn stages_follow_flags_and_env() {
        let env = Env::from_pairs([("K6_SMOKE_VUS", "2"), ("K6_SMOKE_DURATION", "2s")]);
        let smoke = stages_for(&parse(&["smoke"]), &env).unwrap();
        assert_eq!((smoke.peak(), smoke.total()), (2, Duration::from_secs(2)));
        let smoke = stages_for(&parse(&["smoke", "--vus", "5", "--duration", "1m"]), &env).unwrap();
        assert_eq!((smoke.peak(), smoke.total()), (5, Duration::from_secs(60)));
        let load = stages_for(&parse(&["load", "--duration", "21"]), &Env::default()).unwrap();
        assert_eq!((load.peak(), load.total()), (50, Duration::from_secs(21)));
    }

    #[test]
    fn bad_values_name_their_source() {
        let check = |args: &[&str], env: &[(&str, &str)], needle: &str| {
            let err = stages_for(&parse(args), &Env::from_pairs(env.iter().copied())).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(
                err.message.contains(needle),
                "{} lacks {needle}",
                err.message
            );
        };
        check(&["smoke", "--vus", "0"], &[], "--vus");
        check(&["smoke", "--duration", "soon"], &[], "--duration");
        check(&["smoke"], &[("K6_SMOKE_VUS", "many")], "K6_SMOKE_VUS");
        check(
            &["smoke"],
            &[("K6_SMOKE_DURATION", "0")],
            "K6_SMOKE_DURATION",
        );
        check(&["huge"], &[], "smoke, load, stress, spike or soak");
        let err = sla_thresholds(&Env::from_pairs([("SLA_THRESHOLDS", "/x=5")])).unwrap_err();
        assert!(err.message.starts_with("SLA_THRESHOLDS"));
        let err = env_flag(
            &Env::from_pairs([("ENABLE_PROFILING", "maybe")]),
            "ENABLE_PROFILING",
        );
        assert!(err.unwrap_err().message.starts_with("ENABLE_PROFILING"));
        let err = consumers(Some(0), None).unwrap_err();
        assert!(err.message.starts_with("--consumers"));
    }
}
