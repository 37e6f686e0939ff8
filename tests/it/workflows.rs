//! The profiling workflows as a person lives them, on the real binary: the terminal
//! summary of a run, progress in a pipe, a load run with no server, the guide's flat baseline
//! paths, throughput in `compare`, and cleanup deleting whole sets.

use std::fs;
use std::net::TcpListener;
use std::path::Path;

use crate::support::{self, TempDir, fixture, names, ok, profiles_tree, touch};

const HOUR: u64 = 3600;

/// Items 1 and 2: a piped `profile` run prints a plain summary that fits 100 columns and
/// names the SLA verdict per route, writes the full report beside the profiles, and shows
/// plain progress lines while it runs.
#[test]
fn piped_profile_prints_a_plain_summary_within_100_columns_and_progress() {
    let dir = TempDir::new("wf-summary");
    let out = dir.join("out").display().to_string();
    let run = ok(support::run(
        Some(&dir.path),
        &["profile", "tokens", "--duration", "6", "--output-dir", &out],
        &[],
    ));
    for line in run.stdout.lines() {
        assert!(
            line.chars().count() <= 100,
            "{} columns: {line}\n{run:?}",
            line.chars().count()
        );
    }
    assert!(!run.stdout.contains('\x1b'), "no colour in a pipe: {run:?}");
    assert!(run.stdout.contains("profile tokens: SLA "), "{run:?}");
    let row = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("/tokens ") && l.contains("100/200"))
        .unwrap_or_else(|| panic!("no /tokens verdict row: {run:?}"));
    assert!(row.ends_with("pass") || row.ends_with("FAIL"), "{row}");
    assert!(run.stdout.contains("throughput "), "{run:?}");
    assert!(run.stdout.contains("findings"), "{run:?}");
    assert!(
        run.stdout.contains("full report: ./run.sh analyze"),
        "{run:?}"
    );
    assert!(
        !run.stdout.contains("## Optimization Opportunities"),
        "{run:?}"
    );
    let written = names(&dir.join("out"));
    let analysis = written
        .iter()
        .find(|n| n.ends_with(".analysis.md"))
        .unwrap_or_else(|| panic!("no analysis.md in {written:?}"));
    assert!(run.stdout.contains(analysis.as_str()), "{run:?}");
    let report = fs::read_to_string(dir.join("out").join(analysis)).unwrap();
    assert!(report.contains("## Optimization Opportunities"), "{report}");
    assert!(report.contains("| Latency p95 /tokens | "), "{report}");
    assert!(written.iter().any(|n| n.ends_with(".analysis.json")));
    // Progress: stderr is a pipe here, so plain lines every 5 s instead of a redrawn one.
    let progress: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("progress ["))
        .collect();
    assert!(!progress.is_empty(), "no progress line: {run:?}");
    assert!(progress[0].contains("req/s"), "{progress:?}");
    assert!(!run.stderr.contains('\r'), "{run:?}");
}

/// Item 3: with nothing listening, `load` fails at once with exit 1 and says how to start a
/// server. The duration is an hour, so a regression would hang past the suite's own timeout
/// rather than pass.
#[test]
fn load_without_a_server_fails_at_once_saying_how_to_start_one() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = TempDir::new("wf-no-server");
    let url = format!("http://127.0.0.1:{port}");
    let run = support::run(
        Some(&dir.path),
        &["load", "smoke", "--duration", "1h", "--url", &url],
        &[],
    );
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!("no service answers at {url}")),
        "{run:?}"
    );
    assert!(run.stderr.contains("./run.sh serve --kong-sim"), "{run:?}");
    assert!(
        !dir.join("test").exists(),
        "no summary for a run that never ran"
    );
}

/// Item 5: a baseline also lands at the flat path the guide restores from, the guide's `cp`
/// works as written, `compare` reads the flat file, and `cleanup` never deletes it.
#[test]
fn archive_writes_the_flat_baseline_paths_the_guide_uses() {
    let (dir, profiles) = profiles_tree("wf-baseline");
    let current = profiles.join("current");
    fs::copy(
        fixture("tokens-after.cpu-prof.md"),
        current.join("tokens-20261125_203157.cpu-prof.md"),
    )
    .unwrap();
    fs::copy(
        fixture("tokens-after.heap-prof.md"),
        current.join("tokens-20261125_203157.heap-prof.md"),
    )
    .unwrap();
    touch(&current.join("tokens-20261125_203157.cpu-prof.svg"), 10, 0);
    let run = ok(support::run(
        Some(&dir.path),
        &[
            "archive",
            "--profile",
            "profiles/current/tokens-*.cpu-prof.md",
            "--label",
            "baseline-v1.2",
        ],
        &[],
    ));
    let flat = profiles.join("baselines/baseline-v1.2.cpu-prof.md");
    assert!(flat.is_file(), "{run:?}");
    assert!(
        profiles
            .join("baselines/baseline-v1.2.heap-prof.md")
            .is_file()
    );
    assert!(
        profiles.join("baselines/baseline-v1.2").is_dir(),
        "the dir stays"
    );
    assert_eq!(
        fs::read(&flat).unwrap(),
        fs::read(fixture("tokens-after.cpu-prof.md")).unwrap()
    );
    assert!(
        run.stdout
            .contains("-> profiles/baselines/baseline-v1.2.cpu-prof.md"),
        "{run:?}"
    );

    // The guide: cp profiles/baselines/baseline-v1.2.cpu-prof.md profiles/current/...
    fs::copy(&flat, current.join("restored.cpu-prof.md")).unwrap();
    ok(support::run(
        Some(&dir.path),
        &[
            "compare",
            "profiles/baselines/baseline-v1.2.cpu-prof.md",
            "profiles/current/restored.cpu-prof.md",
        ],
        &[],
    ));
    let run = ok(support::run(
        Some(&dir.path),
        &["cleanup", "--current-retention-hours", "0"],
        &[],
    ));
    assert!(flat.is_file(), "cleanup deleted a baseline: {run:?}");
    assert!(
        profiles
            .join("baselines/baseline-v1.2.heap-prof.md")
            .is_file()
    );
}

