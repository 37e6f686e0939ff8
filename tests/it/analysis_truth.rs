//! Issue 11: the analysis names the real bottleneck. Each test profiles a real scenario with
//! the real binary (`auth-service profile …`, its own kong-sim and server child) and asserts
//! on `auth-service analyze --format json` of the profiles it wrote.
//!
//! A scenario run is shared by the tests that read it (`OnceLock`): the profiles are read into
//! memory and each test writes them to its own temporary directory.

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::support::{self, Run, TempDir};

/// The Markdown profiles of one `profile` run.
struct Profiles {
    cpu: String,
    heap: String,
    output: String,
}

fn profile_run(scenario: &str, envs: &[(&str, &str)]) -> Profiles {
    let dir = TempDir::new(&format!("truth-{scenario}"));
    let out = dir.join("out").display().to_string();
    let run = support::run(
        Some(&dir.path),
        &["profile", scenario, "--duration", "3", "--output-dir", &out],
        envs,
    );
    assert_eq!(run.code(), 0, "{run:?}");
    let read = |suffix: &str| {
        let name = fs::read_dir(dir.join("out"))
            .expect("output dir")
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(suffix))
            .unwrap_or_else(|| panic!("no {suffix}: {run:?}"));
        fs::read_to_string(name).unwrap()
    };
    Profiles {
        cpu: read(".cpu-prof.md"),
        heap: read(".heap-prof.md"),
        output: format!("{run:?}"),
    }
}

fn ttl_zero() -> &'static Profiles {
    static RUN: OnceLock<Profiles> = OnceLock::new();
    RUN.get_or_init(|| profile_run("tokens", &[("CACHING_TTL_SECONDS", "0")]))
}

fn default_tokens() -> &'static Profiles {
    static RUN: OnceLock<Profiles> = OnceLock::new();
    RUN.get_or_init(|| profile_run("tokens", &[]))
}

fn health() -> &'static Profiles {
    static RUN: OnceLock<Profiles> = OnceLock::new();
    RUN.get_or_init(|| profile_run("health", &[]))
}

