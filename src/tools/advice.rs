//! The action items `analyze` prints, and every name of this service they cite: env vars,
//! command-line flags, Prometheus metrics, files and Cargo features.
//!
//! Owns the texts. Each `Action` lists the names its text cites, and the tests check that each
//! one is real (the env var is read by `src/config`, the metric is written by
//! `src/metrics.rs`, the file exists, the flag is an `argh` field under `src/cmd/`, the feature
//! is in `Cargo.toml`) and that the text cites no name it does not list. Add a name here,
//! never in a format string elsewhere. Must not decide when an action applies (that is
//! `recommend`). Pure data.

/// One suggested step, and the names of this service it cites (checked by the tests).
#[derive(Debug)]
pub struct Action {
    pub text: &'static str,
    pub env: &'static [&'static str],
    pub flags: &'static [&'static str],
    pub metrics: &'static [&'static str],
    pub files: &'static [&'static str],
    pub features: &'static [&'static str],
}

const NONE: &[&str] = &[];

pub const KONG: &[Action] = &[
    Action {
        text: "Raise the credential cache hit rate: `CACHING_TTL_SECONDS` is how long a \
               credential stays fresh (0 disables the cache, so every request calls Kong), and \
               `CACHE_MAX_MEMORY_ENTRIES` must cover the active consumers; compare \
               `kong_cache_hits_total` with `kong_cache_misses_total` (the cache is \
               `src/kong/cache.rs`).",
        env: &["CACHING_TTL_SECONDS", "CACHE_MAX_MEMORY_ENTRIES"],
        flags: NONE,
        metrics: &["kong_cache_hits_total", "kong_cache_misses_total"],
        files: &["src/kong/cache.rs"],
        features: NONE,
    },
    Action {
        text: "Check the cost of each Kong call with `kong_operation_duration_seconds` and \
               `kong_operations_total`: the ureq client in `src/kong/client.rs` resolves Kong's \
               address on a new thread per call (thread start and exit are charged to Kong \
               lookups), and over HTTPS each new connection is a TLS handshake (`rustls`, \
               `ring`). With a non-zero TTL, `STALE_DATA_TOLERANCE_MINUTES` lets an expired \
               credential be served while it is refreshed.",
        env: &["STALE_DATA_TOLERANCE_MINUTES"],
        flags: NONE,
        metrics: &["kong_operation_duration_seconds", "kong_operations_total"],
        files: &["src/kong/client.rs"],
        features: NONE,
    },
];

pub const JWT: &[Action] = &[
    Action {
        text: "Signing is per issued token: check `jwt_tokens_issued_total` against \
               `http_requests_total`; clients that re-issue instead of reusing a token multiply \
               it, and a longer `JWT_EXPIRATION_MINUTES` lets them keep one longer. The signing \
               key is built in `src/jwt.rs`.",
        env: &["JWT_EXPIRATION_MINUTES"],
        flags: NONE,
        metrics: &["jwt_tokens_issued_total", "http_requests_total"],
        files: &["src/jwt.rs"],
        features: NONE,
    },
    Action {
        text: "Split signing cost between `sha2`, `base64` and claim building by profiling at a \
               higher `PROFILING_CPU_HZ` (up to the kernel's CONFIG_HZ, often 250: faster rates \
               are not delivered); keep the claim building in `src/jwt.rs` and `src/handlers/tokens.rs` free of extra copies; \
               watch `http_request_duration_seconds` for /tokens.",
        env: &["PROFILING_CPU_HZ"],
        flags: NONE,
        metrics: &["http_request_duration_seconds"],
        files: &["src/handlers/tokens.rs", "src/jwt.rs"],
        features: NONE,
    },
];

pub const JSON: &[Action] = &[
    Action {
        text: "Serialize response bodies straight into the output buffer \
               (`serde_json::to_writer`) in `src/http/response.rs` instead of building \
               `serde_json::Value` trees; keep `MAX_REQUEST_BODY_SIZE` small so no large body \
               is ever parsed; watch `http_request_duration_seconds`.",
        env: &["MAX_REQUEST_BODY_SIZE"],
        flags: NONE,
        metrics: &["http_request_duration_seconds"],
        files: &["src/http/response.rs"],
        features: NONE,
    },
    Action {
        text: "Kong responses are parsed on every cache miss: a longer `CACHING_TTL_SECONDS` \
               parses fewer (`kong_cache_misses_total`); deserialize only the fields used in \
               `src/kong/client.rs`.",
        env: &["CACHING_TTL_SECONDS"],
        flags: NONE,
        metrics: &["kong_cache_misses_total"],
        files: &["src/kong/client.rs"],
        features: NONE,
    },
];

