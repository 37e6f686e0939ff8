//! `auth-service kong-sim` as a process: Kong's Admin API shapes over real HTTP, the
//! simulator's knobs (admin token, fail rate, seed file) and its `/_sim/stats` hook.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{self, Proc, TempDir};

const FIRST_ID: &str = "00000000-0000-4000-8000-000000000001";

fn sim(extra: &[&str]) -> Proc {
    support::kong_sim(extra)
}

fn post(url: &str, body: Value) -> support::Reply {
    support::post_json(url, body)
}

fn is_kong_random(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[test]
fn prints_url_then_seeded_consumers() {
    let sim = sim(&["--consumers", "2"]);
    // The harness returns at the listening line; the consumer lines may still be in flight.
    let stdout = support::eventually(Duration::from_secs(5), "consumer lines", || {
        let stdout = sim.stdout();
        stdout.contains("anonymous ").then_some(stdout)
    });
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("kong-sim listening on http://127.0.0.1:"),
        "{}",
        sim.output()
    );
    assert_eq!(
        lines[1],
        format!("test-consumer-001 {FIRST_ID} test-key-001")
    );
    assert_eq!(lines[3], "anonymous 00000000-0000-4000-8000-000000000000 -");
    assert_eq!(lines.len(), 4);
    assert!(!stdout.contains("test-secret"), "secrets are not printed");
}

#[test]
fn seeded_consumer_lists_one_hs256_credential() {
    let sim = sim(&[]);
    for path in [
        "/consumers/test-consumer-001/jwt",
        &format!("/consumers/{FIRST_ID}/jwt"),
        &format!("/core-entities/consumers/{FIRST_ID}/jwt/"),
    ] {
        let reply = support::get(&format!("{}{path}", sim.url), &[]);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_eq!(
            reply.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(reply.header("server"), Some("kong/3.9.1"));
        assert!(reply.header("x-kong-admin-latency").is_some());
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
        assert!(reply.header("content-length").is_some());
        let body = reply.json();
        assert_eq!(body["next"], Value::Null);
        assert!(
            body.get("offset").is_none(),
            "no offset key on the last page"
        );
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 1);
        let credential = &data[0];
        assert_eq!(credential["algorithm"], "HS256");
        assert_eq!(credential["key"], "test-key-001");
        assert_eq!(credential["secret"], "test-secret-001");
        assert_eq!(credential["consumer"], json!({"id": FIRST_ID}));
        assert_eq!(credential["rsa_public_key"], Value::Null);
        assert_eq!(credential["tags"], Value::Null);
    }
}

#[test]
fn unknown_consumer_and_route_are_not_found() {
    let sim = sim(&[]);
    for path in [
        "/consumers/nobody/jwt",
        "/consumers/00000000-0000-4000-8000-0000000000ff/jwt",
        "/nowhere",
        "/Consumers",
    ] {
        let reply = support::get(&format!("{}{path}", sim.url), &[]);
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.json(), json!({"message": "Not found"}));
    }
    let reply = support::request("DELETE", &format!("{}/consumers", sim.url), &[], None);
    assert_eq!(reply.status, 405);
    assert_eq!(reply.json(), json!({"message": "Method not allowed"}));
}

#[test]
fn post_creates_credentials_and_rejects_duplicate_keys() {
    let sim = sim(&[]);
    let url = format!("{}/consumers/test-consumer-002/jwt", sim.url);
    let reply = post(&url, json!({}));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let made = reply.json();
    assert!(is_kong_random(made["key"].as_str().unwrap()), "{made}");
    assert!(is_kong_random(made["secret"].as_str().unwrap()), "{made}");
    assert_eq!(made["algorithm"], "HS256");
    assert_eq!(
        made["consumer"]["id"],
        "00000000-0000-4000-8000-000000000002"
    );
    assert!(made["created_at"].is_i64());

    // test-key-001 belongs to another consumer: keys are unique across all of them.
    let reply = post(&url, json!({"key": "test-key-001", "secret": "s"}));
    assert_eq!(reply.status, 409);
    let body = reply.json();
    assert_eq!(body["code"], 5);
    assert_eq!(body["name"], "unique constraint violation");
    assert_eq!(
        body["message"],
        "UNIQUE violation detected on '{key=\"test-key-001\"}'"
    );
    assert_eq!(body["fields"], json!({"key": "test-key-001"}));

    let listed = support::get(&url, &[]).json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
}

