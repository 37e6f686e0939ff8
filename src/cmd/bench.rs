//! `auth-service bench`: hot-path efficiency, profiling overhead, the allocator wrapper,
//! memory and cold start, measured in one run with alternating A/B windows (issue: speed and
//! memory are features).
//!
//! Owns the flags, the choice of load generator, the header of the report (date, commit,
//! machine) and the atomic write of `test/results/bench-<YYYYMMDD_HHMMSS>.md`. The run itself
//! is `crate::bench`. Must not import `server`, `handlers` or `kong`: the servers it measures
//! are child processes.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use argh::FromArgs;

use crate::bench::{self, Options, Tool, table};
use crate::cmd::CmdError;
use crate::loadgen::remote;
use crate::timefmt;
use crate::tools::Stdout;

/// Benchmark the service on this machine: /tokens, /tokens/validate and /health against
/// /health/live at c16 and c64, profiling and SLA-monitor overhead, the allocator wrapper
/// against the System allocator, RSS and cold start. Ratios come from alternating windows of
/// one run (median and min–max of the per-pair ratios). Prints a Markdown table and writes it
/// to <results-dir>/bench-<YYYYMMDD_HHMMSS>.md.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "bench")]
pub struct Args {
    /// short run: 3 pairs of 1 s windows and shorter pauses (under a minute), not 5 of 3 s
    #[argh(switch)]
    pub quick: bool,
    /// load generator: wrk (default when installed) or builtin (our loadgen)
    #[argh(option)]
    pub tool: Option<String>,
    /// where the report goes (default test/results)
    #[argh(option, default = "PathBuf::from(\"test/results\")")]
    pub results_dir: PathBuf,
    /// the service built with --features system-alloc (run.sh builds it); without it the
    /// allocator row is skipped
    #[argh(option)]
    pub system_alloc_binary: Option<PathBuf>,
    /// number of A/B pairs per hot-path comparison (default 5, --quick 3)
    #[argh(option)]
    pub pairs: Option<usize>,
    /// number of A/B pairs per overhead comparison (default 8, --quick 2)
    #[argh(option)]
    pub overhead_pairs: Option<usize>,
    /// seconds per window (default 2, --quick 1; wrk rounds up to whole seconds)
    #[argh(option)]
    pub window: Option<f64>,
}

