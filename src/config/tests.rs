//! Unit tests of `config`: defaults, validation messages, lists, `.env` parsing.

use super::env::parse_dotenv;
use super::*;

fn load(pairs: &[(&str, &str)]) -> Result<ServiceConfig, ConfigError> {
    let mut all = vec![
        ("KONG_JWT_AUTHORITY", "https://issuer.test"),
        ("KONG_JWT_AUDIENCE", "aud-a"),
    ];
    all.extend_from_slice(pairs);
    ServiceConfig::load(&Env::from_pairs(all), &ServeOverrides::default())
}

#[test]
fn defaults_match_the_spec() {
    let config = load(&[]).unwrap();
    assert_eq!(config.server.port, 3000);
    assert!(config.server.workers >= 8);
    assert_eq!(config.jwt.expiration_minutes, 15);
    assert_eq!(config.jwt.key_claim_name, "key");
    assert_eq!(config.jwt.issuer, "https://issuer.test");
    assert_eq!(config.kong.timeout, Duration::from_millis(3000));
    assert_eq!(config.cache.fresh_ttl, Duration::from_secs(300));
    assert_eq!(config.breaker.volume_threshold, 3);
    assert_eq!(config.sla.thresholds.len(), 3);
    assert!(config.profiling.debug_routes);
    let connections = &config.server.connections;
    assert_eq!(connections.header_timeout, Duration::from_secs(10));
    assert_eq!(connections.keepalive_timeout, Duration::from_secs(75));
    assert_eq!(connections.body_timeout, Duration::from_secs(10));
    assert_eq!(connections.write_timeout, Duration::from_secs(10));
    assert_eq!(connections.max_connections, None);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(
        config.kong.max_waiting_workers,
        config.server.workers.saturating_sub(cores).max(1)
    );
}

#[test]
fn kong_waiting_workers_default_leaves_the_cores_free() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let with_workers = |workers: usize, pairs: &[(&str, &str)]| {
        let mut all = vec![
            ("KONG_JWT_AUTHORITY", "https://issuer.test"),
            ("KONG_JWT_AUDIENCE", "aud-a"),
        ];
        all.extend_from_slice(pairs);
        let overrides = ServeOverrides {
            workers: Some(workers),
            ..ServeOverrides::default()
        };
        ServiceConfig::load(&Env::from_pairs(all), &overrides)
            .unwrap()
            .kong
            .max_waiting_workers
    };
    assert_eq!(with_workers(cores + 5, &[]), 5);
    assert_eq!(with_workers(cores, &[]), 1, "at least one");
    assert_eq!(with_workers(1, &[]), 1);
    assert_eq!(
        with_workers(8, &[("KONG_MAX_WAITING_WORKERS", "3")]),
        3,
        "the variable wins"
    );
    assert_eq!(
        with_workers(8, &[("KONG_MAX_WAITING_WORKERS", "64")]),
        64,
        "more than the pool means no cap"
    );
}

#[test]
fn invalid_values_name_the_variable() {
    let cases: &[(&str, &str)] = &[
        ("JWT_EXPIRATION_MINUTES", "0"),
        ("JWT_EXPIRATION_MINUTES", "61"),
        ("KONG_TIMEOUT_MS", "abc"),
        ("KONG_MODE", "CLOUD"),
        ("KONG_AUTO_PROVISION", "maybe"),
        ("CIRCUIT_BREAKER_ERROR_THRESHOLD", "101"),
        ("SLA_THRESHOLDS", "/tokens=200:100"),
        ("SLA_THRESHOLDS", "tokens=1:2"),
        ("KONG_ADMIN_URL", "localhost:8001"),
        ("APP_ENV", "prod"),
        ("LOG_LEVEL", "loud"),
        ("KONG_JWT_KEY_CLAIM_NAME", "iss"),
        ("PORT", "70000"),
        ("API_CORS_ORIGIN", "https://a.test\r\nSet-Cookie: x=1"),
        ("API_CORS_ALLOW_METHODS", "GET, PÖST"),
        ("HTTP_HEADER_TIMEOUT_MS", "0"),
        ("HTTP_KEEPALIVE_TIMEOUT_MS", "forever"),
        ("HTTP_WRITE_TIMEOUT_MS", "99999999"),
        ("MAX_CONNECTIONS", "0"),
        ("KONG_MAX_WAITING_WORKERS", "0"),
        ("KONG_MAX_WAITING_WORKERS", "1025"),
        ("KONG_MAX_WAITING_WORKERS", "some"),
    ];
    for (variable, value) in cases {
        let err = load(&[(variable, value)]).unwrap_err().to_string();
        assert!(err.contains(variable), "{variable}={value}: {err}");
    }
}

#[test]
fn sla_thresholds_take_fractions_of_a_millisecond() {
    let parsed = parse_sla_thresholds("/tokens=0.5:1.25, /health=400:500").unwrap();
    assert_eq!((parsed[0].p95_ms, parsed[0].p99_ms), (0.5, 1.25));
    assert_eq!((parsed[1].p95_ms, parsed[1].p99_ms), (400.0, 500.0));
    for bad in [
        "/tokens=0.001:1",
        "/tokens=2:1",
        "/tokens=NaN:1",
        "/tokens=1:inf",
        "tokens=1:2",
    ] {
        assert!(parse_sla_thresholds(bad).is_err(), "{bad}");
    }
}

#[test]
fn several_audiences_and_issuers() {
    let config = load(&[
        ("KONG_JWT_AUDIENCE", "a, b"),
        ("KONG_JWT_ISSUER", "first,second"),
    ])
    .unwrap();
    assert_eq!(config.jwt.audience, ["a", "b"]);
    assert_eq!(config.jwt.issuer, "first");
}

#[test]
fn production_hides_debug_routes() {
    assert!(
        !load(&[("APP_ENV", "production")])
            .unwrap()
            .profiling
            .debug_routes
    );
    assert!(
        !load(&[("PROFILING_ENABLED", "false")])
            .unwrap()
            .profiling
            .debug_routes
    );
}

#[test]
fn authority_required_without_simulator() {
    let err = ServiceConfig::load(&Env::default(), &ServeOverrides::default()).unwrap_err();
    assert!(err.to_string().contains("KONG_JWT_AUTHORITY"));
    let embedded = ServeOverrides {
        kong_sim_url: Some("http://127.0.0.1:1".into()),
        ..ServeOverrides::default()
    };
    assert!(ServiceConfig::load(&Env::default(), &embedded).is_ok());
}

#[test]
fn dotenv_lines() {
    let vars = parse_dotenv("# c\nexport A=1\nB=\"two words\"\nC='x'\nD=v # note\n\n").unwrap();
    assert_eq!(vars["A"], "1");
    assert_eq!(vars["B"], "two words");
    assert_eq!(vars["C"], "x");
    assert_eq!(vars["D"], "v");
    assert_eq!(parse_dotenv("A=1\nnot a line\n"), Err(2));
}
