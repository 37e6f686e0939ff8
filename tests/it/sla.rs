//! The SLA monitor end to end: a slow kong-sim makes `/tokens` violate its threshold, and the
//! service profiles itself once, into `CONTINUOUS_PROFILING_OUTPUT_DIR`, or says why not.
//! No timing assertions: every wait is `eventually`, every check is on files, `/health` and
//! `/metrics`.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::{self, CONSUMER_ID, CONSUMER_NAME, Proc, TempDir, request};

const WAIT: Duration = Duration::from_secs(90);

/// `serve` against `sim` with continuous profiling on, no credential cache (every `/tokens`
/// goes to Kong), 2-second automatic sessions into `dir`; `extra` wins.
fn serve(sim: &Proc, dir: &TempDir, extra: &[(&str, &str)]) -> Proc {
    let auto = dir.path.to_string_lossy().into_owned();
    let manual = dir.join("manual").to_string_lossy().into_owned();
    let mut envs = vec![
        ("CONTINUOUS_PROFILING_ENABLED", "true"),
        ("CONTINUOUS_PROFILING_DURATION_SECONDS", "2"),
        ("CONTINUOUS_PROFILING_OUTPUT_DIR", auto.as_str()),
        ("PROFILING_OUTPUT_DIR", manual.as_str()),
        ("CACHING_TTL_SECONDS", "0"),
    ];
    envs.extend_from_slice(extra);
    support::serve(&sim.url, &envs)
}

fn tokens(server: &Proc, count: usize) {
    for _ in 0..count {
        let reply = support::get(
            &format!("{}/tokens", server.url),
            &support::consumer(CONSUMER_ID, CONSUMER_NAME),
        );
        assert_eq!(reply.status, 200, "{reply:?}\n{}", server.output());
    }
}

fn sla(server: &Proc) -> Value {
    support::get(&format!("{}/health", server.url), &[]).json()["slaMonitor"].clone()
}

fn prometheus(server: &Proc) -> String {
    support::get(&format!("{}/metrics?format=prometheus", server.url), &[]).body
}

/// The value of the sample line starting with `series ` (labels included).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// File names in `dir` (not recursive) containing `-sla-violation-`, sorted.
fn auto_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.contains("-sla-violation-") && !name.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The value of `| field | value |` in the report's `## Profile Metadata` table.
fn metadata<'a>(md: &'a str, field: &str) -> Option<&'a str> {
    let table = md.split("## Profile Metadata").nth(1)?;
    let prefix = format!("| {field} | ");
    table
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map(|rest| rest.trim_end_matches('|').trim())
}

/// Waits for exactly one finished automatic profile of `/tokens` in `dir` and checks it.
fn one_complete_tokens_profile(server: &Proc, dir: &TempDir) -> String {
    let md = support::eventually(WAIT, "an automatic /tokens profile", || {
        let names = auto_files(&dir.path);
        let md = names.iter().find(|n| n.ends_with(".cpu-prof.md"))?.clone();
        // The heap report is written after the CPU ones: all files are there once it is.
        names
            .iter()
            .any(|n| n.ends_with(".heap-prof.md"))
            .then_some(md)
    });
    let names = auto_files(&dir.path);
    let stem = md.strip_suffix(".cpu-prof.md").unwrap();
    assert!(
        stem.starts_with("tokens-sla-violation-")
            && stem.len() == "tokens-sla-violation-".len() + 15,
        "{names:?}"
    );
    for suffix in [
        ".cpu-prof.md",
        ".cpu-prof.pb.gz",
        ".cpu-prof.svg",
        ".heap-prof.md",
    ] {
        assert!(
            names.contains(&format!("{stem}{suffix}")),
            "{suffix} missing: {names:?}\n{}",
            server.output()
        );
    }
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".cpu-prof.md")).count(),
        1,
        "{names:?}"
    );
    let text = std::fs::read_to_string(dir.join(&md)).unwrap();
    assert_eq!(metadata(&text, "trigger"), Some("sla"), "{text}");
    assert_eq!(metadata(&text, "route"), Some("/tokens"), "{text}");
    let p95: f64 = metadata(&text, "p95_ms").unwrap().parse().unwrap();
    assert!(p95 > 100.0, "{text}");
    assert_eq!(metadata(&text, "threshold_p95_ms"), Some("100"));
    assert!(metadata(&text, "overhead_percent").is_some(), "{text}");
    assert!(metadata(&text, "window_samples").is_some(), "{text}");
    let heap = std::fs::read_to_string(dir.join(&format!("{stem}.heap-prof.md"))).unwrap();
    assert_eq!(metadata(&heap, "route"), Some("/tokens"), "{heap}");
    text
}