pub fn run(args: Args) -> Result<ExitCode, CmdError> {
    let began = Instant::now();
    let pairs = args.pairs.unwrap_or(if args.quick { 3 } else { 5 });
    if !(1..=50).contains(&pairs) {
        return Err(CmdError::usage(format!(
            "--pairs: {pairs} is out of range (1 to 50)"
        )));
    }
    let overhead_pairs = args
        .overhead_pairs
        .unwrap_or(if args.quick { 2 } else { 8 });
    if !(1..=50).contains(&overhead_pairs) {
        return Err(CmdError::usage(format!(
            "--overhead-pairs: {overhead_pairs} is out of range (1 to 50)"
        )));
    }
    let window = args.window.unwrap_or(if args.quick { 1.0 } else { 2.0 });
    if !(window.is_finite() && (0.1..=60.0).contains(&window)) {
        return Err(CmdError::usage(format!(
            "--window: {window} is out of range (0.1 to 60 seconds)"
        )));
    }
    let wrk = bench::wrk_version();
    let (tool, tool_text) = match (args.tool.as_deref(), wrk) {
        (None | Some("wrk"), Some(version)) => (
            Tool::Wrk(PathBuf::from("wrk")),
            format!("{version}, 2 threads, a Lua script rotating the requests"),
        ),
        (Some("wrk"), None) => {
            return Err(CmdError::usage(
                "--tool wrk: wrk is not installed (apt-get install wrk), or use --tool builtin",
            ));
        }
        (None | Some("builtin"), _) => (
            Tool::Builtin,
            "builtin loadgen (one keep-alive connection and thread per user)".to_owned(),
        ),
        (Some(other), _) => {
            return Err(CmdError::usage(format!(
                "--tool: unknown tool '{other}': expected wrk or builtin"
            )));
        }
    };
    if let Some(binary) = &args.system_alloc_binary
        && !binary.is_file()
    {
        return Err(CmdError::usage(format!(
            "--system-alloc-binary: {} is not a file (build it with cargo build --release \
             --features system-alloc --target-dir target/system-alloc)",
            binary.display()
        )));
    }
    let binary = std::env::current_exe()
        .map_err(|err| CmdError::failed_with("cannot find this executable", err))?;
    let started_unix = timefmt::unix_now() as i64;
    let stamp = timefmt::compact_timestamp(started_unix);
    let work_dir =
        std::env::temp_dir().join(format!("auth-service-bench-{}-{stamp}", std::process::id()));
    let window = Duration::from_secs_f64(window);
    let options = Options {
        binary,
        system_alloc_binary: args.system_alloc_binary.clone(),
        tool,
        pairs,
        overhead_pairs,
        window,
        warmup: if args.quick {
            window / 2
        } else {
            window.min(Duration::from_secs(2))
        },
        settle: Duration::from_secs(if args.quick { 2 } else { 10 }),
        cold_starts: if args.quick { 3 } else { 10 },
        work_dir: work_dir.clone(),
    };
    eprintln!("bench: load generator: {tool_text}");
    if args.system_alloc_binary.is_none() {
        eprintln!("bench: no --system-alloc-binary: the allocator row is skipped");
    }
    let load_before = load_average();
    let outcome = bench::run(&options, &mut |line| eprintln!("{line}"));
    let _ = std::fs::remove_dir_all(&work_dir);
    let mut results =
        outcome.map_err(|err| CmdError::failed_with("the benchmark did not finish", err))?;
    results.meta = table::Meta {
        date: timefmt::iso8601(started_unix),
        commit: git_commit(),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model: cpu_model(),
        load_before,
        load_after: load_average(),
        tool: tool_text,
        pairs,
        overhead_pairs,
        window_secs: window.as_secs_f64(),
        elapsed_secs: began.elapsed().as_secs_f64(),
        quick: args.quick,
    };
    let report = table::render(&results);
    let path = args.results_dir.join(format!("bench-{stamp}.md"));
    std::fs::create_dir_all(&args.results_dir).map_err(|err| {
        CmdError::failed_with(format!("cannot create {}", args.results_dir.display()), err)
    })?;
    remote::write_atomically(&path, report.as_bytes())
        .map_err(|err| CmdError::failed_with("cannot write the report", err))?;
    let mut out = Stdout::new();
    out.write(&format!("{report}\nwritten to {}\n", path.display()))
        .map_err(|err| CmdError::failed_with("cannot print the report", err))?;
    Ok(ExitCode::SUCCESS)
}

/// `git rev-parse --short HEAD`, with `-dirty` when the work tree has changes.
fn git_commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) if !commit.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|status| !status.is_empty());
            if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            }
        }
        _ => "unknown".to_owned(),
    }
}

/// The 1-minute load average, so a reader sees whether other work shared the machine.
fn load_average() -> String {
    read_first_field(Path::new("/proc/loadavg")).unwrap_or_else(|| "n/a".to_owned())
}

fn read_first_field(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace().next().map(str::to_owned)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse() {
        let args = Args::from_args(
            &["bench"],
            &[
                "--quick",
                "--tool",
                "builtin",
                "--results-dir",
                "/tmp/x",
                "--pairs",
                "2",
            ],
        )
        .unwrap();
        assert!(args.quick);
        assert_eq!(args.tool.as_deref(), Some("builtin"));
        assert_eq!(args.results_dir, PathBuf::from("/tmp/x"));
        assert_eq!((args.pairs, args.window), (Some(2), None));
        let default = Args::from_args(&["bench"], &[]).unwrap();
        assert_eq!(default.results_dir, PathBuf::from("test/results"));
        assert!(default.system_alloc_binary.is_none());
    }
}
