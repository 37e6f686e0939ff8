//! `auth-service load` through the real binary against a real `serve` (and `kong-sim`):
//! exit codes, the JSON summary, threshold failures, validation with real tokens.

use std::fs;

use crate::support::{self, Proc, Run, TempDir};

const JWT_ENV: [(&str, &str); 2] = [
    ("KONG_JWT_AUTHORITY", "https://auth.example.com"),
    ("KONG_JWT_AUDIENCE", "kong-api"),
];

fn serve_with_sim() -> Proc {
    Proc::start(
        &["serve", "--kong-sim", "--host", "127.0.0.1", "--port", "0"],
        &[],
    )
}

/// `load smoke` with 2 VUs for 2 s; more args appended.
fn smoke(dir: &TempDir, url: &str, more: &[&str]) -> Run {
    smoke_with(dir, url, more, &[])
}

fn smoke_with(dir: &TempDir, url: &str, more: &[&str], envs: &[(&str, &str)]) -> Run {
    let results = dir.join("results").display().to_string();
    let mut args = vec!["load", "smoke", "--url", url, "--results-dir", &results];
    args.extend_from_slice(more);
    let mut all = vec![("K6_SMOKE_VUS", "2"), ("K6_SMOKE_DURATION", "2s")];
    all.extend_from_slice(envs);
    support::run(Some(&dir.path), &args, &all)
}

#[test]
fn smoke_on_health_passes_and_writes_the_summary() {
    let server = serve_with_sim();
    let dir = TempDir::new("load-smoke");
    let run = smoke(&dir, &server.url, &["--endpoint", "health"]);
    assert_eq!(run.code(), 0, "{run:?}\n{}", server.output());
    assert!(run.stdout.contains("/health"), "{run:?}");
    assert!(run.stdout.contains("thresholds: all passed"), "{run:?}");
    let files: Vec<_> = fs::read_dir(dir.join("results"))
        .expect("results dir created")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with("load-smoke-") && name.ends_with(".json"),
        "{name}"
    );
    assert!(run.stdout.contains(&name), "the path is printed: {run:?}");
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(summary["profile"], "smoke");
    assert_eq!(summary["summary"]["passed"], true);
    let health = &summary["summary"]["endpoints"][0];
    assert_eq!(health["route"], "/health");
    assert!(health["requests"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(health["errors"], 0);
}

#[test]
fn slow_kong_crosses_the_tokens_thresholds() {
    let kong = Proc::start(&["kong-sim", "--port", "0", "--latency-ms", "300"], &[]);
    let mut env = vec![
        ("KONG_ADMIN_URL", kong.url.as_str()),
        ("CACHING_TTL_SECONDS", "0"),
    ];
    env.extend(JWT_ENV);
    let server = Proc::start(&["serve", "--host", "127.0.0.1", "--port", "0"], &env);
    let dir = TempDir::new("load-slow");
    let run = smoke(&dir, &server.url, &["--endpoint", "tokens"]);
    assert_eq!(run.code(), 3, "{run:?}");
    assert!(run.stdout.contains("/tokens p95"), "{run:?}");
    assert!(run.stdout.contains("FAIL"), "{run:?}");
    assert!(run.stderr.contains("thresholds crossed"), "{run:?}");
    assert!(
        fs::read_dir(dir.join("results")).unwrap().count() == 1,
        "the summary is written even when thresholds fail"
    );
}

#[test]
fn smoke_on_validate_uses_real_tokens() {
    let server = serve_with_sim();
    let dir = TempDir::new("load-validate");
    // What is checked here is the tokens, not the latency: a debug build on a busy CI machine
    // may well miss the 50 ms validate SLA, so the thresholds are out of the way.
    let run = smoke_with(
        &dir,
        &server.url,
        &["--endpoint", "validate", "--consumers", "3"],
        &[(
            "SLA_THRESHOLDS",
            "/tokens/validate=60000:60000,/tokens=60000:60000",
        )],
    );
    assert_eq!(run.code(), 0, "{run:?}");
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("/tokens/validate: "))
        .unwrap_or_else(|| panic!("no status line: {run:?}"));
    assert!(line.contains("statuses 200="), "{line}");
    assert!(!line.contains("401") && !line.contains("400"), "{line}");
}

#[test]
fn profiling_request_against_a_production_target_warns_and_continues() {
    let server = Proc::start(
        &["serve", "--kong-sim", "--host", "127.0.0.1", "--port", "0"],
        &[("APP_ENV", "production")],
    );
    let dir = TempDir::new("load-prod");
    let results = dir.join("results").display().to_string();
    let run = support::run(
        Some(&dir.path),
        &[
            "load",
            "smoke",
            "--url",
            &server.url,
            "--results-dir",
            &results,
        ],
        &[
            ("K6_SMOKE_VUS", "1"),
            ("K6_SMOKE_DURATION", "1s"),
            ("ENABLE_PROFILING", "true"),
        ],
    );
    assert_eq!(run.code(), 0, "{run:?}");
    assert!(
        run.stderr.contains("warning: profiling requested"),
        "{run:?}"
    );
}

#[test]
fn bad_flags_and_variables_exit_2_naming_them() {
    let dir = TempDir::new("load-usage");
    let check = |args: &[&str], env: &[(&str, &str)], needle: &str| {
        let run = support::run(Some(&dir.path), args, env);
        assert_eq!(run.code(), 2, "{args:?}: {run:?}");
        assert!(
            run.stderr.contains(needle),
            "{args:?} lacks {needle}: {run:?}"
        );
    };
    check(&["load", "smoke", "--vus", "0"], &[], "--vus");
    check(&["load", "smoke", "--duration", "soon"], &[], "--duration");
    check(
        &["load", "smoke", "--endpoint", "everything"],
        &[],
        "--endpoint",
    );
    check(&["load", "smoke", "--url", "https://x"], &[], "--url");
    check(
        &["load", "bogus"],
        &[],
        "smoke, load, stress, spike or soak",
    );
    check(&["load", "smoke"], &[("K6_SMOKE_VUS", "x")], "K6_SMOKE_VUS");
    check(
        &["load", "smoke"],
        &[("SLA_THRESHOLDS", "nope")],
        "SLA_THRESHOLDS",
    );
    check(
        &["load", "smoke"],
        &[("ENABLE_PROFILING", "perhaps")],
        "ENABLE_PROFILING",
    );
    check(&["load", "smoke"], &[("BASE_URL", "ftp://x")], "BASE_URL");
    check(
        &["profile", "soak"],
        &[],
        "tokens, health, validate or mixed",
    );
    check(
        &["profile", "tokens", "--concurrency", "0"],
        &[],
        "--concurrency",
    );
    check(&["profile", "tokens", "--rate", "-1"], &[], "--rate");
}