#[test]
fn admin_token_is_required_when_set() {
    let sim = sim(&["--admin-token", "sekrit"]);
    let url = format!("{}/consumers/test-consumer-001/jwt", sim.url);
    let reply = support::get(&url, &[]);
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json(), json!({"message": "Invalid RBAC credentials"}));
    assert_eq!(
        support::get(&url, &[("Kong-Admin-Token", "wrong")]).status,
        401
    );
    assert_eq!(
        support::get(&url, &[("Kong-Admin-Token", "sekrit")]).status,
        200
    );
    assert_eq!(
        support::get(&url, &[("Authorization", "Bearer sekrit")]).status,
        200
    );
    // The simulator's own hooks stay open.
    assert_eq!(
        support::get(&format!("{}/_sim/stats", sim.url), &[]).status,
        200
    );
}

#[test]
fn fail_rate_one_fails_everything() {
    let sim = sim(&["--fail-rate", "1"]);
    for _ in 0..3 {
        let reply = support::get(&format!("{}/consumers/test-consumer-001/jwt", sim.url), &[]);
        assert_eq!(reply.status, 503);
        assert_eq!(reply.json()["message"], "An unexpected error occurred");
    }
    let stats = support::get(&format!("{}/_sim/stats", sim.url), &[]).json();
    assert_eq!(stats["total"], 3);
}

