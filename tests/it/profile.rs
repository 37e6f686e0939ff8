//! `auth-service profile <scenario>` through the real binary: it starts its own kong-sim and
//! server child, drives the scenario, and stores and analyses the profiles.

use std::fs;
use std::path::PathBuf;

use crate::support::{self, Run, TempDir};

fn profile(dir: &TempDir, args: &[&str]) -> Run {
    let out = dir.join("out").display().to_string();
    let mut all = vec!["profile"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output-dir", &out]);
    support::run(Some(&dir.path), &all, &[])
}

#[test]
fn health_without_profilers_prints_the_results() {
    let dir = TempDir::new("profile-health");
    let run = profile(
        &dir,
        &["health", "--duration", "2", "--no-cpu", "--no-heap"],
    );
    assert_eq!(run.code(), 0, "{run:?}");
    assert!(
        run.stdout
            .contains("profile health: SLA met on every route"),
        "{run:?}"
    );
    let line = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("/health: "))
        .unwrap_or_else(|| panic!("no /health line: {run:?}"));
    assert!(line.contains("statuses 200="), "{line}");
    let row = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("/health ") && l.contains("400/500"))
        .unwrap_or_else(|| panic!("no /health verdict row: {run:?}"));
    assert!(row.ends_with("pass"), "{row}");
}

fn check_artifacts(scenario: &str) {
    let dir = TempDir::new(&format!("profile-{scenario}"));
    let run = profile(&dir, &[scenario, "--duration", "3"]);
    assert_eq!(run.code(), 0, "{run:?}");
    let names: Vec<String> = fs::read_dir(dir.join("out"))
        .expect("output dir created")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for suffix in [
        "cpu-prof.md",
        "cpu-prof.pb.gz",
        "cpu-prof.svg",
        "heap-prof.md",
        "heap-prof.pb.gz",
    ] {
        let found = names.iter().find(|name| {
            name.starts_with(&format!("{scenario}-")) && name.ends_with(&format!(".{suffix}"))
        });
        let name = found.unwrap_or_else(|| panic!("no {suffix} in {names:?}: {run:?}"));
        // <scenario>-YYYYMMDD_HHMMSS.<suffix>
        let stamp = &name[scenario.len() + 1..name.len() - suffix.len() - 1];
        assert!(
            stamp.len() == 15 && stamp.as_bytes()[8] == b'_',
            "{name} has no timestamp"
        );
    }
    let cpu: PathBuf = dir
        .join("out")
        .join(names.iter().find(|n| n.ends_with(".cpu-prof.md")).unwrap());
    let text = fs::read_to_string(cpu).unwrap();
    assert!(
        text.contains(&format!("| scenario | {scenario} |")),
        "{text}"
    );
    assert!(text.contains("| p95_ms | "), "{text}");
    // The full report is beside the profiles; the terminal gets the summary.
    let analysis = names.iter().find(|n| n.ends_with(".analysis.md"));
    let analysis = analysis.unwrap_or_else(|| panic!("no analysis.md in {names:?}"));
    assert!(
        names.iter().any(|n| n.ends_with(".analysis.json")),
        "{names:?}"
    );
    let report = fs::read_to_string(dir.join("out").join(analysis)).unwrap();
    assert!(report.contains("# Profile Analysis Report"), "{report}");
    assert!(report.contains("auth_service::"), "{report}");
    assert!(!run.stdout.contains("# Profile Analysis Report"), "{run:?}");
    assert!(
        run.stdout.contains("full report: ./run.sh analyze"),
        "{run:?}"
    );
}

#[test]
fn tokens_profile_stores_complete_artifacts() {
    check_artifacts("tokens");
}

#[test]
fn mixed_profile_stores_complete_artifacts() {
    check_artifacts("mixed");
}

