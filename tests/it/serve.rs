//! The HTTP surface and lifecycle of `serve`: routing, CORS, request ids, limits, contained
//! panics, health, metrics, the OpenAPI document, and draining on SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use crate::support::{self, CONSUMER_ID, CONSUMER_NAME, Proc};

fn stack(envs: &[(&str, &str)]) -> (Proc, Proc) {
    let sim = support::kong_sim(&[]);
    let server = support::serve(&sim.url, envs);
    (sim, server)
}

/// Sends raw bytes and returns the status line of the answer.
fn raw_status_line(url: &str, request: &str) -> String {
    let answer = support::raw_exchange(url, request);
    answer.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn routing_cors_and_request_ids() {
    let (_sim, server) = stack(&[]);
    let url = &server.url;
    let missing = support::get(&format!("{url}/nope"), &[]);
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(missing.json()["type"], "about:blank");

    let wrong_method = support::request("DELETE", &format!("{url}/tokens"), &[], None);
    assert_eq!(wrong_method.status, 405);
    assert_eq!(
        wrong_method.header("allow"),
        Some("GET, HEAD, POST, OPTIONS")
    );

    let preflight = support::request(
        "OPTIONS",
        &format!("{url}/tokens"),
        &[("Origin", "https://app.test")],
        None,
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-max-age"), Some("86400"));
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert!(preflight.header("access-control-allow-methods").is_some());
    assert!(
        preflight
            .header("access-control-allow-headers")
            .unwrap()
            .contains("X-Consumer-ID")
    );

    let echoed = support::get(
        &format!("{url}/health/live"),
        &[("X-Request-Id", "trace-abc.123_x")],
    );
    assert_eq!(echoed.header("x-request-id"), Some("trace-abc.123_x"));
    let replaced = support::get(
        &format!("{url}/health/live"),
        &[("X-Request-Id", "bad id!")],
    );
    let generated = replaced.header("x-request-id").unwrap();
    assert_eq!(generated.len(), 36, "a fresh UUID: {generated}");
    let problem = support::get(&format!("{url}/tokens"), &[("X-Request-Id", "req-42")]);
    assert_eq!(problem.json()["requestId"], "req-42");
}

#[test]
fn cors_origin_comes_from_config() {
    let (_sim, server) = stack(&[
        ("API_CORS_ORIGIN", "https://portal.test"),
        ("API_CORS_MAX_AGE", "600"),
    ]);
    let reply = support::request("OPTIONS", &format!("{}/health", server.url), &[], None);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://portal.test")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("600"));
}

#[test]
fn oversized_bodies_and_headers_are_refused_without_harm() {
    let (_sim, server) = stack(&[("MAX_REQUEST_BODY_SIZE", "1024")]);
    let declared_huge = raw_status_line(
        &server.url,
        "POST /tokens HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999\r\n\r\n",
    );
    assert_eq!(declared_huge, "HTTP/1.1 413 Payload Too Large");
    let over_limit = raw_status_line(
        &server.url,
        &format!(
            "POST /tokens HTTP/1.1\r\nHost: t\r\nContent-Length: 2048\r\n\r\n{}",
            "x".repeat(2048)
        ),
    );
    assert_eq!(over_limit, "HTTP/1.1 413 Payload Too Large");
    let big_header = support::get(
        &format!("{}/health/live", server.url),
        &[("X-Filler", &"y".repeat(9000))],
    );
    assert_eq!(big_header.status, 431);
    // A header line that never ends is cut off at 64 KiB, before any request exists: the
    // server answers 431 and closes (or the client sees the reset for the unread rest first);
    // it must not wait for the line to end.
    let addr = server.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let endless = format!(
        "GET /health/live HTTP/1.1\r\nX-Filler: {}",
        "z".repeat(200 * 1024)
    );
    let _ = stream.write_all(endless.as_bytes());
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(n) => {
            let reply = String::from_utf8_lossy(&buf[..n]);
            assert!(n == 0 || reply.starts_with("HTTP/1.1 431"), "{reply}");
        }
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}"),
    }
    let alive = support::get(&format!("{}/health/live", server.url), &[]);
    assert_eq!(
        alive.status,
        200,
        "the server survived: {}",
        server.output()
    );
}

#[test]
fn a_panicking_handler_fails_only_its_own_request() {
    let (_sim, server) = stack(&[]);
    let url = &server.url;
    let panicked = support::request("POST", &format!("{url}/debug/workload/panic"), &[], None);
    assert_eq!(panicked.status, 500);
    assert_eq!(panicked.json()["code"], "AUTH_008");
    for _ in 0..20 {
        let reply = support::get(
            &format!("{url}/tokens"),
            &support::consumer(CONSUMER_ID, CONSUMER_NAME),
        );
        assert_eq!(reply.status, 200);
    }
    let metrics = support::get(&format!("{url}/metrics?format=prometheus"), &[]).body;
    assert!(metrics.contains("http_handler_panics_total 1"), "{metrics}");
}