#[test]
fn a_slow_route_is_profiled_once_then_throttled() {
    let sim = support::kong_sim(&["--latency-ms", "150"]);
    let dir = TempDir::new("sla-slow");
    let mut server = serve(&sim, &dir, &[]);
    tokens(&server, 12);
    let md = one_complete_tokens_profile(&server, &dir);
    assert_eq!(metadata(&md, "stopped_by"), Some("duration"), "{md}");

    let status = support::eventually(WAIT, "the session to end", || {
        let sla = sla(&server);
        sla["activeSession"].is_null().then_some(sla)
    });
    let tokens_sla = &status["endpoints"]["/tokens"];
    assert_eq!(tokens_sla["violating"], true, "{status}");
    assert!(tokens_sla["lastTrigger"].is_string(), "{status}");
    assert!(tokens_sla["p95Ms"].as_f64().unwrap() > 100.0, "{status}");
    assert!(tokens_sla["samples"].as_u64().unwrap() >= 12, "{status}");
    assert_eq!(tokens_sla["thresholdP95Ms"], 100);
    assert!(
        status["storage"]["usedBytes"].as_u64().unwrap() > 0,
        "{status}"
    );

    // Still slow after the session: blocked by the throttle, and no second profile.
    tokens(&server, 12);
    support::eventually(WAIT, "a throttled decision", || {
        (sla(&server)["lastBlockedReason"] == "throttled").then_some(())
    });
    let text = prometheus(&server);
    assert!(
        metric(&text, "profiling_blocked_total{reason=\"throttled\"}").unwrap() >= 1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "sla_violations_total{endpoint=\"/tokens\",triggered=\"true\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        metric(&text, "sla_p95_seconds{route=\"/tokens\"}").unwrap() > 0.1,
        "{text}"
    );
    assert!(
        metric(&text, "profiling_storage_bytes").unwrap() > 0.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "sla_samples_dropped_total"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        auto_files(&dir.path)
            .iter()
            .filter(|n| n.ends_with(".cpu-prof.md"))
            .count(),
        1
    );
    assert!(server.terminate().success(), "{}", server.output());
    // Logged once per decision, not once per tick.
    let stderr = server.stderr();
    assert_eq!(
        stderr.matches("no automatic profile: throttled").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn over_the_storage_quota_nothing_is_profiled() {
    let sim = support::kong_sim(&["--latency-ms", "150"]);
    let dir = TempDir::new("sla-quota");
    std::fs::write(dir.join("old.cpu-prof.pb.gz"), vec![0u8; 2 * 1024 * 1024]).unwrap();
    let server = serve(
        &sim,
        &dir,
        &[("CONTINUOUS_PROFILING_MAX_STORAGE_GB", "0.001")],
    );
    tokens(&server, 12);
    let status = support::eventually(WAIT, "a storage_quota decision", || {
        let sla = sla(&server);
        (sla["lastBlockedReason"] == "storage_quota").then_some(sla)
    });
    assert_eq!(
        status["endpoints"]["/tokens"]["violating"], true,
        "{status}"
    );
    assert!(
        status["endpoints"]["/tokens"]["lastTrigger"].is_null(),
        "{status}"
    );
    assert!(
        status["lastBlockedMessage"]
            .as_str()
            .is_some_and(|m| m.starts_with("Storage quota exceeded")),
        "{status}"
    );
    assert_eq!(status["storage"]["usedBytes"], 2 * 1024 * 1024, "{status}");
    assert_eq!(status["storage"]["quotaBytes"], 1_073_741, "{status}");
    let text = prometheus(&server);
    assert_eq!(
        metric(&text, "profiling_blocked_total{reason=\"storage_quota\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "sla_violations_total{endpoint=\"/tokens\",triggered=\"false\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        auto_files(&dir.path).is_empty(),
        "{:?}",
        auto_files(&dir.path)
    );
    // The log says it in the words users search for, then the detail.
    let stderr = server.stderr();
    assert!(
        stderr.contains(
            "no automatic profile: Storage quota exceeded: CONTINUOUS_PROFILING_MAX_STORAGE_GB"
        ),
        "{stderr}"
    );
}

#[test]
fn a_manual_session_blocks_then_the_episode_triggers_when_it_ends() {
    let sim = support::kong_sim(&["--latency-ms", "150"]);
    let dir = TempDir::new("sla-busy");
    let server = serve(&sim, &dir, &[]);
    let started = request(
        "POST",
        &format!("{}/debug/profiling/start?type=cpu", server.url),
        &[],
        None,
    );
    assert_eq!(started.status, 200, "{started:?}");
    tokens(&server, 12);
    support::eventually(WAIT, "a busy decision", || {
        (sla(&server)["lastBlockedReason"] == "busy").then_some(())
    });
    let text = prometheus(&server);
    assert_eq!(
        metric(&text, "profiling_blocked_total{reason=\"busy\"}"),
        Some(1.0),
        "{text}"
    );
    assert!(auto_files(&dir.path).is_empty());

    let stopped = request(
        "POST",
        &format!("{}/debug/profiling/stop", server.url),
        &[],
        None,
    );
    assert_eq!(stopped.status, 200, "{stopped:?}");
    assert_eq!(stopped.json()["sessionId"], started.json()["sessionId"]);
    // The episode goes on and the profiler is free: now it is profiled (and, once that
    // session ended, throttled: a third decision of the same episode).
    one_complete_tokens_profile(&server, &dir);
    let text = prometheus(&server);
    assert_eq!(
        metric(
            &text,
            "sla_violations_total{endpoint=\"/tokens\",triggered=\"true\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "profiling_blocked_total{reason=\"busy\"}"),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn disabled_still_detects_and_reports() {
    let sim = support::kong_sim(&["--latency-ms", "150"]);
    let dir = TempDir::new("sla-disabled");
    let server = serve(&sim, &dir, &[("CONTINUOUS_PROFILING_ENABLED", "false")]);
    tokens(&server, 12);
    let status = support::eventually(WAIT, "a disabled decision", || {
        let sla = sla(&server);
        (sla["lastBlockedReason"] == "disabled").then_some(sla)
    });
    assert_eq!(status["enabled"], false);
    assert_eq!(
        status["endpoints"]["/tokens"]["violating"], true,
        "{status}"
    );
    let text = prometheus(&server);
    assert_eq!(
        metric(&text, "profiling_blocked_total{reason=\"disabled\"}"),
        Some(1.0),
        "{text}"
    );
    assert!(auto_files(&dir.path).is_empty());
}

#[test]
fn shutdown_finishes_a_running_automatic_profile() {
    let sim = support::kong_sim(&["--latency-ms", "150"]);
    let dir = TempDir::new("sla-shutdown");
    let mut server = serve(
        &sim,
        &dir,
        &[("CONTINUOUS_PROFILING_DURATION_SECONDS", "300")],
    );
    tokens(&server, 12);
    support::eventually(WAIT, "an active automatic session", || {
        sla(&server)["activeSession"].as_str().map(str::to_owned)
    });
    assert!(auto_files(&dir.path).is_empty());
    assert!(server.terminate().success(), "{}", server.output());
    let md = one_complete_tokens_profile(&server, &dir);
    assert_eq!(metadata(&md, "stopped_by"), Some("shutdown"), "{md}");
}

#[test]
fn a_fast_route_is_not_profiled() {
    let sim = support::kong_sim(&[]);
    let dir = TempDir::new("sla-fast");
    let server = serve(&sim, &dir, &[("CACHING_TTL_SECONDS", "300")]);
    tokens(&server, 200);
    let status = support::eventually(WAIT, "a full /tokens window", || {
        let sla = sla(&server);
        (sla["endpoints"]["/tokens"]["samples"] == 100).then_some(sla)
    });
    let tokens_sla = &status["endpoints"]["/tokens"];
    assert_eq!(tokens_sla["violating"], false, "{status}");
    assert!(tokens_sla["p95Ms"].as_f64().unwrap() < 100.0, "{status}");
    assert!(tokens_sla["lastTrigger"].is_null(), "{status}");
    assert!(status["lastBlockedReason"].is_null(), "{status}");
    assert!(status["activeSession"].is_null(), "{status}");
    let files: Vec<_> = std::fs::read_dir(&dir.path)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name())
                .collect()
        })
        .unwrap_or_default();
    assert!(files.is_empty(), "{files:?}");
}

/// Keep-alive `/tokens` requests from `clients` threads for `for_time`; the latencies they saw.
fn hammer(server: &Proc, clients: usize, for_time: Duration) -> Vec<Duration> {
    use std::io::{Read, Write};
    let addr = server.url.trim_start_matches("http://").to_owned();
    let request = format!(
        "GET /tokens HTTP/1.1\r\nHost: t\r\nX-Consumer-ID: {CONSUMER_ID}\r\nX-Consumer-Username: {CONSUMER_NAME}\r\n\r\n"
    );
    let until = std::time::Instant::now() + for_time;
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
                    stream
                        .set_read_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    let mut seen = Vec::new();
                    let mut buf = vec![0u8; 16 * 1024];
                    while std::time::Instant::now() < until && seen.len() < 200_000 {
                        let started = std::time::Instant::now();
                        stream.write_all(request.as_bytes()).unwrap();
                        // One response per request: headers end, then Content-Length bytes.
                        let mut got = Vec::new();
                        let complete = loop {
                            let n = stream.read(&mut buf).expect("read");
                            assert!(n > 0, "the server closed the connection");
                            got.extend_from_slice(&buf[..n]);
                            let text = String::from_utf8_lossy(&got);
                            if let Some(end) = text.find("\r\n\r\n") {
                                let length: usize = text[..end]
                                    .lines()
                                    .find_map(|l| l.strip_prefix("Content-Length: "))
                                    .and_then(|v| v.trim().parse().ok())
                                    .unwrap_or(0);
                                if got.len() >= end + 4 + length {
                                    break text.starts_with("HTTP/1.1 200");
                                }
                            }
                        };
                        assert!(complete, "{}", String::from_utf8_lossy(&got));
                        seen.push(started.elapsed());
                    }
                    seen
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|thread| thread.join().unwrap())
            .collect()
    })
}

/// Under `clients` hammering `/tokens` for 3 s: the latencies clients saw and the highest p95
/// the monitor published meanwhile.
fn load_and_watch(server: &Proc, clients: usize) -> (Vec<Duration>, Option<f64>) {
    std::thread::scope(|scope| {
        let load = scope.spawn(|| hammer(server, clients, Duration::from_secs(3)));
        let mut seen: Option<f64> = None;
        std::thread::sleep(Duration::from_millis(500));
        while !load.is_finished() {
            if let Some(p95) = sla(server)["endpoints"]["/tokens"]["p95Ms"].as_f64() {
                seen = Some(seen.map_or(p95, |best| best.max(p95)));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut latencies = load.join().unwrap();
        latencies.sort();
        (latencies, seen)
    })
}

#[test]
fn the_monitor_sees_the_queue_wait_clients_feel() {
    let sim = support::kong_sim(&[]);
    let dir = TempDir::new("sla-queue");
    // Cached credentials: the service time is small, and with 48 clients on the few cores
    // that take requests most of what a client feels is the wait in the queue.
    let cached = [
        ("CACHING_TTL_SECONDS", "300"),
        ("CONTINUOUS_PROFILING_BUFFER_SIZE", "2000"),
    ];
    let watch_only = [
        cached[0],
        cached[1],
        ("CONTINUOUS_PROFILING_AUTO_TRIGGER_ON_SLA", "false"),
    ];
    let server = serve(&sim, &dir, &watch_only);
    tokens(&server, 1);
    let (latencies, monitor_p95) = load_and_watch(&server, 48);
    let monitor_p95 = monitor_p95.expect("the monitor has a /tokens p95");
    let client_p95 = latencies[latencies.len() * 95 / 100].as_secs_f64() * 1000.0;
    let text = prometheus(&server);
    let service = metric(
        &text,
        "http_request_duration_seconds_sum{route=\"/tokens\"}",
    )
    .unwrap();
    let queue = metric(&text, "http_request_queue_seconds_sum{route=\"/tokens\"}").unwrap();
    assert!(queue > 0.0, "queue wait is measured");
    // Service time alone is a small part of what clients feel under this load; the monitor
    // must see about what the clients see, not that small part.
    assert!(
        monitor_p95 >= client_p95 * 0.4,
        "monitor p95 {monitor_p95:.3} ms vs client p95 {client_p95:.3} ms (service {service:.3} s, queue {queue:.3} s in all)"
    );
    drop(server);

    // A p95 threshold between the service time and what clients feel starts a profile.
    let threshold = format!("/tokens={:.3}:100000", client_p95 * 0.5);
    let mut envs = cached.to_vec();
    envs.push(("SLA_THRESHOLDS", threshold.as_str()));
    let dir = TempDir::new("sla-queue-trigger");
    let server = serve(&sim, &dir, &envs);
    tokens(&server, 1);
    load_and_watch(&server, 48);
    support::eventually(WAIT, "an automatic profile of /tokens", || {
        let text = prometheus(&server);
        (metric(&text, "profiling_sessions_total{trigger=\"sla\"}")? >= 1.0).then_some(())
    });
}
