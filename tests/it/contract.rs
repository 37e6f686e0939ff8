//! The drop-in contract with the Bun service this binary replaces: the 404/405 bodies, the
//! OpenAPI document's caching and validity, the body `Content-Type` check, the AUTH_009
//! detail, the old `/metrics` memory keys and the profiling session states and cleanup.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{self, CONSUMER_ID, CONSUMER_NAME, Proc, Reply, TempDir, post};

fn stack(envs: &[(&str, &str)]) -> (Proc, Proc) {
    let sim = support::kong_sim(&[]);
    let server = support::serve(&sim.url, envs);
    (sim, server)
}

/// The problem+json fields every error body carries, with `instance` the request path.
fn assert_problem_layout(reply: &Reply, path: &str) -> Value {
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    let body = reply.json();
    assert_eq!(body["status"], reply.status, "{body}");
    assert_eq!(body["instance"], path, "{body}");
    assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(
        body["requestId"].as_str(),
        reply.header("x-request-id"),
        "{body}"
    );
    body
}

#[test]
fn wrong_methods_get_the_old_services_405_body() {
    let (_sim, server) = stack(&[]);
    let url = &server.url;
    for (method, path, allow) in [
        ("DELETE", "/tokens", "GET, HEAD, POST, OPTIONS"),
        ("PUT", "/tokens/validate", "GET, HEAD, POST, OPTIONS"),
        ("POST", "/health", "GET, HEAD, OPTIONS"),
        ("PATCH", "/metrics", "GET, HEAD, OPTIONS"),
        ("DELETE", "/", "GET, HEAD, OPTIONS"),
        ("GET", "/debug/profiling/start", "POST, OPTIONS"),
        ("POST", "/debug/profiling/status", "GET, HEAD, OPTIONS"),
    ] {
        let reply = support::request(method, &format!("{url}{path}"), &[], None);
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
        let body = assert_problem_layout(&reply, path);
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], "Method Not Allowed");
        assert_eq!(
            body["detail"],
            format!(
                "The requested method is not allowed for this endpoint. Allowed methods: {allow}"
            )
        );
        let listed: Vec<&str> = allow.split(", ").collect();
        assert_eq!(body["extensions"]["allowedMethods"], json!(listed));
    }
    // HEAD is answered wherever GET is (RFC 9110), the old service's 405 is not copied.
    let head = support::request(
        "HEAD",
        &format!("{url}/tokens"),
        &support::consumer(CONSUMER_ID, CONSUMER_NAME),
        None,
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        support::request("HEAD", &format!("{url}/debug/profiling/status"), &[], None).status,
        200
    );
}

#[test]
fn unknown_paths_get_the_old_services_404_body() {
    let (_sim, server) = stack(&[]);
    for path in ["/x", "/tokens/nope", "/debug/nothing"] {
        let reply = support::get(
            &format!("{}{path}", server.url),
            &[("X-Request-Id", "r-404")],
        );
        assert_eq!(reply.status, 404, "{path}");
        let body = assert_problem_layout(&reply, path);
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], "Not Found");
        assert_eq!(
            body["detail"],
            format!("The requested resource '{path}' was not found")
        );
        assert_eq!(body["requestId"], "r-404");
        assert_eq!(body["extensions"]["requestId"], "r-404");
        assert!(body.get("code").is_none());
    }
}

#[test]
fn openapi_caching_is_per_representation() {
    let (_sim, server) = stack(&[]);
    let root = format!("{}/", server.url);
    let yaml_accept = ("Accept", "application/yaml");
    let json_doc = support::get(&root, &[]);
    let yaml_doc = support::get(&root, &[yaml_accept]);
    for reply in [&json_doc, &yaml_doc] {
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("cache-control"), Some("public, max-age=300"));
        assert_eq!(reply.header("vary"), Some("Accept"));
        assert!(
            reply
                .header("last-modified")
                .is_some_and(|d| d.ends_with(" GMT"))
        );
    }
    assert_eq!(json_doc.header("content-type"), Some("application/json"));
    assert_eq!(yaml_doc.header("content-type"), Some("application/yaml"));
    let json_tag = json_doc.header("etag").expect("ETag").to_owned();
    let yaml_tag = yaml_doc.header("etag").expect("ETag").to_owned();
    assert_ne!(json_tag, yaml_tag, "one ETag per representation");

    // The bug this fixes: a YAML copy revalidated with the JSON's ETag must not get 304.
    let crossed = support::get(&root, &[yaml_accept, ("If-None-Match", &json_tag)]);
    assert_eq!(crossed.status, 200);
    assert_eq!(crossed.header("content-type"), Some("application/yaml"));
    for (accept, tag) in [
        ("application/json", &json_tag),
        ("application/yaml", &yaml_tag),
    ] {
        let weak = format!("W/{tag}");
        for candidate in [tag.as_str(), weak.as_str(), "\"other\", *"] {
            let fresh = support::get(&root, &[("Accept", accept), ("If-None-Match", candidate)]);
            assert_eq!(fresh.status, 304, "{accept} {candidate}");
            assert!(fresh.body.is_empty());
            assert_eq!(fresh.header("etag"), Some(tag.as_str()));
            assert_eq!(fresh.header("cache-control"), Some("public, max-age=300"));
            assert_eq!(fresh.header("vary"), Some("Accept"));
        }
    }

    let last_modified = json_doc.header("last-modified").unwrap().to_owned();
    let since_then = support::get(&root, &[("If-Modified-Since", &last_modified)]);
    assert_eq!(since_then.status, 304);
    assert_eq!(
        since_then.header("cache-control"),
        Some("public, max-age=300")
    );
    let long_ago = [("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")];
    assert_eq!(support::get(&root, &long_ago).status, 200);
    assert_eq!(
        support::get(&root, &[("If-Modified-Since", "not a date")]).status,
        200
    );
    // If-None-Match decides when both are sent (RFC 9110 13.2.2).
    let mismatched = support::get(
        &root,
        &[
            ("If-None-Match", "\"other\""),
            ("If-Modified-Since", &last_modified),
        ],
    );
    assert_eq!(mismatched.status, 200);
}