pub const HTTP: &[Action] = &[
    Action {
        text: "This is user-space serving work (request parsing, routing, response building, \
               the hand-off between the connection threads and the workers), socket I/O \
               excluded. Size the pool to the cores: `--workers` (`src/server/pool.rs`) far above \
               the core count adds wake-ups and context switches; compare \
               `http_request_duration_seconds` with `http_requests_total` per second. Keep \
               `LOG_LEVEL` at info: per-request debug lines are extra work.",
        env: &["LOG_LEVEL"],
        flags: &["--workers"],
        metrics: &["http_request_duration_seconds", "http_requests_total"],
        files: &["src/server/pool.rs"],
        features: NONE,
    },
    Action {
        text: "Look at the deciding frames above in the connection layer \
               (`src/vendor/tiny_http/src/conn/mod.rs`) and the adapter \
               (`src/server/adapter.rs`); reject oversized bodies early with \
               `MAX_REQUEST_BODY_SIZE`; `http_requests_total` by status shows how many are \
               rejected.",
        env: &["MAX_REQUEST_BODY_SIZE"],
        flags: NONE,
        metrics: &["http_requests_total"],
        files: &[
            "src/vendor/tiny_http/src/conn/mod.rs",
            "src/server/adapter.rs",
        ],
        features: NONE,
    },
];

pub const LOCK: &[Action] = &[Action {
    text: "The contended locks are in the deciding frames of the subsystem rows; the credential \
           cache's mutex (`src/kong/cache.rs`) is never held across a Kong call, and its \
           contention grows with `--workers` and a high `kong_cache_hits_total` rate; a smaller \
           `CACHE_MAX_MEMORY_ENTRIES` shortens each LRU operation.",
    env: &["CACHE_MAX_MEMORY_ENTRIES"],
    flags: &["--workers"],
    metrics: &["kong_cache_hits_total"],
    files: &["src/kong/cache.rs"],
    features: NONE,
}];

pub const ALLOCATION: &[Action] = &[
    Action {
        text: "Find the allocating call sites in a heap profile (Top Allocation Sites \
               (Allocated)); pre-size response buffers in `src/http/response.rs`; \
               `MAX_REQUEST_BODY_SIZE` bounds the per-request body buffer; watch \
               `heap_peak_bytes`.",
        env: &["MAX_REQUEST_BODY_SIZE"],
        flags: NONE,
        metrics: &["heap_peak_bytes"],
        files: &["src/http/response.rs"],
        features: NONE,
    },
    Action {
        text: "Measure what the counting allocator wrapper (`src/profiling/alloc.rs`) costs with \
               `./run.sh bench` (`run.sh`): its allocator row compares this build with one \
               built with `--features system-alloc` (the plain System allocator).",
        env: NONE,
        flags: NONE,
        metrics: NONE,
        files: &["src/profiling/alloc.rs", "run.sh"],
        features: &["system-alloc"],
    },
];

pub const GROWTH_CREDENTIAL_CACHE: &[Action] = &[Action {
    text: "The top in-use site is the credential cache: bound what it keeps with \
           `CACHE_MAX_MEMORY_ENTRIES` entries, held as stale for `STALE_DATA_TOLERANCE_MINUTES` \
           (`src/kong/cache.rs`); `heap_live_bytes` should flatten once the cache is full.",
    env: &["CACHE_MAX_MEMORY_ENTRIES", "STALE_DATA_TOLERANCE_MINUTES"],
    flags: NONE,
    metrics: &["heap_live_bytes"],
    files: &["src/kong/cache.rs"],
    features: NONE,
}];

pub const GROWTH_WORKLOAD: &[Action] = &[Action {
    text: "The top in-use site is the diagnostics workload's planted allocation \
           (`src/profiling/workload.rs`, `/debug/workload/retain`), not service memory: release \
           it with `DELETE /debug/workload/retain` and `heap_live_bytes` drops back.",
    env: NONE,
    flags: NONE,
    metrics: &["heap_live_bytes"],
    files: &["src/profiling/workload.rs"],
    features: NONE,
}];

pub const GROWTH_PROFILER: &[Action] = &[Action {
    text: "The top in-use site is the profiler's own memory (pprof-rs's sample table, \
           symbolization in `src/profiling/symbols.rs`), not the service's: compare \
           `heap_live_bytes` with no session running, or profile with `auth-service profile \
           tokens --no-heap` to see the CPU side alone.",
    env: NONE,
    flags: &["--no-heap"],
    metrics: &["heap_live_bytes"],
    files: &["src/profiling/symbols.rs"],
    features: NONE,
}];

pub const GROWTH_OTHER_SITE: &[Action] = &[Action {
    text: "Follow the top in-use site named above through its stack in the heap report's \
           `## Site Details`: whatever holds on to it grows; `process_resident_memory_bytes` \
           rising with `heap_live_bytes` confirms it outside a profiling session (sampling in \
           `src/profiling/alloc.rs`).",
    env: NONE,
    flags: NONE,
    metrics: &["process_resident_memory_bytes", "heap_live_bytes"],
    files: &["src/profiling/alloc.rs"],
    features: NONE,
}];