/// `analyze --format json` of the given `(file name, contents)` in a fresh directory.
fn analyze(files: &[(&str, &str)]) -> (Run, TempDir) {
    let dir = TempDir::new("truth-analyze");
    let mut args = vec!["analyze".to_owned(), "--format".into(), "json".into()];
    for (name, text) in files {
        let path: PathBuf = dir.join(name);
        fs::write(&path, text).unwrap();
        args.push(path.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (support::run(None, &args, &[]), dir)
}

fn analysis(profiles: &Profiles) -> serde_json::Value {
    let (run, _dir) = analyze(&[
        ("t.cpu-prof.md", &profiles.cpu),
        ("t.heap-prof.md", &profiles.heap),
    ]);
    assert_eq!(run.code(), 0, "{run:?}\nprofile run: {}", profiles.output);
    serde_json::from_str(&run.stdout).unwrap_or_else(|err| panic!("not JSON ({err}): {run:?}"))
}

fn subsystem<'a>(cpu: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    cpu["subsystems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {cpu:#}"))
}

fn percent(cpu: &serde_json::Value, key: &str) -> f64 {
    subsystem(cpu, key)["percent"].as_f64().unwrap()
}

/// Issue 11 items 1/2: with the cache off, Kong is the bottleneck and the advice is the TTL.
#[test]
fn ttl_zero_run_blames_kong_lookups_and_cites_the_ttl() {
    let value = analysis(ttl_zero());
    let cpu = &value["cpu"][0];
    assert_eq!(cpu["attribution"], "whole_stack", "{cpu:#}");
    let kong = percent(cpu, "kong");
    let largest = cpu["subsystems"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|a, b| {
            a["percent"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["percent"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(largest["key"], "kong", "largest subsystem: {cpu:#}");
    assert!(kong > 15.0, "Kong {kong}% within its 15% budget: {cpu:#}");
    assert!(!subsystem(cpu, "kong")["severity"].is_null(), "{cpu:#}");
    let top = &value["findings"][0];
    assert_eq!(top["topic"], "Kong lookups", "{value:#}");
    assert!(
        top["action_items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains("`CACHING_TTL_SECONDS`")),
        "{top:#}"
    );
    let sum: f64 = cpu["subsystems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["percent"].as_f64().unwrap())
        .sum();
    assert!((sum - 100.0).abs() < 0.01, "shares add up to {sum}");
}

/// Issue 11 items 2 and 5: socket I/O is its own line, not HTTP's budget; a 3 s run judges
/// no growth; almost every sample is attributed.
#[test]
fn default_tokens_run_keeps_socket_io_out_of_http_and_attributes_nearly_everything() {
    let value = analysis(default_tokens());
    let cpu = &value["cpu"][0];
    let socket = percent(cpu, "socket_io");
    let http = percent(cpu, "http");
    assert!(socket > 0.0, "send/recv of the served sockets: {cpu:#}");
    assert!(subsystem(cpu, "socket_io")["severity"].is_null());
    assert!(subsystem(cpu, "socket_io")["limit_percent"].is_null());
    for finding in value["findings"].as_array().unwrap() {
        assert_ne!(finding["topic"], "Memory growth", "{finding:#}");
        if finding["topic"] == "HTTP" {
            // Judged on the user-space share alone: inherent socket I/O is not in it.
            assert_eq!(finding["measured"].as_f64().unwrap(), http, "{finding:#}");
            assert!(
                finding["issue"]
                    .as_str()
                    .unwrap()
                    .contains("socket I/O on the served sockets"),
                "{finding:#}"
            );
            let without_socket = http / 12.0;
            assert!(
                finding["severity"] != "critical" || without_socket > 2.0,
                "critical only when user-space HTTP alone is over 2x: {finding:#}"
            );
            assert!(
                !finding["expected_impact"]
                    .as_str()
                    .unwrap()
                    .contains("frees"),
                "no HTTP saving is claimed: {finding:#}"
            );
        }
    }
    let other = cpu["other_percent"].as_f64().unwrap();
    assert!(other < 10.0, "Other is {other}%: {cpu:#}");
}

/// Issue 11 item 3: a handler with no self time is among our functions by total time.
#[test]
fn health_run_lists_the_handler_by_total_time() {
    let profiles = health();
    let value = analysis(profiles);
    let ours: Vec<&str> = value["cpu"][0]["our_functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["function"].as_str().unwrap())
        .collect();
    assert!(
        ours.contains(&"auth_service::handlers::health::health"),
        "{ours:?}"
    );
    // And the call tree reaches it.
    let tree = profiles
        .cpu
        .split("## Call Tree (Total Time)")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    assert!(
        tree.contains("`auth_service::handlers::health::health`"),
        "{tree}"
    );
}

/// Issue 11 item 9: a truncated profile is refused, not read as a quiet one.
#[test]
fn truncated_cpu_profile_is_refused() {
    let cpu = &default_tokens().cpu;
    let cuts = [500, cpu.len() / 2, cpu.len() - 20];
    for cut in cuts {
        let cut = (0..=cut).rev().find(|c| cpu.is_char_boundary(*c)).unwrap();
        let (run, _dir) = analyze(&[("t.cpu-prof.md", &cpu[..cut])]);
        assert_eq!(run.code(), 1, "{cut} bytes: {run:?}");
        assert!(
            run.stderr
                .contains("t.cpu-prof.md is incomplete or truncated"),
            "{run:?}"
        );
        assert!(run.stdout.is_empty(), "{run:?}");
    }
    let (whole, _dir) = analyze(&[("t.cpu-prof.md", cpu)]);
    assert_eq!(whole.code(), 0, "{whole:?}");
}

/// Issue 11 item 8: a slow Kong makes /tokens violate its SLA while the CPU idles; the
/// automatic profile is nearly empty, and the analysis says the time went to waiting and
/// points at what the service waits on.
#[test]
fn slow_kong_sla_profile_is_called_off_cpu() {
    let sim = support::kong_sim(&["--latency-ms", "150"]);
    let dir = TempDir::new("truth-off-cpu");
    let auto = dir.path.to_string_lossy().into_owned();
    let manual = dir.join("manual").to_string_lossy().into_owned();
    let server = support::serve(
        &sim.url,
        &[
            ("CONTINUOUS_PROFILING_ENABLED", "true"),
            ("CONTINUOUS_PROFILING_DURATION_SECONDS", "2"),
            ("CONTINUOUS_PROFILING_OUTPUT_DIR", auto.as_str()),
            ("PROFILING_OUTPUT_DIR", manual.as_str()),
            ("CACHING_TTL_SECONDS", "0"),
        ],
    );
    for _ in 0..12 {
        let reply = support::get(
            &format!("{}/tokens", server.url),
            &support::consumer(support::CONSUMER_ID, support::CONSUMER_NAME),
        );
        assert_eq!(reply.status, 200, "{reply:?}\n{}", server.output());
    }
    let (cpu, heap) = support::eventually(
        std::time::Duration::from_secs(90),
        "an automatic profile",
        || {
            let names: Vec<PathBuf> = fs::read_dir(&dir.path)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
                .collect();
            let find = |suffix: &str| {
                names
                    .iter()
                    .find(|p| p.to_string_lossy().ends_with(suffix))
                    .cloned()
            };
            Some((find(".cpu-prof.md")?, find(".heap-prof.md")?))
        },
    );
    let run = support::run(
        None,
        &[
            "analyze",
            "--format",
            "json",
            cpu.to_str().unwrap(),
            heap.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(run.code(), 0, "{run:?}");
    let value: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let cores = value["cpu"][0]["busy_cores"].as_f64().unwrap();
    assert!(cores < 0.5, "busy {cores} cores: {value:#}");
    let finding = value["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["topic"] == "SLA latency (off-CPU)")
        .unwrap_or_else(|| panic!("no off-CPU finding: {value:#}"));
    assert!(
        finding["issue"]
            .as_str()
            .unwrap()
            .contains("Flat CPU profile: the time is spent waiting"),
        "{finding:#}"
    );
    let items = finding["action_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    for name in [
        "kong_operation_duration_seconds",
        "KONG_TIMEOUT_MS",
        "circuit_breaker_state",
        "KONG_MAX_WAITING_WORKERS",
    ] {
        assert!(items.contains(name), "{name} missing in {items}");
    }
    assert!(
        !items.contains("includes the wait for a free worker"),
        "{items}"
    );
}