#[test]
fn openapi_document_is_a_valid_openapi_3_1_document() {
    let (_sim, server) = stack(&[]);
    let document = support::get(&format!("{}/", server.url), &[]).json();
    assert_eq!(document["openapi"], "3.1.1");
    assert_eq!(document["info"]["title"], "Authentication Service API");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(document["info"]["description"].as_str().is_some());

    let schema_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openapi-3.1-schema.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the official schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&document)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    // The same check catches a broken document, so it is not vacuous.
    let mut broken = document.clone();
    broken["paths"]["/tokens"]["get"]["responses"] = json!("not an object");
    assert!(!validator.is_valid(&broken));

    let yaml = support::get(&format!("{}/", server.url), &[("Accept", "text/yaml")]);
    assert!(
        yaml.body
            .lines()
            .any(|line| line == "\"openapi\": \"3.1.1\"")
    );
}

#[test]
fn bodies_with_unsupported_content_types_are_refused_before_routing() {
    let (_sim, server) = stack(&[]);
    let url = &server.url;
    let consumer = support::consumer(CONSUMER_ID, CONSUMER_NAME);
    let send = |path: &str, content_type: Option<&str>, body: &str| {
        let mut headers = consumer.to_vec();
        if let Some(content_type) = content_type {
            headers.push(("Content-Type", content_type));
        }
        support::request("POST", &format!("{url}{path}"), &headers, Some(body))
    };

    for (path, content_type) in [
        ("/tokens", Some("text/plain")),
        ("/tokens", Some("application/xml; charset=utf-8")),
        ("/nope", Some("text/plain")),
        ("/health", Some("multipart/form-data; boundary=x")),
    ] {
        let reply = send(path, content_type, "hello");
        assert_eq!(reply.status, 400, "{path} {content_type:?}: {}", reply.body);
        let body = assert_problem_layout(&reply, path);
        assert_eq!(body["code"], "AUTH_007");
        assert_eq!(body["title"], "Invalid Request Format");
        assert_eq!(
            body["extensions"]["reason"],
            "Invalid or unsupported Content-Type"
        );
        assert_eq!(body["extensions"]["provided"], json!(content_type));
        assert_eq!(
            body["extensions"]["accepted"],
            json!(["application/json", "application/x-www-form-urlencoded"])
        );
    }
    // A body without any Content-Type is refused the same way; ureq labels a text body itself,
    // so this one goes over a raw socket.
    let raw = support::raw_exchange(
        url,
        "POST /tokens HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(raw.contains("\"provided\":null"), "{raw}");

    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        "application/x-www-form-urlencoded",
    ] {
        let reply = send("/tokens", Some(content_type), "{}");
        assert_eq!(reply.status, 200, "{content_type}: {}", reply.body);
    }
    // No body, no check: the header alone is not a body.
    let empty = send("/tokens", Some("text/plain"), "");
    assert_eq!(empty.status, 200, "{}", empty.body);
}

#[test]
fn anonymous_consumers_get_the_old_services_detail() {
    let (_sim, server) = stack(&[]);
    let mut headers = support::consumer(CONSUMER_ID, CONSUMER_NAME).to_vec();
    headers.push(("X-Anonymous-Consumer", "TRUE"));
    let reply = support::get(&format!("{}/tokens", server.url), &headers);
    assert_eq!(reply.status, 401);
    let body = assert_problem_layout(&reply, "/tokens");
    assert_eq!(body["code"], "AUTH_009");
    assert_eq!(
        body["detail"],
        "Anonymous consumers are not allowed to request tokens"
    );
    assert_eq!(
        body["extensions"]["reason"],
        "Anonymous consumers are not allowed"
    );
}