#[test]
fn health_endpoints_report_dependencies() {
    let (_sim, server) = stack(&[]);
    let url = &server.url;
    assert_eq!(support::get(&format!("{url}/health/live"), &[]).status, 200);
    assert_eq!(
        support::get(&format!("{url}/health/ready"), &[]).status,
        200
    );
    let health = support::get(&format!("{url}/health"), &[]).json();
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["dependencies"]["kong"]["status"], "healthy");
    assert_eq!(
        health["dependencies"]["kong"]["details"]["mode"],
        "API_GATEWAY"
    );
    assert_eq!(health["circuitBreakerState"], "closed");
    assert_eq!(health["environment"], "test");
    assert!(health["uptimeSeconds"].is_u64());
    assert!(
        health["slaMonitor"]["endpoints"]["/tokens"]["thresholdP95Ms"].is_u64(),
        "{health}"
    );
    assert!(health["profiling"].is_object());
    assert!(health["requestId"].is_string());

    let down = support::serve("http://127.0.0.1:9", &[]);
    let degraded = support::get(&format!("{}/health", down.url), &[]);
    assert_eq!(degraded.status, 200);
    assert_eq!(degraded.json()["status"], "degraded");
    assert_eq!(
        support::get(&format!("{}/health/ready", down.url), &[]).status,
        503
    );
}

#[test]
fn metrics_in_prometheus_text_and_json_views() {
    let (_sim, server) = stack(&[]);
    let url = &server.url;
    let issued = support::get(
        &format!("{url}/tokens"),
        &support::consumer(CONSUMER_ID, CONSUMER_NAME),
    );
    assert_eq!(issued.status, 200);
    let text = support::get(
        &format!("{url}/metrics"),
        &[("Accept", "text/plain;version=0.0.4")],
    );
    assert!(
        text.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    for name in [
        "http_requests_total{route=\"/tokens\",method=\"GET\",status=\"200\"} 1",
        "http_request_duration_seconds_bucket{route=\"/tokens\"",
        "kong_operations_total{operation=\"get_credentials\",result=\"success\"} 1",
        "kong_operation_duration_seconds_count",
        "kong_cache_hits_total",
        "kong_cache_misses_total 1",
        "kong_cache_stale_served_total",
        "kong_cache_entries 1",
        "circuit_breaker_state 0",
        "jwt_tokens_issued_total 1",
        "jwt_validations_total{result=\"valid\"}",
        "profiling_sessions_total{trigger=\"manual\"}",
        "profiling_active 0",
        "profiling_storage_bytes",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "heap_live_bytes",
        "heap_peak_bytes",
    ] {
        assert!(text.body.contains(name), "missing {name}");
    }
    assert!(
        !text.body.contains(CONSUMER_ID),
        "no consumer ids in metrics"
    );
    let prometheus = support::get(&format!("{url}/metrics?format=prometheus"), &[]);
    assert!(
        prometheus
            .body
            .contains("# TYPE http_requests_total counter")
    );

    let operational = support::get(&format!("{url}/metrics"), &[]).json();
    for field in [
        "timestamp",
        "uptime",
        "memory",
        "cache",
        "circuitBreakers",
        "kong",
    ] {
        assert!(operational.get(field).is_some(), "{field} in {operational}");
    }
    for view in ["infrastructure", "config", "full"] {
        assert_eq!(
            support::get(&format!("{url}/metrics?view={view}"), &[]).status,
            200
        );
    }
    let bad = support::get(&format!("{url}/metrics?view=everything"), &[]);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["code"], "AUTH_007");
    let config = support::get(&format!("{url}/metrics?view=config"), &[]).body;
    assert!(!config.to_lowercase().contains("secret"), "{config}");
}

#[test]
fn sigterm_during_a_burst_answers_every_request_and_exits_0() {
    let sim = support::kong_sim(&["--latency-ms", "300"]);
    let mut server = support::serve(
        &sim.url,
        &[
            ("CACHING_TTL_SECONDS", "0"),
            ("CIRCUIT_BREAKER_ENABLED", "false"),
            // Every worker may wait on the one flight: this test is about draining.
            ("KONG_MAX_WAITING_WORKERS", "1024"),
        ],
    );
    let url = server.url.clone();
    let replies = thread::scope(|scope| {
        let handles: Vec<_> = (0..24)
            .map(|_| {
                scope.spawn(|| {
                    support::get(
                        &format!("{url}/tokens"),
                        &support::consumer(CONSUMER_ID, CONSUMER_NAME),
                    )
                })
            })
            .collect();
        // The burst takes three rounds of 300 ms on 8 workers; stop in the middle of the first.
        thread::sleep(Duration::from_millis(150));
        server.signal(libc::SIGTERM);
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect::<Vec<_>>()
    });
    for reply in &replies {
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(reply.json()["access_token"].is_string(), "complete body");
    }
    let status = server.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", server.output());
}

#[test]
fn debug_routes_do_not_exist_in_production() {
    let (_sim, server) = stack(&[("APP_ENV", "production")]);
    for (method, path) in [
        ("GET", "/debug/profiling/status"),
        ("POST", "/debug/profiling/start"),
        ("GET", "/debug/pprof/"),
        ("GET", "/debug/pprof/heap"),
        ("POST", "/debug/workload/panic"),
    ] {
        let reply = support::request(method, &format!("{}{path}", server.url), &[], None);
        assert_eq!(reply.status, 404, "{method} {path}");
    }
}
