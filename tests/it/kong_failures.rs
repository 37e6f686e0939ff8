//! Kong failure modes end to end: stale credentials, the circuit breaker, a rejected admin
//! token, auto-provisioning, path safety of consumer ids, and single-flight lookups.

use std::thread;
use std::time::Duration;

use serde_json::json;

use crate::support::{self, CONSUMER_ID, CONSUMER_NAME, Proc, Reply};

const SECOND_ID: &str = "00000000-0000-4000-8000-000000000002";
const SECOND_NAME: &str = "test-consumer-002";

fn tokens(url: &str, id: &str, name: &str) -> Reply {
    support::get(&format!("{url}/tokens"), &support::consumer(id, name))
}

fn code(reply: &Reply) -> String {
    reply.json()["code"].as_str().unwrap_or_default().to_owned()
}

fn port_of(url: &str) -> &str {
    url.rsplit(':').next().expect("port")
}

#[test]
fn stale_credential_is_served_while_kong_is_down() {
    let mut sim = support::kong_sim(&[]);
    let server = support::serve(&sim.url, &[("CACHING_TTL_SECONDS", "1")]);
    assert_eq!(tokens(&server.url, CONSUMER_ID, CONSUMER_NAME).status, 200);
    // Let the cached entry pass its fresh TTL so only the stale window keeps it.
    thread::sleep(Duration::from_millis(1200));
    sim.terminate();

    let stale = tokens(&server.url, CONSUMER_ID, CONSUMER_NAME);
    assert_eq!(
        stale.status, 200,
        "stale credential must be served: {stale:?}"
    );
    let uncached = tokens(&server.url, SECOND_ID, SECOND_NAME);
    assert_eq!(uncached.status, 503, "{uncached:?}");
    assert_eq!(code(&uncached), "AUTH_004");
    assert_eq!(uncached.header("retry-after"), Some("30"));

    let metrics = support::get(&format!("{}/metrics?format=prometheus", server.url), &[]).body;
    assert!(
        metrics.contains("kong_cache_stale_served_total 1"),
        "{metrics}"
    );
    let ready = support::get(&format!("{}/health/ready", server.url), &[]);
    assert_eq!(ready.status, 503, "readiness follows Kong: {ready:?}");
}

#[test]
fn breaker_opens_on_failures_and_then_spares_kong() {
    let sim = support::kong_sim(&["--fail-rate", "1"]);
    let server = support::serve(&sim.url, &[("CIRCUIT_BREAKER_RESET_TIMEOUT", "60000")]);
    for _ in 0..3 {
        let reply = tokens(&server.url, CONSUMER_ID, CONSUMER_NAME);
        assert_eq!(
            (reply.status, code(&reply).as_str()),
            (503, "AUTH_004"),
            "{reply:?}"
        );
    }
    let calls_when_opened = support::kong_credential_gets(&sim.url);
    assert_eq!(calls_when_opened, 3);
    for _ in 0..5 {
        let reply = tokens(&server.url, SECOND_ID, SECOND_NAME);
        assert_eq!(
            (reply.status, code(&reply).as_str()),
            (503, "AUTH_005"),
            "{reply:?}"
        );
        let retry_after: u64 = reply
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
    }
    assert_eq!(
        support::kong_credential_gets(&sim.url),
        calls_when_opened,
        "no Kong call while open"
    );
    let health = support::get(&format!("{}/health", server.url), &[]).json();
    assert_eq!(health["circuitBreakerState"], "open");
    assert_eq!(health["status"], "degraded");
}

#[test]
fn half_open_trial_closes_the_breaker_when_kong_is_back() {
    let mut sim = support::kong_sim(&[]);
    let port = port_of(&sim.url).to_owned();
    let server = support::serve(&sim.url, &[("CIRCUIT_BREAKER_RESET_TIMEOUT", "500")]);
    sim.terminate();
    for _ in 0..3 {
        assert_eq!(
            code(&tokens(&server.url, CONSUMER_ID, CONSUMER_NAME)),
            "AUTH_004"
        );
    }
    assert_eq!(
        code(&tokens(&server.url, CONSUMER_ID, CONSUMER_NAME)),
        "AUTH_005"
    );

    let _revived = Proc::start(&["kong-sim", "--port", &port], &[]);
    let reply = support::eventually(Duration::from_secs(10), "breaker to close", || {
        let reply = tokens(&server.url, CONSUMER_ID, CONSUMER_NAME);
        (reply.status == 200).then_some(reply)
    });
    assert!(reply.json()["access_token"].is_string());
    let health = support::get(&format!("{}/health", server.url), &[]).json();
    assert_eq!(health["circuitBreakerState"], "closed");
}

#[test]
fn rejected_admin_token_is_an_outage_not_a_missing_consumer() {
    let sim = support::kong_sim(&["--admin-token", "right-token"]);
    let wrong = support::serve(&sim.url, &[("KONG_ADMIN_TOKEN", "wrong-token")]);
    let reply = tokens(&wrong.url, CONSUMER_ID, CONSUMER_NAME);
    assert_eq!(
        (reply.status, code(&reply).as_str()),
        (503, "AUTH_004"),
        "{reply:?}"
    );
    assert!(
        !wrong.stderr().contains("wrong-token"),
        "the admin token must never be logged"
    );

    let right = support::serve(&sim.url, &[("KONG_ADMIN_TOKEN", "right-token")]);
    assert_eq!(tokens(&right.url, CONSUMER_ID, CONSUMER_NAME).status, 200);
}