pub const PEAK: &[Action] = &[Action {
    text: "Peaks follow concurrency: fewer `--workers` and a smaller `MAX_REQUEST_BODY_SIZE` \
           bound the per-request buffers alive at once (`src/server/pool.rs`); watch \
           `heap_peak_bytes`.",
    env: &["MAX_REQUEST_BODY_SIZE"],
    flags: &["--workers"],
    metrics: &["heap_peak_bytes"],
    files: &["src/server/pool.rs"],
    features: NONE,
}];

pub const STEADY_CREDENTIAL_CACHE: &[Action] = &[Action {
    text: "The steady heap is mostly the credential cache: lower `CACHE_MAX_MEMORY_ENTRIES` or \
           `STALE_DATA_TOLERANCE_MINUTES` (`src/kong/cache.rs`) and confirm with \
           `heap_live_bytes`.",
    env: &["CACHE_MAX_MEMORY_ENTRIES", "STALE_DATA_TOLERANCE_MINUTES"],
    flags: NONE,
    metrics: &["heap_live_bytes"],
    files: &["src/kong/cache.rs"],
    features: NONE,
}];

pub const LATENCY: &[Action] = &[
    Action {
        text: "Follow the slow route in `src/handlers/tokens.rs`: cache misses wait on Kong \
               (`kong_operation_duration_seconds`), each attempt bounded by `KONG_TIMEOUT_MS`; \
               the SLA itself is `SLA_THRESHOLDS`.",
        env: &["KONG_TIMEOUT_MS", "SLA_THRESHOLDS"],
        flags: NONE,
        metrics: &["kong_operation_duration_seconds"],
        files: &["src/handlers/tokens.rs"],
        features: NONE,
    },
    Action {
        text: "Check queueing: `http_request_queue_seconds` is the wait from a request's first \
               byte being read to a worker taking it, `http_request_duration_seconds` the \
               service time after that. A queue wait that dominates means busy or blocked \
               workers: only as many workers as cores take requests at once, and the others \
               stand in when one blocks on Kong (`src/server/pool.rs`, `--workers`).",
        env: NONE,
        flags: &["--workers"],
        metrics: &[
            "http_request_queue_seconds",
            "http_request_duration_seconds",
        ],
        files: &["src/server/pool.rs"],
        features: NONE,
    },
];

/// Where wall time goes when the CPU profile is nearly empty.
pub const OFF_CPU: &[Action] = &[
    Action {
        text: "Kong latency: `kong_operation_duration_seconds` by operation, against \
               `KONG_TIMEOUT_MS` (each attempt waits up to that long); `kong_operations_total` \
               by result counts timeouts and errors (`src/kong/client.rs`).",
        env: &["KONG_TIMEOUT_MS"],
        flags: NONE,
        metrics: &["kong_operation_duration_seconds", "kong_operations_total"],
        files: &["src/kong/client.rs"],
        features: NONE,
    },
    Action {
        text: "Calls in flight: at most `KONG_MAX_WAITING_WORKERS` workers wait on Kong at once \
               and `kong_wait_rejected_total` counts requests turned away when they all do; a \
               cache miss per request (`kong_cache_misses_total`, `CACHING_TTL_SECONDS`) puts \
               every request in that line (`src/kong/mod.rs`).",
        env: &["KONG_MAX_WAITING_WORKERS", "CACHING_TTL_SECONDS"],
        flags: NONE,
        metrics: &["kong_wait_rejected_total", "kong_cache_misses_total"],
        files: &["src/kong/mod.rs"],
        features: NONE,
    },
    Action {
        text: "Breaker state: `circuit_breaker_state` (0 closed, 1 open, 2 half-open); it opens \
               at `CIRCUIT_BREAKER_ERROR_THRESHOLD` percent errors and probes again after \
               `CIRCUIT_BREAKER_RESET_TIMEOUT` (`src/kong/breaker.rs`).",
        env: &[
            "CIRCUIT_BREAKER_ERROR_THRESHOLD",
            "CIRCUIT_BREAKER_RESET_TIMEOUT",
        ],
        flags: NONE,
        metrics: &["circuit_breaker_state"],
        files: &["src/kong/breaker.rs"],
        features: NONE,
    },
    Action {
        text: "Queue wait: `http_request_queue_seconds` (first byte read → a worker takes the \
               request) against `http_request_duration_seconds` (the service time after \
               that); workers blocked on Kong leave fewer to take requests \
               (`src/server/pool.rs`, `--workers`).",
        env: NONE,
        flags: &["--workers"],
        metrics: &[
            "http_request_queue_seconds",
            "http_request_duration_seconds",
        ],
        files: &["src/server/pool.rs"],
        features: NONE,
    },
];