#[test]
fn metrics_json_memory_keeps_the_old_keys_in_mib() {
    let (_sim, server) = stack(&[]);
    const MIB: f64 = 1024.0 * 1024.0;
    for view in ["", "?view=operational", "?view=full"] {
        let metrics = support::get(&format!("{}/metrics{view}", server.url), &[]).json();
        let memory = metrics
            .get("memory")
            .or_else(|| metrics["operational"].get("memory"))
            .unwrap_or_else(|| panic!("no memory in {view}: {metrics}"));
        let mib = |key: &str| {
            memory[key]
                .as_u64()
                .unwrap_or_else(|| panic!("{key} is not a whole number: {memory}"))
        };
        let (used, total, rss, external) = (mib("used"), mib("total"), mib("rss"), mib("external"));
        let bytes = |key: &str| memory[key].as_u64().unwrap() as f64;
        assert_eq!(
            used,
            (bytes("heapLiveBytes") / MIB).round() as u64,
            "{memory}"
        );
        assert_eq!(
            rss,
            (bytes("residentBytes") / MIB).round() as u64,
            "{memory}"
        );
        assert!(rss >= 1 && total >= used, "{memory}");
        // Heap total and everything else make up the resident set (each rounded once).
        assert!((total + external).abs_diff(rss) <= 1, "{memory}");
    }
}

fn statuses(url: &str) -> (Value, Vec<String>) {
    let status = support::get(&format!("{url}/debug/profiling/status"), &[]).json();
    let states = status["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|session| session["status"].as_str().unwrap().to_owned())
        .collect();
    (status, states)
}

#[test]
fn profiling_sessions_use_the_old_state_names() {
    let dir = TempDir::new("contract-states");
    let reports = dir.join("reports");
    let server = support::serve_profiling(&reports, &[]);
    let url = &server.url;

    let started = post(&format!("{url}/debug/profiling/start?seconds=60"));
    assert_eq!(started.status, 200, "{}", started.body);
    let (status, states) = statuses(url);
    assert_eq!(status["activeSession"]["status"], "running");
    assert_eq!(states, ["running"]);
    let health = support::get(&format!("{url}/health"), &[]).json();
    assert_eq!(health["profiling"]["activeSession"]["status"], "running");
    assert_eq!(post(&format!("{url}/debug/profiling/stop")).status, 200);
    assert_eq!(statuses(url).0["lastSession"]["status"], "stopped");

    // Its own seconds running out is `completed`.
    assert_eq!(
        post(&format!("{url}/debug/profiling/start?seconds=1")).status,
        200
    );
    support::eventually(Duration::from_secs(30), "the 1 s session to end", || {
        (statuses(url).0["active"] == false).then_some(())
    });
    assert_eq!(statuses(url).1, ["completed", "stopped"]);

    // Artifacts that cannot be written make the session `failed`, with the reason.
    assert_eq!(
        post(&format!("{url}/debug/profiling/start?seconds=60")).status,
        200
    );
    std::fs::remove_dir_all(&reports).unwrap();
    std::fs::write(&reports, b"a file where the directory was").unwrap();
    let stopped = post(&format!("{url}/debug/profiling/stop"));
    assert_eq!(stopped.status, 500, "{}", stopped.body);
    assert!(
        stopped.json()["detail"]
            .as_str()
            .unwrap()
            .contains("cannot write")
    );
    let (status, states) = statuses(url);
    assert_eq!(states, ["failed", "completed", "stopped"]);
    assert!(
        !status["lastSession"]["errors"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let health = support::get(&format!("{url}/health"), &[]).json();
    assert_eq!(health["profiling"]["lastSession"]["status"], "failed");
}

#[test]
fn profiling_cleanup_stops_the_running_session_so_the_next_start_succeeds() {
    let dir = TempDir::new("contract-cleanup");
    let server = support::serve_profiling(&dir.path, &[]);
    let url = &server.url;
    let started = post(&format!("{url}/debug/profiling/start?type=cpu&seconds=120"));
    assert_eq!(started.status, 200, "{}", started.body);
    let mut running = started.json()["sessionId"].as_str().unwrap().to_owned();

    for method in ["POST", "DELETE"] {
        let cleaned =
            support::request(method, &format!("{url}/debug/profiling/cleanup"), &[], None);
        assert_eq!(cleaned.status, 200, "{}", cleaned.body);
        let body = cleaned.json();
        assert_eq!(body["message"], "Profiling cleanup completed");
        assert_eq!(body["stoppedSession"], running.as_str());
        // The stopped session's three CPU files were written, then cleaned with the rest.
        assert_eq!(body["cleaned"], json!({"reports": 3, "sessions": 1}));
        let (status, states) = statuses(url);
        assert_eq!(status["active"], false);
        assert!(states.is_empty(), "{states:?}");
        let again = post(&format!("{url}/debug/profiling/start?seconds=120"));
        assert_eq!(again.status, 200, "{}", again.body);
        running = again.json()["sessionId"].as_str().unwrap().to_owned();
    }
    assert_eq!(post(&format!("{url}/debug/profiling/stop")).status, 200);
}
