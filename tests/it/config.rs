//! Start-up configuration: every class of bad value stops `serve` with exit 2 and one line
//! naming the variable; `.env` is read, and the real environment wins over it.

use crate::support::{self, TempDir};

const REQUIRED: [(&str, &str); 3] = [
    ("KONG_JWT_AUTHORITY", "https://issuer.test"),
    ("KONG_JWT_AUDIENCE", "aud"),
    ("KONG_ADMIN_URL", "http://127.0.0.1:9"),
];

fn serve_exit(envs: &[(&str, &str)], extra_args: &[&str]) -> support::Run {
    let mut args = vec!["serve", "--host", "127.0.0.1", "--port", "0"];
    args.extend_from_slice(extra_args);
    let dir = TempDir::new("config");
    support::run(Some(&dir.path), &args, envs)
}

#[test]
fn each_invalid_value_class_exits_2_naming_the_variable() {
    let cases = [
        ("JWT_EXPIRATION_MINUTES", "0"),
        ("JWT_EXPIRATION_MINUTES", "61"),
        ("KONG_TIMEOUT_MS", "fast"),
        ("CACHING_TTL_SECONDS", "-1"),
        ("KONG_MODE", "CLOUD"),
        ("KONG_AUTO_PROVISION", "perhaps"),
        ("KONG_ADMIN_URL", "localhost:8001"),
        ("CIRCUIT_BREAKER_ERROR_THRESHOLD", "150"),
        ("SLA_THRESHOLDS", "/tokens=200:100"),
        ("CONTINUOUS_PROFILING_MAX_STORAGE_GB", "lots"),
        ("PROFILING_CPU_HZ", "0"),
        ("APP_ENV", "prod"),
        ("LOG_LEVEL", "chatty"),
        ("PORT", "99999"),
    ];
    for (variable, value) in cases {
        let mut envs = REQUIRED.to_vec();
        envs.push((variable, value));
        let run = if variable == "PORT" {
            let dir = TempDir::new("config-port");
            support::run(Some(&dir.path), &["serve", "--host", "127.0.0.1"], &envs)
        } else {
            serve_exit(&envs, &[])
        };
        assert_eq!(run.code(), 2, "{variable}={value}: {run:?}");
        let line = run.stderr.trim();
        assert_eq!(line.lines().count(), 1, "one line: {run:?}");
        assert!(
            line.contains(variable) && line.contains(value),
            "{variable}={value}: {line}"
        );
        assert!(line.contains("expected"), "says what is accepted: {line}");
    }
}

#[test]
fn required_issuer_settings_are_named_when_missing() {
    let run = serve_exit(&[("KONG_JWT_AUDIENCE", "aud")], &[]);
    assert_eq!(run.code(), 2, "{run:?}");
    assert!(run.stderr.contains("KONG_JWT_AUTHORITY"), "{run:?}");
    let run = serve_exit(&[("KONG_JWT_AUTHORITY", "https://a")], &[]);
    assert_eq!(run.code(), 2, "{run:?}");
    assert!(run.stderr.contains("KONG_JWT_AUDIENCE"), "{run:?}");
}

#[test]
fn bad_flags_exit_2() {
    for args in [
        vec!["--workers", "0"],
        vec!["--workers", "many"],
        vec!["--port", "http"],
        vec!["--cpu-prof-dir", "/tmp/x"],
        vec!["--cpu-prof-md", "--cpu-prof-dir", "/dev/null/not-a-dir"],
        vec!["--no-such-flag"],
    ] {
        let run = serve_exit(&REQUIRED, &args);
        assert_eq!(run.code(), 2, "{args:?}: {run:?}");
        assert!(!run.stderr.trim().is_empty(), "{args:?}");
    }
}

#[test]
fn dotenv_is_read_and_the_environment_wins() {
    let dir = TempDir::new("dotenv");
    std::fs::write(
        dir.join(".env"),
        "# test settings\nKONG_JWT_AUTHORITY=https://from-dotenv.test\nKONG_JWT_AUDIENCE=\"dotenv-aud\"\nJWT_EXPIRATION_MINUTES=7\n",
    )
    .unwrap();
    let sim = support::kong_sim(&[]);
    let server = support::Proc::start_in(
        Some(&dir.path),
        &["serve", "--host", "127.0.0.1", "--port", "0"],
        &[
            ("KONG_ADMIN_URL", &sim.url),
            ("JWT_EXPIRATION_MINUTES", "3"),
        ],
    );
    let reply = support::get(
        &format!("{}/tokens", server.url),
        &support::consumer(support::CONSUMER_ID, support::CONSUMER_NAME),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.json()["expires_in"],
        180,
        "the environment beats .env"
    );
    let config = support::get(&format!("{}/metrics?view=config", server.url), &[]).json();
    assert_eq!(config["jwt"]["issuer"], "https://from-dotenv.test");
    assert_eq!(config["jwt"]["audience"][0], "dotenv-aud");

    std::fs::write(dir.join(".env"), "THIS IS NOT A SETTING\n").unwrap();
    let run = support::run(Some(&dir.path), &["serve", "--port", "0"], &[]);
    assert_eq!(run.code(), 2, "{run:?}");
    assert!(run.stderr.contains(".env line 1"), "{run:?}");
}