/// Every action list, for the tests.
pub const ALL: &[&[Action]] = &[
    KONG,
    JWT,
    JSON,
    HTTP,
    LOCK,
    ALLOCATION,
    GROWTH_CREDENTIAL_CACHE,
    GROWTH_WORKLOAD,
    GROWTH_PROFILER,
    GROWTH_OTHER_SITE,
    PEAK,
    STEADY_CREDENTIAL_CACHE,
    LATENCY,
    OFF_CPU,
];

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;

    const METRICS: &str = include_str!("../metrics.rs");
    const CARGO: &str = include_str!("../../Cargo.toml");

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    /// The sources that read the env (`src/config.rs`, or `src/config/` without its tests).
    fn config_sources() -> String {
        let single = root().join("src/config.rs");
        if single.is_file() {
            return std::fs::read_to_string(single).unwrap();
        }
        let mut all = String::new();
        for entry in std::fs::read_dir(root().join("src/config")).expect("src/config") {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                all.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
        all
    }

    /// The sources of the subcommands, where argh fields define the flags.
    fn cmd_sources() -> String {
        let dir = root().join("src/cmd");
        let mut all = String::new();
        for entry in std::fs::read_dir(dir).expect("src/cmd") {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                all.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
        all
    }

    /// The backticked spans of a text.
    fn spans(text: &str) -> Vec<&str> {
        text.split('`').skip(1).step_by(2).collect()
    }

    fn looks_like_env(span: &str) -> bool {
        span.len() > 3
            && span.contains('_')
            && span
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    }

    fn looks_like_metric(span: &str) -> bool {
        ["_total", "_seconds", "_bytes", "_state"]
            .iter()
            .any(|s| span.ends_with(s))
            && span.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    }

    fn looks_like_file(span: &str) -> bool {
        span.starts_with("src/") || span.ends_with(".rs") || span == "run.sh"
    }

    #[test]
    fn every_cited_name_is_real() {
        let cmd = cmd_sources();
        let config = config_sources();
        for action in ALL.iter().flat_map(|list| list.iter()) {
            let text = action.text;
            for env in action.env {
                assert!(
                    config.contains(&format!("\"{env}\"")),
                    "{env} is not read by src/config: {text}"
                );
            }
            for metric in action.metrics {
                assert!(
                    METRICS.contains(&format!("\"{metric}\"")),
                    "{metric} is not written by src/metrics.rs: {text}"
                );
            }
            for file in action.files {
                assert!(root().join(file).is_file(), "{file} does not exist: {text}");
            }
            for flag in action.flags {
                let field = flag.trim_start_matches('-').replace('-', "_");
                assert!(
                    cmd.contains(&format!("pub {field}:")),
                    "{flag} is no argh field under src/cmd/: {text}"
                );
            }
            for feature in action.features {
                assert!(
                    CARGO.contains(&format!("\n{feature} = [")),
                    "{feature} is not a Cargo feature: {text}"
                );
            }
            for name in action
                .env
                .iter()
                .chain(action.flags)
                .chain(action.metrics)
                .chain(action.files)
                .chain(action.features)
            {
                assert!(
                    text.contains(&format!("`{name}")) || text.contains(&format!("{name}`")),
                    "{name} is listed but not cited in: {text}"
                );
            }
        }
    }

    /// A name in backticks that looks like an env var, metric, file or flag must be listed
    /// (and so checked above).
    #[test]
    fn no_text_cites_an_unlisted_name() {
        for action in ALL.iter().flat_map(|list| list.iter()) {
            for span in spans(action.text) {
                let listed = |names: &[&str]| names.contains(&span);
                if looks_like_env(span) {
                    assert!(listed(action.env), "{span} not in env of: {}", action.text);
                }
                if looks_like_metric(span) {
                    assert!(
                        listed(action.metrics),
                        "{span} not in metrics of: {}",
                        action.text
                    );
                }
                if looks_like_file(span) {
                    assert!(
                        listed(action.files),
                        "{span} not in files of: {}",
                        action.text
                    );
                }
                if span.starts_with("--") && !span.starts_with("--features") {
                    assert!(
                        listed(action.flags),
                        "{span} not in flags of: {}",
                        action.text
                    );
                }
            }
        }
    }

    /// Issue 11 item 11: texts that were false of this code.
    #[test]
    fn regression_issue_11_false_texts_are_gone() {
        for action in ALL.iter().flat_map(|list| list.iter()) {
            let text = action.text;
            assert!(
                !text.contains("includes the wait for a free worker"),
                "http_request_duration_seconds does not include the queue wait: {text}"
            );
            assert!(
                !text.contains("CONTINUOUS_PROFILING_ENABLED"),
                "that variable only switches the SLA monitor: {text}"
            );
        }
    }
}
