//! Kong failure modes end to end: stale credentials, the circuit breaker, a rejected admin
//! token, auto-provisioning, path safety of consumer ids, single-flight lookups, and a slow
//! Kong: stale-while-revalidate, refresh-ahead, the cap on workers waiting on Kong, and health
//! checks that never wait on it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::support::{self, CONSUMER_ID, CONSUMER_KEY, CONSUMER_NAME, Proc, Reply};

const SECOND_ID: &str = "00000000-0000-4000-8000-000000000002";
const SECOND_NAME: &str = "test-consumer-002";
const THIRD_ID: &str = "00000000-0000-4000-8000-000000000003";
const THIRD_NAME: &str = "test-consumer-003";

fn tokens(url: &str, id: &str, name: &str) -> Reply {
    support::get(&format!("{url}/tokens"), &support::consumer(id, name))
}

fn code(reply: &Reply) -> String {
    reply.json()["code"].as_str().unwrap_or_default().to_owned()
}

fn port_of(url: &str) -> &str {
    url.rsplit(':').next().expect("port")
}

/// The key claim of an issued token.
fn key_claim(reply: &Reply) -> String {
    let token = reply.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let payload = token.split('.').nth(1).expect("payload");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json");
    claims["key"].as_str().expect("key claim").to_owned()
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
    // Readiness reads the background prober's last result (it probed Kong at start-up, while
    // Kong was up); once that result is older than HEALTH_KONG_CACHE_MS a reader starts a new
    // probe, which finds Kong gone.
    support::eventually(Duration::from_secs(10), "readiness to follow Kong", || {
        let ready = support::get(&format!("{}/health/ready", server.url), &[]);
        (ready.status == 503).then_some(())
    });
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
    let server = support::serve(
        &sim.url,
        &[
            ("HEALTH_KONG_CACHE_MS", "600000"),
            // Every worker may join the one flight: the cap is tested on its own below.
            ("KONG_MAX_WAITING_WORKERS", "1024"),
        ],
    );
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

/// The issue "a slow Kong freezes the whole service": Kong answers in 3 s and the hot
/// consumers' entries have expired. Requests for them are answered from the stale entries at
/// once while one refresh per consumer is in flight, and health checks never wait on Kong.
#[test]
fn a_slow_kong_holds_up_neither_known_consumers_nor_health() {
    let sim = support::kong_sim(&["--latency-ms", "3000"]);
    let server = support::serve(
        &sim.url,
        &[("CACHING_TTL_SECONDS", "1"), ("KONG_TIMEOUT_MS", "10000")],
    );
    let url = server.url.as_str();
    let consumers = [
        (CONSUMER_ID, CONSUMER_NAME),
        (SECOND_ID, SECOND_NAME),
        (THIRD_ID, THIRD_NAME),
    ];
    // Warm the three entries in one 3 s round, then let them pass their fresh TTL.
    thread::scope(|scope| {
        for (id, name) in consumers {
            scope.spawn(move || assert_eq!(tokens(url, id, name).status, 200));
        }
    });
    thread::sleep(Duration::from_millis(1200));
    let stale_before = support::metric(url, "kong_cache_stale_served_total");

    let until = Instant::now() + Duration::from_secs(3);
    let statuses = thread::scope(|scope| {
        let hammer: Vec<_> = (0..16)
            .map(|n| {
                let (id, name) = consumers[n % consumers.len()];
                scope.spawn(move || {
                    let mut statuses = BTreeMap::<u16, u64>::new();
                    for _ in 0..5000 {
                        if Instant::now() >= until {
                            break;
                        }
                        *statuses.entry(tokens(url, id, name).status).or_default() += 1;
                    }
                    statuses
                })
            })
            .collect();
        // Sequencing only: let the hammer run into the expired entries first.
        thread::sleep(Duration::from_millis(500));
        for path in ["/health/live", "/health", "/health/ready"] {
            let started = Instant::now();
            let reply = support::get(&format!("{url}{path}"), &[]);
            let took = started.elapsed();
            // A generous bound that only tells an answer from a wait on Kong (3 s).
            assert!(
                took <= Duration::from_secs(1),
                "{path} took {took:?} while Kong is slow: {reply:?}"
            );
            assert!(matches!(reply.status, 200 | 503), "{path}: {reply:?}");
        }
        let mut all = BTreeMap::<u16, u64>::new();
        for handle in hammer {
            for (status, count) in handle.join().unwrap() {
                *all.entry(status).or_default() += count;
            }
        }
        all
    });
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        [200],
        "every request for a known consumer is answered with its credential: {statuses:?}"
    );
    assert!(
        support::metric(url, "kong_cache_stale_served_total") > stale_before,
        "stale entries were served"
    );
}