/// A copy of the fixture CPU profile whose metadata carries a run's throughput and latency.
fn run_profile(path: &Path, rps: &str, p95: &str, variation: &str) {
    let mut text = fs::read_to_string(fixture("tokens-after.cpu-prof.md")).unwrap();
    assert!(
        text.trim_end().ends_with('|'),
        "the fixture ends in its metadata table"
    );
    if !text.ends_with('\n') {
        text.push('\n');
    }
    for (key, value) in [
        ("rps", rps),
        ("p95_ms", p95),
        ("p99_ms", p95),
        ("rps_variation_percent", variation),
    ] {
        text.push_str(&format!("| {key} | {value} |\n"));
    }
    fs::write(path, text).unwrap();
}

/// Item 6: `compare` shows throughput beside p95 and p99, with deltas and a verdict.
#[test]
fn compare_shows_rps_p95_p99_and_a_verdict() {
    let dir = TempDir::new("wf-compare");
    let (base, new) = (dir.join("base.cpu-prof.md"), dir.join("new.cpu-prof.md"));
    run_profile(&base, "20000.0", "1.00", "3.0");
    run_profile(&new, "14000.0", "1.02", "4.0");
    let compare = || {
        let args = ["compare", &base.to_string_lossy(), &new.to_string_lossy()];
        ok(support::run(Some(&dir.path), &args, &[])).stdout
    };
    let out = &compare();
    assert!(
        out.contains("| Throughput | 20000.0 req/s | 14000.0 req/s | -6000.0 req/s | -30.0% |"),
        "{out}"
    );
    assert!(out.contains("| Latency p95 | 1.0 ms | 1.0 ms |"), "{out}");
    assert!(out.contains("| Latency p99 | "), "{out}");
    assert!(
        out.contains("**Verdict: worse**: rps -30.0% (worse)"),
        "{out}"
    );
    assert!(out.contains("Noise band ±8.0%"), "{out}");

    run_profile(&new, "20500.0", "0.98", "4.0");
    let out = compare();
    assert!(out.contains("**Verdict: within noise**"), "{out}");
}

const SUFFIXES: [&str; 6] = [
    "cpu-prof.md",
    "cpu-prof.pb.gz",
    "cpu-prof.svg",
    "heap-prof.md",
    "analysis.md",
    "analysis.json",
];

/// Item 7: over a quota, cleanup deletes whole runs (every suffix), oldest first, says so in
/// `--dry-run`, and never leaves part of a run behind.
#[test]
fn cleanup_deletes_whole_sets_oldest_first_and_never_a_part() {
    let (dir, profiles) = profiles_tree("wf-cleanup-sets");
    let current = profiles.join("current");
    // Six files of 1000 B per run. Run b's svg is the newest file of all: a file-by-file
    // quota would take b's older files first and leave the svg alone.
    for (stamp, age) in [
        ("a", 5 * HOUR),
        ("b", 4 * HOUR),
        ("c", 3 * HOUR),
        ("d", 2 * HOUR),
    ] {
        for suffix in SUFFIXES {
            touch(&current.join(format!("tokens-{stamp}.{suffix}")), 1000, age);
        }
    }
    touch(&current.join("tokens-b.cpu-prof.svg"), 1000, HOUR);
    // A quota of 13,000 B over 24,000 B: two runs go. By their newest file the oldest runs
    // are a (5 h) and c (3 h); b counts as 1 h old.
    let quota = format!("{}", 13_000.0 / (1024.0 * 1024.0 * 1024.0));
    let dry = ok(support::run(
        Some(&dir.path),
        &["cleanup", "--dry-run", "--max-storage-gb", &quota],
        &[],
    ));
    let lines: Vec<&str> = dry.stdout.lines().collect();
    let sets: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("would delete set "))
        .collect();
    assert_eq!(sets.len(), 2, "{dry:?}");
    assert!(
        sets[0].starts_with("would delete set profiles/current/tokens-a.* (age 5.0h, 6 files"),
        "{dry:?}"
    );
    assert!(
        sets[1].starts_with("would delete set profiles/current/tokens-c.*"),
        "{dry:?}"
    );
    assert!(sets[0].ends_with("over quota)"), "{dry:?}");
    assert!(
        dry.stdout
            .contains("\n  profiles/current/tokens-a.cpu-prof.svg\n"),
        "the members are listed: {dry:?}"
    );
    assert_eq!(
        names(&current).len(),
        25,
        "a dry run deletes nothing (.gitkeep aside)"
    );

    ok(support::run(
        Some(&dir.path),
        &["cleanup", "--max-storage-gb", &quota],
        &[],
    ));
    for (stamp, kept) in [("a", false), ("b", true), ("c", false), ("d", true)] {
        for suffix in SUFFIXES {
            let path = current.join(format!("tokens-{stamp}.{suffix}"));
            assert_eq!(
                path.exists(),
                kept,
                "{}: {:?}",
                path.display(),
                names(&current)
            );
        }
    }
}