#[test]
fn utf8_and_percent_encoded_usernames_resolve() {
    let sim = sim(&[]);
    let created = post(
        &format!("{}/consumers", sim.url),
        json!({"username": "ü b/c?"}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let made = post(
        &format!("{}/consumers/%C3%BC%20b%2Fc%3F/jwt", sim.url),
        json!({"key": "utf8-key"}),
    );
    assert_eq!(made.status, 201, "{}", made.body);
    let reply = support::get(&format!("{}/consumers/%C3%BC%20b%2Fc%3F/jwt", sim.url), &[]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let data = reply.json()["data"].clone();
    assert_eq!(data[0]["key"], "utf8-key");
    assert_eq!(data[0]["consumer"]["id"], id.as_str());
    let by_name = support::get(&format!("{}/consumers/%C3%BC%20b%2Fc%3F", sim.url), &[]);
    assert_eq!(by_name.json()["id"], id.as_str());
}

#[test]
fn stats_count_route_templates() {
    let sim = sim(&[]);
    for _ in 0..2 {
        support::get(&format!("{}/consumers/test-consumer-001/jwt", sim.url), &[]);
    }
    support::get(
        &format!("{}/core-entities/consumers/{FIRST_ID}/jwt", sim.url),
        &[],
    );
    support::get(&format!("{}/status", sim.url), &[]);
    support::get(&format!("{}/missing", sim.url), &[]);
    let stats = support::get(&format!("{}/_sim/stats", sim.url), &[]).json();
    assert_eq!(
        stats,
        json!({
            "requests": {
                "GET /consumers/{c}/jwt": 2,
                "GET /core-entities/consumers/{c}/jwt": 1,
                "GET /status": 1,
                "GET (unknown)": 1,
            },
            "total": 5,
            "traceparents": [],
        })
    );
    let reset = support::request("POST", &format!("{}/_sim/reset-stats", sim.url), &[], None);
    assert_eq!(reset.status, 204);
    let stats = support::get(&format!("{}/_sim/stats", sim.url), &[]).json();
    assert_eq!(
        stats,
        json!({"requests": {}, "total": 0, "traceparents": []})
    );
}

#[test]
fn pagination_with_size_one() {
    let sim = sim(&["--consumers", "2"]);
    let mut url = format!("{}/consumers?size=1", sim.url);
    let mut seen = Vec::new();
    loop {
        let page = support::get(&url, &[]).json();
        let data = page["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{page}");
        seen.push(data[0]["username"].as_str().unwrap().to_owned());
        match page["next"].as_str() {
            Some(next) => {
                assert!(next.starts_with("/consumers?offset="), "{next}");
                assert!(next.ends_with("&size=1"), "{next}");
                assert!(page["offset"].is_string());
                url = format!("{}{next}", sim.url);
            }
            None => {
                assert!(page.get("offset").is_none());
                break;
            }
        }
    }
    // Id order: the anonymous consumer's id (…000) sorts first.
    assert_eq!(
        seen,
        ["anonymous", "test-consumer-001", "test-consumer-002"]
    );
    let bad = support::get(&format!("{}/consumers?size=1001", sim.url), &[]);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["code"], 9);
}

#[test]
fn root_and_status_describe_a_kong_node() {
    let sim = sim(&[]);
    let root = support::get(&format!("{}/", sim.url), &[]).json();
    assert_eq!(root["version"], "3.9.1");
    assert_eq!(root["edition"], "community");
    assert!(
        root["plugins"]["enabled_in_cluster"]
            .as_array()
            .unwrap()
            .contains(&json!("jwt"))
    );
    let status = support::get(&format!("{}/status", sim.url), &[]).json();
    assert_eq!(status["database"], json!({"reachable": true}));
    let options = support::request(
        "OPTIONS",
        &format!("{}/consumers/x/jwt", sim.url),
        &[],
        None,
    );
    assert_eq!(options.status, 204);
    assert_eq!(options.header("allow"), Some("GET, HEAD, OPTIONS, POST"));
}

#[test]
fn seed_file_replaces_default_seed() {
    let dir = TempDir::new("kong-sim-seed");
    let path = dir.join("seed.json");
    let seed = json!({"consumers": [{
        "id": "11111111-2222-4333-8444-555555555555",
        "username": "seeded",
        "custom_id": "c-1",
        "jwt": [{"key": "seeded-key", "secret": "seeded-secret"}],
    }]});
    std::fs::write(&path, seed.to_string()).unwrap();
    let sim = sim(&["--seed-file", path.to_str().unwrap()]);
    support::eventually(Duration::from_secs(5), "the seeded consumer line", || {
        sim.stdout()
            .contains("seeded 11111111-2222-4333-8444-555555555555 seeded-key")
            .then_some(())
    });
    let listed = support::get(&format!("{}/consumers/seeded/jwt", sim.url), &[]).json();
    assert_eq!(listed["data"][0]["secret"], "seeded-secret");
    let missing = support::get(&format!("{}/consumers/test-consumer-001", sim.url), &[]);
    assert_eq!(missing.status, 404);
}

#[test]
fn seed_file_with_bad_id_exits_2() {
    let dir = TempDir::new("kong-sim-bad-seed");
    let path = dir.join("seed.json");
    let seed = json!({"consumers": [{"id": "not-a-uuid", "username": "x", "jwt": []}]});
    std::fs::write(&path, seed.to_string()).unwrap();
    let run = support::run(
        None,
        &[
            "kong-sim",
            "--port",
            "0",
            "--seed-file",
            path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(run.code(), 2, "{run:?}");
    assert!(run.stderr.contains("seed.json"), "{run:?}");
    assert!(run.stderr.contains("not-a-uuid"), "{run:?}");
}

#[test]
fn fail_rate_out_of_range_exits_2() {
    let run = support::run(None, &["kong-sim", "--port", "0", "--fail-rate", "2"], &[]);
    assert_eq!(run.code(), 2, "{run:?}");
    assert!(run.stderr.contains("--fail-rate"), "{run:?}");
}

#[test]
fn sigterm_exits_cleanly() {
    let mut sim = sim(&[]);
    let status = sim.terminate();
    assert_eq!(status.code(), Some(0), "{}", sim.output());
}

#[test]
fn latency_applies_to_admin_api_but_not_sim_hooks() {
    let sim = sim(&["--latency-ms", "300"]);
    let started = std::time::Instant::now();
    let reply = support::get(&format!("{}/consumers/test-consumer-001/jwt", sim.url), &[]);
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let latency: u64 = reply
        .header("x-kong-admin-latency")
        .unwrap()
        .parse()
        .unwrap();
    assert!(latency >= 300, "{latency}");
    let started = std::time::Instant::now();
    support::get(&format!("{}/_sim/stats", sim.url), &[]);
    assert!(started.elapsed() < Duration::from_millis(300));
}