#[test]
fn consumer_without_credentials_is_provisioned_once_then_reused() {
    let sim = support::kong_sim(&[]);
    let created = support::post_json(
        &format!("{}/consumers", sim.url),
        json!({"username": "fresh-user"}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let server = support::serve(&sim.url, &[("CACHING_TTL_SECONDS", "0")]);

    for _ in 0..3 {
        assert_eq!(tokens(&server.url, &id, "fresh-user").status, 200);
    }
    let list = support::get(&format!("{}/consumers/{id}/jwt", sim.url), &[]).json();
    let credentials = list["data"].as_array().unwrap();
    assert_eq!(credentials.len(), 1, "provisioned exactly once: {list}");
    assert_eq!(credentials[0]["algorithm"], "HS256");

    let no_provisioning = support::serve(&sim.url, &[("KONG_AUTO_PROVISION", "false")]);
    let bare = support::post_json(
        &format!("{}/consumers", sim.url),
        json!({"username": "bare-user"}),
    );
    let bare_id = bare.json()["id"].as_str().unwrap().to_owned();
    let reply = tokens(&no_provisioning.url, &bare_id, "bare-user");
    assert_eq!(
        (reply.status, code(&reply).as_str()),
        (401, "AUTH_002"),
        "{reply:?}"
    );
}

#[test]
fn consumer_ids_are_percent_encoded_into_one_path_segment() {
    let sim = support::kong_sim(&[]);
    let server = support::serve(&sim.url, &[]);
    let odd = "we ird/na?me%20#x";
    let created = support::post_json(&format!("{}/consumers", sim.url), json!({"username": odd}));
    assert_eq!(created.status, 201, "{created:?}");
    let consumer_id = created.json()["id"].as_str().unwrap().to_owned();
    let added = support::post_json(
        &format!("{}/consumers/{consumer_id}/jwt", sim.url),
        json!({"key": "odd-key", "secret": "odd-secret"}),
    );
    assert_eq!(added.status, 201);

    // Kong resolves a non-UUID segment as a username: the odd one must arrive intact.
    let reply = tokens(&server.url, odd, "odd");
    assert_eq!(reply.status, 200, "{reply:?}");

    let before = support::get(&format!("{}/_sim/stats", sim.url), &[]).json();
    let injection = tokens(&server.url, "../../status?x=1#", "attacker");
    assert_eq!(
        (injection.status, code(&injection).as_str()),
        (401, "AUTH_002"),
        "{injection:?}"
    );
    let after = support::get(&format!("{}/_sim/stats", sim.url), &[]).json();
    assert_eq!(
        after["requests"]["GET /consumers/{c}/jwt"]
            .as_u64()
            .unwrap(),
        before["requests"]["GET /consumers/{c}/jwt"]
            .as_u64()
            .unwrap()
            + 1,
        "the lookup stayed on the credentials route: {after}"
    );
    assert_eq!(
        after["requests"].get("GET /status"),
        before["requests"].get("GET /status")
    );
}

#[test]
fn concurrent_first_requests_share_one_kong_call() {
    let sim = support::kong_sim(&["--latency-ms", "300"]);
    let server = support::serve(&sim.url, &[("HEALTH_KONG_CACHE_MS", "600000")]);
    let url = server.url.clone();
    let statuses: Vec<u16> = thread::scope(|scope| {
        let handles: Vec<_> = (0..32)
            .map(|_| scope.spawn(|| tokens(&url, CONSUMER_ID, CONSUMER_NAME).status))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    assert_eq!(support::kong_credential_gets(&sim.url), 1, "single-flight");
}

#[test]
fn requests_waiting_on_kong_do_not_hold_up_the_others() {
    // Only as many workers as cores take requests; one that waits on Kong hands its turn over.
    let sim = support::kong_sim(&["--latency-ms", "3000"]);
    let server = support::serve(
        &sim.url,
        &[
            ("KONG_TIMEOUT_MS", "10000"),
            ("HEALTH_KONG_CACHE_MS", "600000"),
        ],
    );
    let url = server.url.clone();
    assert_eq!(tokens(&url, CONSUMER_ID, CONSUMER_NAME).status, 200);
    let slow_done = std::sync::atomic::AtomicUsize::new(0);
    thread::scope(|scope| {
        let slow: Vec<_> = (2..=5)
            .map(|n| {
                let (url, slow_done) = (&url, &slow_done);
                scope.spawn(move || {
                    let id = format!("00000000-0000-4000-8000-00000000000{n}");
                    let reply = tokens(url, &id, &format!("test-consumer-00{n}"));
                    slow_done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    reply.status
                })
            })
            .collect();
        // Let the four cache misses reach Kong first (sequencing only, nothing is timed).
        thread::sleep(Duration::from_millis(300));
        assert_eq!(tokens(&url, CONSUMER_ID, CONSUMER_NAME).status, 200);
        assert_eq!(support::get(&format!("{url}/health/live"), &[]).status, 200);
        assert_eq!(
            slow_done.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "answered while all four Kong lookups were still in flight"
        );
        for handle in slow {
            assert_eq!(handle.join().unwrap(), 200);
        }
    });
}