/// A stand-in for a running server with the debug API (SPEC 5), on 127.0.0.1 port 0 inside
/// the test process: every non-debug path answers 200, the session's artifacts are fixture
/// profiles, and one artifact is sent chunked so that path of the client is exercised.
struct FakeTarget {
    url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    calls: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeTarget {
    fn start() -> FakeTarget {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        use std::time::Duration;

        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
        let url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..4 {
            let (server, stop, calls) =
                (Arc::clone(&server), Arc::clone(&stop), Arc::clone(&calls));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(50)) else {
                        continue;
                    };
                    let path = request.url().to_owned();
                    if path.starts_with("/debug/") {
                        calls
                            .lock()
                            .unwrap()
                            .push(format!("{} {path}", request.method()));
                    }
                    let fixture = |name: &str| {
                        fs::read(format!(
                            "{}/tests/fixtures/{name}",
                            env!("CARGO_MANIFEST_DIR")
                        ))
                        .unwrap()
                    };
                    let body: Vec<u8> = match path.as_str() {
                        "/debug/profiling/start?type=both" => {
                            br#"{"success":true,"message":"Profiling session started","sessionId":"profile-1-ab","type":"both"}"#.to_vec()
                        }
                        "/debug/profiling/stop" => br#"{"success":true,"message":"Profiling session stopped","sessionId":"profile-1-ab","duration":"1.0s","artifacts":["/srv/profiles/CPU.20260101_120000.7.md","Heap.20260101_120000.7.md"]}"#.to_vec(),
                        "/debug/profiling/reports" => br#"{"reports":[{"sessionId":"profile-1-ab","type":"cpu","filename":"CPU.20260101_120000.7.svg","size":6,"created":"x"},{"sessionId":"profile-0-old","type":"cpu","filename":"CPU.20250101_120000.7.md","size":6,"created":"x"}],"total":2}"#.to_vec(),
                        "/debug/profiling/report?file=CPU.20260101_120000.7.md" => {
                            fixture("tokens-after.cpu-prof.md")
                        }
                        "/debug/profiling/report?file=Heap.20260101_120000.7.md" => {
                            // Chunked: no declared length.
                            let data = fixture("tokens-after.heap-prof.md");
                            let response = tiny_http::Response::new(
                                tiny_http::StatusCode(200),
                                vec![],
                                std::io::Cursor::new(data),
                                None,
                                None,
                            );
                            let _ = request.respond(response);
                            continue;
                        }
                        "/debug/profiling/report?file=CPU.20260101_120000.7.svg" => b"<svg/>".to_vec(),
                        p if p.starts_with("/debug/") => {
                            let _ = request.respond(tiny_http::Response::empty(404));
                            continue;
                        }
                        _ => br#"{"access_token":"a.b.c","expires_in":900,"token_type":"Bearer"}"#.to_vec(),
                    };
                    let _ = request.respond(tiny_http::Response::from_data(body));
                }
            });
        }
        FakeTarget { url, stop, calls }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Drop for FakeTarget {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn load_with_profiling_downloads_the_session_artifacts() {
    let target = FakeTarget::start();
    let dir = TempDir::new("load-profiling");
    let results = dir.join("results").display().to_string();
    let run = support::run(
        Some(&dir.path),
        &[
            "load",
            "smoke",
            "--endpoint",
            "health",
            "--profile",
            "--url",
            &target.url,
            "--results-dir",
            &results,
        ],
        &[("K6_SMOKE_VUS", "1"), ("K6_SMOKE_DURATION", "1s")],
    );
    assert_eq!(run.code(), 0, "{run:?}");
    let mut names: Vec<String> = fs::read_dir(dir.join("results").join("profiling"))
        .expect("profiling dir")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "CPU.20260101_120000.7.analysis.json",
            "CPU.20260101_120000.7.analysis.md",
            "CPU.20260101_120000.7.md",
            "CPU.20260101_120000.7.svg",
            "Heap.20260101_120000.7.md"
        ],
        "{run:?}"
    );
    // The run's own p95/p99 reach the profile, and the summary is printed.
    let cpu = fs::read_to_string(dir.join("results/profiling/CPU.20260101_120000.7.md")).unwrap();
    assert!(cpu.contains("| load_profile | smoke |"), "{cpu}");
    assert!(cpu.contains("| p95_ms@/health | "), "{cpu}");
    assert!(cpu.contains("| threshold_p95_ms@/health | 400 |"), "{cpu}");
    assert!(run.stdout.contains("load smoke: SLA "), "{run:?}");
    let analysis =
        fs::read_to_string(dir.join("results/profiling/CPU.20260101_120000.7.analysis.md"))
            .unwrap();
    assert!(
        analysis.contains("| Latency p95 /health | ") && analysis.contains("400 ms SLA"),
        "the load run's verdict reaches the report: {analysis}"
    );
    assert!(
        run.stdout.contains("CPU.20260101_120000.7.analysis.md"),
        "{run:?}"
    );
    let heap = fs::read(dir.join("results/profiling/Heap.20260101_120000.7.md")).unwrap();
    let fixture = fs::read(format!(
        "{}/tests/fixtures/tokens-after.heap-prof.md",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert_eq!(heap, fixture, "the chunked download is intact");
    let calls = target.calls();
    assert_eq!(
        calls[0], "POST /debug/profiling/start?type=both",
        "{calls:?}"
    );
    assert_eq!(calls[1], "POST /debug/profiling/stop", "{calls:?}");
}

#[test]
fn profile_url_stores_the_remote_session_under_scenario_names() {
    let target = FakeTarget::start();
    let dir = TempDir::new("profile-remote");
    let run = profile(
        &dir,
        &[
            "tokens",
            "--url",
            &target.url,
            "--duration",
            "1",
            "--concurrency",
            "2",
        ],
    );
    assert_eq!(run.code(), 0, "{run:?}");
    let mut names: Vec<String> = fs::read_dir(dir.join("out"))
        .expect("output dir")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let suffixes: Vec<&str> = names.iter().map(|n| n.split_once('.').unwrap().1).collect();
    assert_eq!(
        suffixes,
        [
            "analysis.json",
            "analysis.md",
            "cpu-prof.md",
            "cpu-prof.svg",
            "heap-prof.md"
        ],
        "{names:?}"
    );
    assert!(names.iter().all(|n| n.starts_with("tokens-")), "{names:?}");
    let cpu = fs::read_to_string(dir.join("out").join(&names[2])).unwrap();
    for row in [
        "| scenario | tokens |",
        "| route | /tokens |",
        "| p95_ms | ",
        "| p99_ms | ",
        "| requests | ",
        "| rps | ",
    ] {
        assert!(cpu.contains(row), "{row} missing:\n{cpu}");
    }
    assert!(run.stdout.contains("profile tokens: "), "{run:?}");
    assert!(run.stdout.contains("top findings"), "{run:?}");
    assert!(
        target
            .calls()
            .contains(&"POST /debug/profiling/start?type=both".to_owned())
    );
}
