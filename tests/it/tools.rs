//! The offline tools through the real binary: `analyze`, `compare`, `archive`, `cleanup`, on
//! the fixtures in `tests/fixtures/` and on temporary `profiles/` trees.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{self, BIN, Run, TempDir, fixture, names, ok, profiles_tree, touch};

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {run:?}"))
}

const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

/// A `profiles/` tree with the five subdirs and their `.gitkeep`s.

#[test]
fn analyze_ranks_our_profile_by_category() {
    let run = ok(support::run(
        None,
        &[
            "analyze",
            &fixture("tokens-sla.cpu-prof.md"),
            &fixture("tokens.heap-prof.md"),
        ],
        &[],
    ));
    let out = &run.stdout;
    for expected in [
        "# Profile Analysis Report",
        "## Performance Summary",
        "| Latency p95 | 153.2 ms, **over** the 100 ms SLA (1.5x) |",
        "| Latency p99 | 160.0 ms, within the 200 ms SLA |",
        "| CPU seconds | 2.41 |",
        "## Top CPU Consumers",
        // Leaf-only shares: the fixture has no whole-stack section. `lru::` is cache work
        // (Kong), `__libc_send` socket I/O whoever called it, not HTTP (issue 11).
        "leaf only (this profile has no `## Subsystems (Whole Stack)` section)",
        "| Kong lookups | 36.0% | < 15% | critical |",
        "| JWT signing | 25.0% | < 40% | ok |",
        "| JSON | 10.0% | < 8% | medium |",
        "| HTTP | 6.0% | < 12% | ok |",
        "| Socket I/O, inherent | 3.0% | inherent, not budgeted | - |",
        "| Other | 20.0% | not budgeted | - |",
        "| Lock contention | 4.0% | flag > 5% | ok |",
        "| Allocation churn | 5.0% | flag > 10% | ok |",
        "## Memory Usage",
        "| Growth | +120.09 MiB/h (least-squares fit over 7 points in 60.0s) |",
        "`auth_service::kong::cache::CredentialCache::insert`",
        "## Optimization Opportunities",
        "4 findings: 2 critical, 1 high, 1 medium, 0 low.",
        "### 1. [CRITICAL] Memory growth",
        "### 2. [CRITICAL] Kong lookups",
        "### 3. [HIGH] SLA latency",
        "### 4. [MEDIUM] JSON",
        "**Expected Impact:**",
        "**Action Items:**",
        "**References:** `src/kong/cache.rs`, `src/kong/client.rs`",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    assert!(!out.contains("No budget crossed"), "{out}");
    assert!(!out.contains("] JWT signing"), "{out}");
}

#[test]
fn analyze_json_has_the_same_content() {
    let run = ok(support::run(
        None,
        &[
            "analyze",
            "--format=json",
            &fixture("tokens-sla.cpu-prof.md"),
            &fixture("tokens.heap-prof.md"),
        ],
        &[],
    ));
    let value = json(&run);
    assert_eq!(value["budget_crossed"], true);
    let findings: Vec<(String, String)> = value["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["topic"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("Memory growth", "critical"),
        ("Kong lookups", "critical"),
        ("SLA latency", "high"),
        ("JSON", "medium"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(t, s)| (t.to_string(), s.to_string()))
        .collect();
    assert_eq!(findings, expected);
    let cpu = &value["cpu"][0];
    assert_eq!(cpu["samples"], 279);
    assert_eq!(cpu["top_functions"].as_array().unwrap().len(), 10);
    assert_eq!(cpu["attribution"], "leaf_only");
    assert_eq!(cpu["subsystems"][0]["name"], "Kong lookups");
    assert_eq!(cpu["subsystems"][0]["severity"], "critical");
    let sum: f64 = cpu["subsystems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["percent"].as_f64().unwrap())
        .sum::<f64>();
    assert!(
        (sum - 100.0).abs() < 0.01,
        "each function counted once, Other included: {sum}"
    );
    assert_eq!(value["memory"][0]["live_bytes"], 44_040_192);
    assert!(
        !value["findings"][0]["action_items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn analyze_reads_bun_layout() {
    let run = ok(support::run(
        None,
        &["analyze", &fixture("bun.cpu-prof.md")],
        &[],
    ));
    for expected in [
        "(CPU, Bun/Deno layout)",
        "| Samples | 1821 (every 1.0ms) |",
        "`signJwt`",
        "`dist/server.js:12`",
        "`[native code]`",
        "not available (no p95/p99 in the profile metadata)",
        "No budget crossed",
    ] {
        assert!(
            run.stdout.contains(expected),
            "missing {expected:?}: {run:?}"
        );
    }
}

#[test]
fn analyze_quiet_profile_crosses_no_budget() {
    let run = ok(support::run(
        None,
        &["analyze", &fixture("quiet.cpu-prof.md")],
        &[],
    ));
    assert!(run.stdout.contains("No budget crossed"), "{run:?}");
    assert!(!run.stdout.contains("### 1."), "{run:?}");
    let run = ok(support::run(
        None,
        &["analyze", "--format", "json", &fixture("quiet.cpu-prof.md")],
        &[],
    ));
    let value = json(&run);
    assert_eq!(value["budget_crossed"], false);
    assert_eq!(value["findings"].as_array().unwrap().len(), 0);
}

#[test]
fn analyze_refuses_bad_input() {
    let dir = TempDir::new("analyze-bad");
    let missing = dir.join("missing.md");
    let run = support::run(None, &["analyze", missing.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(run.stderr.contains("missing.md"), "{run:?}");

    let readme = dir.join("README.md");
    fs::write(&readme, "# Notes\n\nnot a profile\n").unwrap();
    let run = support::run(None, &["analyze", readme.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(
        run.stderr
            .contains("README.md is not a CPU or heap profile"),
        "{run:?}"
    );

    let run = support::run(
        None,
        &["analyze", "--format", "xml", &fixture("quiet.cpu-prof.md")],
        &[],
    );
    assert_eq!(run.code(), 2, "{run:?}");
    assert!(run.stderr.contains("--format"), "{run:?}");
    let run = support::run(None, &["analyze"], &[]);
    assert_eq!(run.code(), 2, "{run:?}");
}

#[test]
fn analyze_into_a_closed_pipe_succeeds() {
    // Enough output to overflow the pipe buffer after `head` has gone away.
    let file = fixture("tokens-sla.cpu-prof.md");
    let files = vec![file.as_str(); 60].join(" ");
    let script = format!("'{BIN}' analyze {files} | head -n 1 >/dev/null; echo ${{PIPESTATUS[0]}}");
    let output = Command::new("bash")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stdout.trim(), "0", "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn help_on_every_tool() {
    for tool in ["analyze", "compare", "archive", "cleanup"] {
        let run = ok(support::run(None, &[tool, "--help"], &[]));
        assert!(run.stdout.contains("Usage:"), "{tool}: {run:?}");
    }
}

#[test]
fn compare_shows_deltas_and_new_hot_functions() {
    let run = ok(support::run(
        None,
        &[
            "compare",
            &fixture("tokens-sla.cpu-prof.md"),
            &fixture("tokens-after.cpu-prof.md"),
        ],
        &[],
    ));
    let out = &run.stdout;
    for expected in [
        "# Profile Comparison",
        "| Samples | 279 | 300 | +21 | +7.5% |",
        "| Latency p95 | 153.2 ms | 61.4 ms | -91.8 ms | -59.9% |",
        "| `auth_service::jwt::sign` | 8.9% | 14.0% | +5.1 |",
        "| `auth_service::http::request::parse_query` | - | 9.0% | +9.0 |",
        // Leaf-only shares (the fixtures predate whole-stack attribution); the LRU is cache
        // work, so Kong's 34% of leaf time plus `lru::` 2% (issue 11).
        "## CPU by Subsystem",
        "| Kong lookups | 36.0% | 11.0% | -25.0 pts |",
        "- `auth_service::http::request::parse_query` 9.0% (base: absent)",
        "- `rustls::conn::ConnectionCommon<Data>::process_new_packets` 8.0% (new: absent)",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    let new_hot = out
        .split("## New Hot Functions")
        .nth(1)
        .and_then(|s| s.split("## Vanished").next())
        .unwrap();
    assert!(!new_hot.contains("auth_service::jwt::sign"), "{new_hot}");

    let run = ok(support::run(
        None,
        &[
            "compare",
            "--format=json",
            &fixture("tokens-sla.cpu-prof.md"),
            &fixture("tokens-after.cpu-prof.md"),
        ],
        &[],
    ));
    let value = json(&run);
    assert_eq!(
        value["new_hot"][0]["function"],
        "auth_service::http::request::parse_query"
    );
    assert_eq!(value["summary"][1]["metric"], "Samples");
    assert_eq!(value["summary"][1]["delta"], 21.0);
}

#[test]
fn compare_heap_reports() {
    let run = ok(support::run(
        None,
        &[
            "compare",
            &fixture("tokens.heap-prof.md"),
            &fixture("tokens-after.heap-prof.md"),
        ],
        &[],
    ));
    for expected in [
        "| Live heap | 42.00 MiB | 40.10 MiB | -1.90 MiB |",
        "| Peak heap | 48.12 MiB | 44.00 MiB | -4.12 MiB |",
        "| Allocations | 1204331 | 904000 | -300331 |",
        "| Bytes allocated | 1000.00 MiB | 700.00 MiB | -300.00 MiB |",
    ] {
        assert!(
            run.stdout.contains(expected),
            "missing {expected:?}: {run:?}"
        );
    }
    let run = support::run(
        None,
        &[
            "compare",
            &fixture("tokens.heap-prof.md"),
            &fixture("quiet.cpu-prof.md"),
        ],
        &[],
    );
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(
        run.stderr
            .contains("cannot compare a heap profile with a cpu profile")
    );
}

fn only_entry(dir: &Path) -> PathBuf {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != ".gitkeep")
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.remove(0)
}

#[test]
fn archive_copies_companions_with_a_sidecar() {
    let (dir, profiles) = profiles_tree("archive-glob");
    let current = profiles.join("current");
    for name in [
        "tokens-20261125_194810.cpu-prof.md",
        "tokens-20261125_194810.cpu-prof.pb.gz",
        "tokens-20261125_194810.cpu-prof.svg",
        "tokens-20261125_194810.heap-prof.md",
        "health-20261125_194810.cpu-prof.md",
    ] {
        touch(&current.join(name), 10, 0);
    }
    let run = ok(support::run(
        Some(&dir.path),
        &[
            "archive",
            "--profile",
            "profiles/current/tokens-*.cpu-prof.md",
        ],
        &[],
    ));
    let archived = only_entry(&profiles.join("archive"));
    let stamp = archived.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(stamp.len(), "20261125_194810".len(), "{stamp}");
    assert_eq!(
        names(&archived),
        [
            "archive.json",
            "tokens-20261125_194810.cpu-prof.md",
            "tokens-20261125_194810.cpu-prof.pb.gz",
            "tokens-20261125_194810.cpu-prof.svg",
            "tokens-20261125_194810.heap-prof.md",
        ]
    );
    assert!(
        run.stdout
            .contains("archived 4 files into profiles/archive/"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("copied profiles/current/tokens-20261125_194810.cpu-prof.svg")
    );
    // Copies, never moves.
    assert_eq!(names(&current).len(), 6);
    let sidecar: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(archived.join("archive.json")).unwrap()).unwrap();
    assert_eq!(sidecar["kind"], "archive");
    assert_eq!(sidecar["label"], serde_json::Value::Null);
    assert!(sidecar["date"].as_str().unwrap().ends_with('Z'));
    assert!(sidecar.get("git_commit").is_some());
    assert_eq!(sidecar["sources"].as_array().unwrap().len(), 4);
    assert!(
        sidecar["sources"][0].as_str().unwrap().starts_with('/'),
        "{sidecar}"
    );
}

#[test]
fn archive_baselines_by_label() {
    let (dir, profiles) = profiles_tree("archive-label");
    let current = profiles.join("current");
    for name in [
        "CPU.20261125_194810.4242.md",
        "CPU.20261125_194810.4242.pb.gz",
        "CPU.20261125_194810.4242.svg",
        "Heap.20261125_194810.4242.md",
        "Heap.20261125_194810.4242.pb.gz",
        "CPU.20261125_200000.4242.md",
    ] {
        touch(&current.join(name), 10, 0);
    }
    let args = [
        "archive",
        "--profile",
        "profiles/current/CPU.20261125_194810.4242.md",
        "--label",
        "v1.2.0",
    ];
    ok(support::run(Some(&dir.path), &args, &[]));
    let baseline = profiles.join("baselines/v1.2.0");
    assert_eq!(
        names(&baseline),
        [
            "CPU.20261125_194810.4242.md",
            "CPU.20261125_194810.4242.pb.gz",
            "CPU.20261125_194810.4242.svg",
            "Heap.20261125_194810.4242.md",
            "Heap.20261125_194810.4242.pb.gz",
            "archive.json",
        ]
    );
    let sidecar: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(baseline.join("archive.json")).unwrap()).unwrap();
    assert_eq!(sidecar["kind"], "baseline");
    assert_eq!(sidecar["label"], "v1.2.0");

    // The same label again gets a timestamped sibling instead of overwriting.
    let run = ok(support::run(Some(&dir.path), &args, &[]));
    // Each baseline dir has its flat CPU and heap Markdown beside it.
    let baselines = names(&profiles.join("baselines"));
    assert_eq!(baselines.len(), 7, "{baselines:?}");
    assert!(baselines[2].starts_with("v1.2.0-"), "{baselines:?}");
    assert!(
        baselines.contains(&"v1.2.0.cpu-prof.md".to_owned()),
        "{baselines:?}"
    );
    assert!(run.stdout.contains("profiles/baselines/v1.2.0-"), "{run:?}");

    // --to-baseline without a label.
    ok(support::run(
        Some(&dir.path),
        &[
            "archive",
            "--profile",
            "profiles/current/CPU.20261125_200000.4242.md",
            "--to-baseline",
        ],
        &[],
    ));
    assert_eq!(
        names(&profiles.join("baselines/baseline")),
        ["CPU.20261125_200000.4242.md", "archive.json"]
    );
}

#[test]
fn archive_refuses_bad_labels_sources_and_dirs() {
    let (dir, profiles) = profiles_tree("archive-refuse");
    touch(&profiles.join("current/x.cpu-prof.md"), 10, 0);
    let source = "profiles/current/x.cpu-prof.md";
    for label in ["..", ".", "a/b", "../../etc", "has space", &"x".repeat(65)] {
        let run = support::run(
            Some(&dir.path),
            &["archive", "--profile", source, "--label", label],
            &[],
        );
        assert_eq!(run.code(), 2, "label {label:?}: {run:?}");
        assert!(run.stderr.contains("--label"), "{run:?}");
    }
    let run = support::run(
        Some(&dir.path),
        &["archive", "--profile", "profiles/current/missing.md"],
        &[],
    );
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(
        run.stderr.contains("profiles/current/missing.md"),
        "{run:?}"
    );
    let run = support::run(
        Some(&dir.path),
        &["archive", "--profile", "profiles/current/*.svg"],
        &[],
    );
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(run.stderr.contains("no file matches"), "{run:?}");
    let run = support::run(
        Some(&dir.path),
        &[
            "archive",
            "--profile",
            source,
            "--profiles-dir",
            "profiles/current",
        ],
        &[],
    );
    assert_eq!(run.code(), 2, "{run:?}");
    assert!(run.stderr.contains("does not look like a profiles dir"));
    // Nothing was written by the refused runs.
    assert_eq!(names(&profiles.join("archive")), [".gitkeep"]);
    assert_eq!(names(&profiles.join("baselines")), [".gitkeep"]);
}

/// current: 30 h old and 1 h old; auto and manual: 8 d; archive: one dir all old, one mixed;
/// baselines: 400 d.
fn aged_tree(name: &str) -> (TempDir, PathBuf) {
    let (dir, profiles) = profiles_tree(name);
    touch(&profiles.join("current/old.cpu-prof.md"), 1000, 30 * HOUR);
    touch(&profiles.join("current/new.cpu-prof.md"), 1000, HOUR);
    touch(
        &profiles.join("auto/tokens-sla-violation-1.cpu-prof.md"),
        1000,
        8 * DAY,
    );
    touch(&profiles.join("manual/CPU.1.2.md"), 1000, 8 * DAY);
    touch(
        &profiles.join("archive/20261101_000000/a.md"),
        1000,
        10 * DAY,
    );
    touch(
        &profiles.join("archive/20261101_000000/b.md"),
        1000,
        9 * DAY,
    );
    touch(
        &profiles.join("archive/20261120_000000/a.md"),
        1000,
        10 * DAY,
    );
    touch(&profiles.join("archive/20261120_000000/b.md"), 1000, DAY);
    touch(&profiles.join("baselines/v1/CPU.1.2.md"), 1000, 400 * DAY);
    (dir, profiles)
}

#[test]
fn cleanup_deletes_by_retention() {
    let (dir, profiles) = aged_tree("cleanup-retention");
    let run = ok(support::run(Some(&dir.path), &["cleanup"], &[]));
    let out = &run.stdout;
    for expected in [
        "deleted profiles/current/old.cpu-prof.md (age 1.3d, 1000 B)",
        "deleted profiles/auto/tokens-sla-violation-1.cpu-prof.md (age 8.0d, 1000 B)",
        "deleted profiles/manual/CPU.1.2.md (age 8.0d, 1000 B)",
        "deleted profiles/archive/20261101_000000/ (age 9.0d, 2 files, 1.95 KiB)",
        // An archive dir is one set: with a file still young it stays whole.
        "cleanup: deleted 5 files (4.88 KiB); kept 3 files (2.93 KiB) and 1 baseline file",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    assert!(!profiles.join("current/old.cpu-prof.md").exists());
    assert!(profiles.join("current/new.cpu-prof.md").exists());
    assert!(!profiles.join("archive/20261101_000000").exists());
    assert!(profiles.join("archive/20261120_000000/a.md").exists());
    assert!(profiles.join("archive/20261120_000000/b.md").exists());
    assert!(profiles.join("baselines/v1/CPU.1.2.md").exists());
    for sub in ["current", "auto", "archive", "baselines", "manual"] {
        assert!(profiles.join(sub).join(".gitkeep").exists(), "{sub}");
    }

    // Longer retentions keep everything that is left.
    let run = ok(support::run(
        Some(&dir.path),
        &[
            "cleanup",
            "--current-retention-hours=0.5",
            "--archive-retention-days",
            "30",
        ],
        &[],
    ));
    assert!(
        run.stdout
            .contains("deleted profiles/current/new.cpu-prof.md"),
        "{run:?}"
    );
    assert!(profiles.join("archive/20261120_000000/b.md").exists());
}

#[test]
fn cleanup_dry_run_deletes_nothing() {
    let (dir, profiles) = aged_tree("cleanup-dry");
    let run = ok(support::run(
        Some(&dir.path),
        &["cleanup", "--dry-run", "--max-storage-gb", "0"],
        &[],
    ));
    assert!(
        run.stdout
            .contains("would delete profiles/current/old.cpu-prof.md (age 1.3d, 1000 B)"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("cleanup (dry run): would delete 8 files"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("deleted "), "{run:?}");
    for path in [
        "current/old.cpu-prof.md",
        "current/new.cpu-prof.md",
        "auto/tokens-sla-violation-1.cpu-prof.md",
        "manual/CPU.1.2.md",
        "archive/20261101_000000/a.md",
        "archive/20261120_000000/a.md",
        "baselines/v1/CPU.1.2.md",
    ] {
        assert!(profiles.join(path).exists(), "{path}");
    }
}

#[test]
fn cleanup_enforces_quota_oldest_first() {
    let (dir, profiles) = profiles_tree("cleanup-quota");
    touch(&profiles.join("current/a.md"), 1000, HOUR);
    touch(&profiles.join("current/b.md"), 1000, 3 * HOUR);
    touch(&profiles.join("auto/c.md"), 1000, 2 * HOUR);
    touch(&profiles.join("baselines/v1/big.md"), 100_000, 100 * DAY);
    // 1610 bytes: the three 1000-byte files must shrink to one.
    let run = ok(support::run(
        Some(&dir.path),
        &["cleanup", "--max-storage-gb", "0.0000015"],
        &[],
    ));
    let out = &run.stdout;
    let b = out
        .find("deleted profiles/current/b.md (age 3.0h, 1000 B, over quota)")
        .unwrap_or_else(|| panic!("{out}"));
    let c = out
        .find("deleted profiles/auto/c.md (age 2.0h, 1000 B, over quota)")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(b < c, "oldest first:\n{out}");
    assert!(profiles.join("current/a.md").exists());
    assert!(!profiles.join("current/b.md").exists());
    assert!(!profiles.join("auto/c.md").exists());
    assert!(profiles.join("baselines/v1/big.md").exists());
}

#[test]
fn cleanup_refuses_bad_values_and_dirs() {
    let (dir, profiles) = aged_tree("cleanup-refuse");
    let cases: [(&[&str], &str); 5] = [
        (
            &["cleanup", "--current-retention-hours=-1"],
            "--current-retention-hours",
        ),
        (
            &["cleanup", "--archive-retention-days", "abc"],
            "--archive-retention-days",
        ),
        (
            &["cleanup", "--auto-retention-days", "NaN"],
            "--auto-retention-days",
        ),
        (&["cleanup", "--max-storage-gb=-0.5"], "--max-storage-gb"),
        (
            &["cleanup", "--profiles-dir", "profiles/.."],
            "does not look like a profiles dir",
        ),
    ];
    for (args, expected) in cases {
        let run = support::run(Some(&dir.path), args, &[]);
        assert_eq!(run.code(), 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains(expected), "{args:?}: {run:?}");
    }
    let run = support::run(
        Some(&dir.path),
        &["cleanup", "--profiles-dir", "nowhere"],
        &[],
    );
    assert_eq!(run.code(), 2, "{run:?}");
    assert!(profiles.join("current/old.cpu-prof.md").exists());
}

#[test]
fn cleanup_never_follows_symlinks_out() {
    let (dir, profiles) = profiles_tree("cleanup-symlink");
    let outside = dir.join("outside");
    touch(&outside.join("precious.md"), 1000, 100 * DAY);
    touch(&outside.join("deep/old.md"), 1000, 100 * DAY);
    std::os::unix::fs::symlink(
        outside.join("precious.md"),
        profiles.join("current/link.md"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&outside, profiles.join("auto/linked-dir")).unwrap();
    fs::remove_dir_all(profiles.join("manual")).unwrap();
    std::os::unix::fs::symlink(&outside, profiles.join("manual")).unwrap();
    touch(
        &profiles.join("archive/20261101_000000/a.md"),
        1000,
        10 * DAY,
    );
    std::os::unix::fs::symlink(
        outside.join("precious.md"),
        profiles.join("archive/20261101_000000/link.md"),
    )
    .unwrap();
    let run = ok(support::run(
        Some(&dir.path),
        &["cleanup", "--max-storage-gb", "0"],
        &[],
    ));
    assert!(
        run.stdout
            .contains("skipped profiles/manual (symlink, not followed)"),
        "{run:?}"
    );
    assert!(outside.join("precious.md").exists());
    assert!(outside.join("deep/old.md").exists());
    // The archive dir with a symlink in it is cleaned file by file, the link left alone.
    assert!(!profiles.join("archive/20261101_000000/a.md").exists());
    assert!(
        fs::symlink_metadata(profiles.join("archive/20261101_000000/link.md")).is_ok(),
        "{run:?}"
    );
}