#[test]
fn beyond_kong_max_waiting_workers_a_lookup_is_refused_at_once() {
    let sim = support::kong_sim(&["--latency-ms", "2000"]);
    let server = support::serve(
        &sim.url,
        &[
            ("KONG_MAX_WAITING_WORKERS", "1"),
            ("KONG_TIMEOUT_MS", "10000"),
        ],
    );
    let url = server.url.as_str();
    let first_done = AtomicBool::new(false);
    thread::scope(|scope| {
        let first = scope.spawn(|| {
            let reply = tokens(url, SECOND_ID, SECOND_NAME);
            first_done.store(true, Ordering::SeqCst);
            reply
        });
        // Sequencing only: the first lookup holds the one waiting slot once Kong has it.
        support::eventually(Duration::from_secs(10), "the first lookup at Kong", || {
            (support::kong_credential_gets(&sim.url) == 1).then_some(())
        });
        let refused = tokens(url, THIRD_ID, THIRD_NAME);
        let follower = tokens(url, SECOND_ID, SECOND_NAME);
        assert!(
            !first_done.load(Ordering::SeqCst),
            "refused while the first lookup still waited on Kong"
        );
        for reply in [&refused, &follower] {
            assert_eq!(
                (reply.status, code(reply).as_str()),
                (503, "AUTH_004"),
                "{reply:?}"
            );
            assert_eq!(reply.header("retry-after"), Some("1"), "{reply:?}");
            let detail = reply.json()["detail"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(detail.contains("saturated waiting on kong"), "{detail}");
        }
        let first = first.join().unwrap();
        assert_eq!(first.status, 200, "{first:?}");
    });
    assert_eq!(
        support::kong_credential_gets(&sim.url),
        1,
        "refused lookups never reach Kong"
    );
    assert_eq!(support::metric(url, "kong_wait_rejected_total"), 2);
    let operational = support::get(&format!("{url}/metrics"), &[]).json();
    assert_eq!(operational["kong"]["waitRejected"], 2, "{operational}");
    assert_eq!(operational["kong"]["maxWaitingWorkers"], 1, "{operational}");
    // Free again: the next unknown consumer waits for Kong as usual.
    assert_eq!(tokens(url, THIRD_ID, THIRD_NAME).status, 200);
}

#[test]
fn a_hot_consumer_is_refreshed_ahead_and_picks_up_a_rotated_key() {
    let sim = support::kong_sim(&[]);
    // Fresh for 4 s; refresh-ahead asks in the last half of that (the window is at most half
    // the TTL), so a steady consumer is refreshed in the background before it expires.
    let server = support::serve(&sim.url, &[("CACHING_TTL_SECONDS", "4")]);
    let url = server.url.as_str();
    let first = tokens(url, CONSUMER_ID, CONSUMER_NAME);
    assert_eq!(first.status, 200, "{first:?}");
    let first_stored = Instant::now();
    assert_eq!(key_claim(&first), CONSUMER_KEY);
    assert_eq!(support::metric(url, "kong_cache_misses_total"), 1);

    // Rotate the consumer's key in Kong.
    let list = support::get(&format!("{}/consumers/{CONSUMER_ID}/jwt", sim.url), &[]).json();
    let credential_id = list["data"][0]["id"]
        .as_str()
        .expect("credential id")
        .to_owned();
    let rotated = support::request(
        "PATCH",
        &format!("{}/consumers/{CONSUMER_ID}/jwt/{credential_id}", sim.url),
        &[("Content-Type", "application/json")],
        Some(&json!({"key": "rotated-key-001", "secret": "rotated-secret-001"}).to_string()),
    );
    assert_eq!(rotated.status, 200, "{rotated:?}");

    // Steady traffic, stopping well before the first entry's 4 s would run out.
    let mut keys = Vec::new();
    let mut replies = 0;
    while first_stored.elapsed() < Duration::from_millis(3500) {
        let reply = tokens(url, CONSUMER_ID, CONSUMER_NAME);
        assert_eq!(reply.status, 200, "{reply:?}");
        replies += 1;
        let key = key_claim(&reply);
        if keys.last() != Some(&key) {
            keys.push(key);
        }
        if keys.last().map(String::as_str) == Some("rotated-key-001") {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        keys,
        [CONSUMER_KEY, "rotated-key-001"],
        "the refresh picked up the rotated key ({replies} requests)"
    );
    assert!(support::kong_credential_gets(&sim.url) >= 2, "refreshed");
    assert_eq!(
        support::metric(url, "kong_cache_misses_total"),
        1,
        "no request found the entry expired"
    );
    assert_eq!(support::metric(url, "kong_cache_stale_served_total"), 0);
}

#[test]
fn dot_segment_consumer_ids_are_refused_before_kong() {
    let sim = support::kong_sim(&[]);
    let server = support::serve(&sim.url, &[]);
    let stats = || support::get(&format!("{}/_sim/stats", sim.url), &[]).json()["requests"].clone();
    // The start-up health probe is the only request Kong sees before ours.
    support::eventually(Duration::from_secs(10), "the start-up probe", || {
        stats().get("GET /status").map(|_| ())
    });
    let before = stats();
    for id in [".", ".."] {
        let issued = tokens(&server.url, id, "dots");
        let validated = support::get(
            &format!("{}/tokens/validate", server.url),
            &[
                ("Authorization", "Bearer a.b.c"),
                ("X-Consumer-ID", id),
                ("X-Consumer-Username", "dots"),
            ],
        );
        for reply in [issued, validated] {
            assert_eq!(
                (reply.status, code(&reply).as_str()),
                (400, "AUTH_007"),
                "{id:?}: {reply:?}"
            );
        }
    }
    assert_eq!(stats(), before, "Kong saw no request for a dot segment");
}
