//! Logger set-up (env_logger on stderr) and the log policy.
//!
//! Policy: `error` for failures that lose work, `warn` for degraded dependencies (Kong down,
//! breaker transitions, config oddities), `info` for lifecycle (listening, draining, profiles
//! written, credentials provisioned: key only), `debug` for one line per request (method, path,
//! status, latency, request id). Never a secret, a token, an admin token or a header value.

/// Starts logging at `level` unless `RUST_LOG` is set, which then wins (module filters work).
pub fn init(level: &str) {
    let mut builder = env_logger::Builder::new();
    match std::env::var("RUST_LOG") {
        Ok(filters) if !filters.trim().is_empty() => {
            builder.parse_filters(&filters);
        }
        _ => {
            builder.parse_filters(level);
        }
    }
    builder
        .format_timestamp_millis()
        .target(env_logger::Target::Stderr);
    // A second init (tests, embedded use) keeps the first logger: not an error.
    let _ = builder.try_init();
}
