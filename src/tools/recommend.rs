//! What `analyze` concludes: the CPU categories and their budgets, the memory limits, the
//! severity rule, and the action items with the env vars, metrics and files they name.
//!
//! Owns every name of this service that a report may print (`ENV_VARS`, `FLAGS`, `METRICS`,
//! `FILES`): add one here, never in a format string elsewhere. Pure: no I/O, no clock.
//!
//! Severity rule. For a budget (a "must stay below" limit: Kong, JWT, JSON, HTTP, memory growth,
//! peak and steady heap, SLA latency) the ratio measured / limit decides: above 2x is critical,
//! above 1.5x high, above 1x medium; at or under the limit there is no finding. Lock contention
//! and allocation churn are symptoms rather than budgets: above 2x their threshold is medium,
//! above 1x low.

use serde::Serialize;

use crate::tools::report::FunctionShare;
use crate::tools::units::format_bytes;

/// Env vars of this service that action items may name.
pub const ENV_VARS: &[&str] = &[
    "CACHING_TTL_SECONDS",
    "CACHE_MAX_MEMORY_ENTRIES",
    "STALE_DATA_TOLERANCE_MINUTES",
    "KONG_TIMEOUT_MS",
    "JWT_EXPIRATION_MINUTES",
    "PROFILING_CPU_HZ",
    "CONTINUOUS_PROFILING_ENABLED",
    "SLA_THRESHOLDS",
    "MAX_REQUEST_BODY_SIZE",
    "LOG_LEVEL",
];

/// Command-line flags of `auth-service serve` that action items may name.
pub const FLAGS: &[&str] = &["--workers"];

/// Prometheus metrics of this service that action items may name.
pub const METRICS: &[&str] = &[
    "kong_cache_hits_total",
    "kong_cache_misses_total",
    "kong_operation_duration_seconds",
    "kong_operations_total",
    "jwt_tokens_issued_total",
    "http_request_duration_seconds",
    "http_requests_total",
    "heap_live_bytes",
    "heap_peak_bytes",
    "process_resident_memory_bytes",
];

/// Source files of this repository that action items may name.
pub const FILES: &[&str] = &[
    "src/kong/cache.rs",
    "src/kong/client.rs",
    "src/jwt.rs",
    "src/handlers/tokens.rs",
    "src/server/pool.rs",
    "src/server/adapter.rs",
    "src/http/response.rs",
    "src/profiling/alloc.rs",
    "src/metrics.rs",
];

const MIB: f64 = 1024.0 * 1024.0;
/// Memory limits. "MB" in the spec is read as MiB, the unit our heap reports print.
pub const GROWTH_LIMIT_BYTES_PER_HOUR: f64 = 50.0 * MIB;
pub const PEAK_LIMIT_BYTES: f64 = 300.0 * MIB;
pub const STEADY_LIMIT_BYTES: f64 = 200.0 * MIB;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// How a limit is judged: a budget to stay under, or a symptom threshold to flag above.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    Budget(f64),
    Flag(f64),
}

impl Limit {
    pub fn value(self) -> f64 {
        match self {
            Limit::Budget(v) | Limit::Flag(v) => v,
        }
    }
}

/// The severity rule of the module header; `None` when the limit is not crossed.
pub fn severity(measured: f64, limit: Limit) -> Option<Severity> {
    let value = limit.value();
    if value <= 0.0 || measured <= value {
        return None;
    }
    let ratio = measured / value;
    Some(match limit {
        Limit::Budget(_) if ratio > 2.0 => Severity::Critical,
        Limit::Budget(_) if ratio > 1.5 => Severity::High,
        Limit::Budget(_) => Severity::Medium,
        Limit::Flag(_) if ratio > 2.0 => Severity::Medium,
        Limit::Flag(_) => Severity::Low,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    KongLookups,
    JwtSigning,
    Json,
    Http,
    LockContention,
    AllocationChurn,
}

/// How a function name is matched.
#[derive(Clone, Copy, Debug)]
enum Pattern {
    /// A Rust path prefix on `::` boundaries: `sha2` matches `sha2::x`, not `sha2x::x`.
    Module(&'static str),
    /// A C symbol after dropping `__`, `GI_` and `libc_` decorations: `write` matches
    /// `__GI___libc_write`.
    Symbol(&'static str),
    /// A C symbol family: `memcpy` matches `__memcpy_avx_unaligned_erms`.
    SymbolPrefix(&'static str),
}

pub struct CategorySpec {
    pub category: Category,
    pub name: &'static str,
    pub limit: Limit,
    patterns: &'static [Pattern],
    actions: &'static [Action],
}

use Pattern::{Module, Symbol, SymbolPrefix};

/// The categories in matching order: a function belongs to the first that matches.
pub const CATEGORIES: &[CategorySpec] = &[
    CategorySpec {
        category: Category::KongLookups,
        name: "Kong lookups",
        limit: Limit::Budget(15.0),
        patterns: &[
            Module("auth_service::kong"),
            Module("ureq"),
            Module("ureq_proto"),
            Module("rustls"),
            Module("ring"),
        ],
        actions: KONG_ACTIONS,
    },
    CategorySpec {
        category: Category::JwtSigning,
        name: "JWT signing",
        limit: Limit::Budget(40.0),
        patterns: &[
            Module("auth_service::jwt"),
            Module("jsonwebtoken"),
            Module("hmac"),
            Module("sha2"),
            Module("base64"),
        ],
        actions: JWT_ACTIONS,
    },
    CategorySpec {
        category: Category::Json,
        name: "JSON",
        limit: Limit::Budget(8.0),
        patterns: &[Module("serde_json"), Module("serde")],
        actions: JSON_ACTIONS,
    },
    CategorySpec {
        category: Category::Http,
        name: "HTTP",
        limit: Limit::Budget(12.0),
        patterns: &[
            Module("tiny_http"),
            Module("auth_service::server"),
            Module("auth_service::http"),
            Module("std::io"),
            Module("std::net"),
            Module("std::sys::net"),
            Module("std::sys::pal::unix::net"),
            Symbol("send"),
            Symbol("sendto"),
            Symbol("sendmsg"),
            Symbol("recv"),
            Symbol("recvfrom"),
            Symbol("recvmsg"),
            Symbol("write"),
            Symbol("writev"),
            Symbol("read"),
            Symbol("readv"),
            Symbol("epoll_wait"),
            Symbol("poll"),
            Symbol("accept"),
            Symbol("accept4"),
        ],
        actions: HTTP_ACTIONS,
    },
    CategorySpec {
        category: Category::LockContention,
        name: "Lock contention",
        limit: Limit::Flag(5.0),
        patterns: &[
            Module("std::sync::mutex"),
            Module("std::sync::poison::mutex"),
            Module("std::sys::sync"),
            Module("parking_lot"),
            Module("parking_lot_core"),
            Module("lru"),
            SymbolPrefix("futex"),
            SymbolPrefix("lll_lock"),
            SymbolPrefix("pthread_mutex"),
        ],
        actions: LOCK_ACTIONS,
    },
    CategorySpec {
        category: Category::AllocationChurn,
        name: "Allocation churn",
        limit: Limit::Flag(10.0),
        patterns: &[
            Module("auth_service::profiling::alloc"),
            Module("alloc"),
            Symbol("malloc"),
            Symbol("free"),
            Symbol("cfree"),
            Symbol("realloc"),
            Symbol("calloc"),
            Symbol("int_malloc"),
            Symbol("int_free"),
            Symbol("int_realloc"),
            Symbol("malloc_consolidate"),
            SymbolPrefix("memcpy"),
            SymbolPrefix("memmove"),
            SymbolPrefix("rust_alloc"),
            SymbolPrefix("rust_dealloc"),
            SymbolPrefix("rust_realloc"),
        ],
        actions: ALLOC_ACTIONS,
    },
];

/// One suggested step, and the names of this service it mentions (checked by the tests).
pub struct Action {
    pub text: &'static str,
    pub env: &'static [&'static str],
    pub metrics: &'static [&'static str],
    pub files: &'static [&'static str],
}

const KONG_ACTIONS: &[Action] = &[
    Action {
        text: "Raise the credential cache hit rate: compare `kong_cache_hits_total` with \
               `kong_cache_misses_total`; raise `CACHING_TTL_SECONDS`, and \
               `CACHE_MAX_MEMORY_ENTRIES` when the active consumers outnumber it (eviction logic \
               in `src/kong/cache.rs`).",
        env: &["CACHING_TTL_SECONDS", "CACHE_MAX_MEMORY_ENTRIES"],
        metrics: &["kong_cache_hits_total", "kong_cache_misses_total"],
        files: &["src/kong/cache.rs"],
    },
    Action {
        text: "Check the cost per Kong call with `kong_operation_duration_seconds` and \
               `kong_operations_total`: TLS handshakes (`rustls`, `ring`) mean the keep-alive \
               agent in `src/kong/client.rs` is not reused; a lower `KONG_TIMEOUT_MS` with a \
               longer `STALE_DATA_TOLERANCE_MINUTES` serves stale credentials instead of waiting.",
        env: &["KONG_TIMEOUT_MS", "STALE_DATA_TOLERANCE_MINUTES"],
        metrics: &["kong_operation_duration_seconds", "kong_operations_total"],
        files: &["src/kong/client.rs"],
    },
];

const JWT_ACTIONS: &[Action] = &[
    Action {
        text: "Build the HMAC key once per credential rather than per request in `src/jwt.rs`, \
               and check `jwt_tokens_issued_total` against `http_requests_total`: more tokens \
               than clients need means a short `JWT_EXPIRATION_MINUTES` makes them re-issue.",
        env: &["JWT_EXPIRATION_MINUTES"],
        metrics: &["jwt_tokens_issued_total", "http_requests_total"],
        files: &["src/jwt.rs"],
    },
    Action {
        text: "Split signing cost between `sha2`, `base64` and claim serialization by profiling \
               at a higher `PROFILING_CPU_HZ` (e.g. 499); keep the claim building in `src/jwt.rs` and \
               `src/handlers/tokens.rs` free of extra copies; watch \
               `http_request_duration_seconds` for /tokens.",
        env: &["PROFILING_CPU_HZ"],
        metrics: &["http_request_duration_seconds"],
        files: &["src/handlers/tokens.rs", "src/jwt.rs"],
    },
];

const JSON_ACTIONS: &[Action] = &[
    Action {
        text: "Serialize response bodies straight into the output buffer (`serde_json::to_writer`) \
               in `src/http/response.rs` instead of building `serde_json::Value` trees; keep \
               `MAX_REQUEST_BODY_SIZE` small so no large body is ever parsed; watch \
               `http_request_duration_seconds`.",
        env: &["MAX_REQUEST_BODY_SIZE"],
        metrics: &["http_request_duration_seconds"],
        files: &["src/http/response.rs"],
    },
    Action {
        text: "Kong responses are parsed on every cache miss: a longer `CACHING_TTL_SECONDS` \
               parses fewer (`kong_cache_misses_total`); deserialize only the fields used in \
               `src/kong/client.rs`.",
        env: &["CACHING_TTL_SECONDS"],
        metrics: &["kong_cache_misses_total"],
        files: &["src/kong/client.rs"],
    },
];

const HTTP_ACTIONS: &[Action] = &[
    Action {
        text: "Size the worker pool to the load: `--workers` (see `src/server/pool.rs`) too high \
               for the cores adds context switches, too low queues requests; compare \
               `http_request_duration_seconds` with `http_requests_total` per second. Keep \
               `LOG_LEVEL` at info: per-request debug lines are extra write syscalls.",
        env: &["--workers", "LOG_LEVEL"],
        metrics: &["http_request_duration_seconds", "http_requests_total"],
        files: &["src/server/pool.rs"],
    },
    Action {
        text: "Write each response with one buffered write (headers and body together) in \
               `src/server/adapter.rs`; reject oversized bodies early with \
               `MAX_REQUEST_BODY_SIZE`; `http_requests_total` by status shows how many are \
               rejected.",
        env: &["MAX_REQUEST_BODY_SIZE"],
        metrics: &["http_requests_total"],
        files: &["src/server/adapter.rs"],
    },
];

const LOCK_ACTIONS: &[Action] = &[
    Action {
        text: "Keep the cache mutex in `src/kong/cache.rs` short (never across a Kong call); \
               contention grows with `--workers` and with a large `CACHE_MAX_MEMORY_ENTRIES` \
               LRU; a high `kong_cache_hits_total` rate makes this lock the hottest.",
        env: &["CACHE_MAX_MEMORY_ENTRIES", "--workers"],
        metrics: &["kong_cache_hits_total"],
        files: &["src/kong/cache.rs"],
    },
    Action {
        text: "The heap profiler's site table takes a lock per sampled allocation \
               (`src/profiling/alloc.rs`): compare a run with `CONTINUOUS_PROFILING_ENABLED=false` \
               and watch `http_request_duration_seconds`.",
        env: &["CONTINUOUS_PROFILING_ENABLED"],
        metrics: &["http_request_duration_seconds"],
        files: &["src/profiling/alloc.rs"],
    },
];

const ALLOC_ACTIONS: &[Action] = &[
    Action {
        text: "Find the allocating call sites in a heap profile (Top Allocation Sites \
               (Allocated)); pre-size response buffers in `src/http/response.rs`; \
               `MAX_REQUEST_BODY_SIZE` bounds the per-request body buffer; watch \
               `heap_peak_bytes`.",
        env: &["MAX_REQUEST_BODY_SIZE"],
        metrics: &["heap_peak_bytes"],
        files: &["src/http/response.rs"],
    },
    Action {
        text: "Check the allocator wrapper's own cost in `src/profiling/alloc.rs` (it counts \
               every call): compare with `CONTINUOUS_PROFILING_ENABLED=false` and watch \
               `heap_live_bytes`.",
        env: &["CONTINUOUS_PROFILING_ENABLED"],
        metrics: &["heap_live_bytes"],
        files: &["src/profiling/alloc.rs"],
    },
];

const GROWTH_ACTIONS: &[Action] = &[
    Action {
        text: "Bound what the credential cache keeps: `CACHE_MAX_MEMORY_ENTRIES` entries, held \
               as stale for `STALE_DATA_TOLERANCE_MINUTES` (`src/kong/cache.rs`); \
               `heap_live_bytes` should flatten once the cache is full.",
        env: &["CACHE_MAX_MEMORY_ENTRIES", "STALE_DATA_TOLERANCE_MINUTES"],
        metrics: &["heap_live_bytes"],
        files: &["src/kong/cache.rs"],
    },
    Action {
        text: "Compare `process_resident_memory_bytes` with `heap_live_bytes`: if both climb, \
               take a heap profile with `CONTINUOUS_PROFILING_ENABLED=true` and follow the top \
               in-use sites (sampling in `src/profiling/alloc.rs`).",
        env: &["CONTINUOUS_PROFILING_ENABLED"],
        metrics: &["process_resident_memory_bytes", "heap_live_bytes"],
        files: &["src/profiling/alloc.rs"],
    },
];

const PEAK_ACTIONS: &[Action] = &[Action {
    text: "Peaks follow concurrency: fewer `--workers` and a smaller `MAX_REQUEST_BODY_SIZE` \
           bound the per-request buffers alive at once (`src/server/pool.rs`); watch \
           `heap_peak_bytes`.",
    env: &["--workers", "MAX_REQUEST_BODY_SIZE"],
    metrics: &["heap_peak_bytes"],
    files: &["src/server/pool.rs"],
}];

const STEADY_ACTIONS: &[Action] = &[Action {
    text: "The steady heap is mostly the credential cache: lower `CACHE_MAX_MEMORY_ENTRIES` or \
           `STALE_DATA_TOLERANCE_MINUTES` (`src/kong/cache.rs`) and confirm with \
           `heap_live_bytes`.",
    env: &["CACHE_MAX_MEMORY_ENTRIES", "STALE_DATA_TOLERANCE_MINUTES"],
    metrics: &["heap_live_bytes"],
    files: &["src/kong/cache.rs"],
}];

const LATENCY_ACTIONS: &[Action] = &[
    Action {
        text: "Follow the slow route in `src/handlers/tokens.rs`: cache misses wait on Kong \
               (`kong_operation_duration_seconds`), bounded by `KONG_TIMEOUT_MS`; the SLA \
               itself is `SLA_THRESHOLDS`.",
        env: &["KONG_TIMEOUT_MS", "SLA_THRESHOLDS"],
        metrics: &["kong_operation_duration_seconds"],
        files: &["src/handlers/tokens.rs"],
    },
    Action {
        text: "Check queueing: `http_request_duration_seconds` includes the wait for a free \
               worker, so raise `--workers` (`src/server/pool.rs`) when workers mostly wait on Kong \
               (each wait bounded by `KONG_TIMEOUT_MS`).",
        env: &["--workers", "KONG_TIMEOUT_MS"],
        metrics: &["http_request_duration_seconds"],
        files: &["src/server/pool.rs"],
    },
];

/// Every action list, for the tests.
pub const ALL_ACTIONS: &[&[Action]] = &[
    KONG_ACTIONS,
    JWT_ACTIONS,
    JSON_ACTIONS,
    HTTP_ACTIONS,
    LOCK_ACTIONS,
    ALLOC_ACTIONS,
    GROWTH_ACTIONS,
    PEAK_ACTIONS,
    STEADY_ACTIONS,
    LATENCY_ACTIONS,
];

/// The category of one function, or `None` when no pattern matches. For trait impls
/// (`<A as B>::f`) the self type `A` is tried first, then the trait `B`.
pub fn categorize(function: &str) -> Option<&'static CategorySpec> {
    let (self_type, trait_path) = subjects(function);
    for subject in [Some(self_type), trait_path].into_iter().flatten() {
        for spec in CATEGORIES {
            if spec.patterns.iter().any(|p| matches(*p, subject)) {
                return Some(spec);
            }
        }
    }
    None
}

fn strip_reference(s: &str) -> &str {
    let mut s = s.trim();
    for prefix in ["&mut ", "&", "*const ", "*mut ", "dyn ", "impl "] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.trim_start();
        }
    }
    s
}

/// `<&mut serde_json::Ser as serde::Serializer>::f` → (`serde_json::Ser`, `Some("serde::Serializer")`).
fn subjects(function: &str) -> (&str, Option<&str>) {
    let Some(inner) = function.strip_prefix('<') else {
        return (function, None);
    };
    // Find the `>` closing the leading `<`, and a top-level ` as ` before it.
    let mut depth = 0usize;
    let mut as_at = None;
    let mut close = inner.len();
    for (i, c) in inner.char_indices() {
        match c {
            '<' => depth += 1,
            '>' if depth == 0 => {
                close = i;
                break;
            }
            '>' => depth -= 1,
            ' ' if depth == 0 && as_at.is_none() && inner[i..].starts_with(" as ") => {
                as_at = Some(i)
            }
            _ => {}
        }
    }
    match as_at {
        Some(at) => (
            strip_reference(&inner[..at]),
            Some(strip_reference(&inner[at + 4..close])),
        ),
        None => (strip_reference(&inner[..close]), None),
    }
}

fn matches(pattern: Pattern, subject: &str) -> bool {
    match pattern {
        Module(prefix) => subject
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::") || rest.starts_with('<')),
        Symbol(name) => !subject.contains("::") && c_symbol(subject) == name,
        SymbolPrefix(name) => !subject.contains("::") && c_symbol(subject).starts_with(name),
    }
}

/// `__GI___libc_write@GLIBC_2.2.5` → `write`.
fn c_symbol(name: &str) -> &str {
    let name = name.split('@').next().unwrap_or(name);
    let mut name = name.trim_start_matches('_');
    if let Some(rest) = name.strip_prefix("GI_") {
        name = rest.trim_start_matches('_');
    }
    if let Some(rest) = name.strip_prefix("libc_") {
        name = rest;
    }
    name
}

/// One category's share of a CPU profile.
#[derive(Clone, Debug, Serialize)]
pub struct CategoryShare {
    pub category: Category,
    pub name: &'static str,
    pub self_percent: f64,
    /// "below" for budgets, "above" for flag thresholds.
    pub limit_kind: &'static str,
    pub limit_percent: f64,
    pub severity: Option<Severity>,
    /// The category's functions, largest first.
    pub functions: Vec<(String, f64)>,
}

/// Splits a profile's self time into the categories; each function is counted once.
/// The second value is the share left uncategorized.
pub fn category_shares(functions: &[FunctionShare]) -> (Vec<CategoryShare>, f64) {
    let mut shares: Vec<CategoryShare> = CATEGORIES
        .iter()
        .map(|spec| CategoryShare {
            category: spec.category,
            name: spec.name,
            self_percent: 0.0,
            limit_kind: match spec.limit {
                Limit::Budget(_) => "below",
                Limit::Flag(_) => "above",
            },
            limit_percent: spec.limit.value(),
            severity: None,
            functions: Vec::new(),
        })
        .collect();
    let mut other = 0.0;
    for function in functions {
        match categorize(&function.function) {
            Some(spec) => {
                let share = shares
                    .iter_mut()
                    .find(|s| s.category == spec.category)
                    .expect("every spec has a share");
                share.self_percent += function.self_percent;
                share
                    .functions
                    .push((function.function.clone(), function.self_percent));
            }
            None => other += function.self_percent,
        }
    }
    for (share, spec) in shares.iter_mut().zip(CATEGORIES) {
        share.severity = severity(share.self_percent, spec.limit);
        share.functions.sort_by(|a, b| b.1.total_cmp(&a.1));
    }
    (shares, other)
}

/// One optimization opportunity.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub topic: &'static str,
    /// The profile file the finding comes from.
    pub source: String,
    pub measured: f64,
    pub limit: f64,
    pub unit: &'static str,
    pub issue: String,
    pub expected_impact: String,
    pub action_items: Vec<&'static str>,
    pub references: Vec<&'static str>,
}

impl Finding {
    fn new(
        severity: Severity,
        topic: &'static str,
        source: &str,
        (measured, limit, unit): (f64, f64, &'static str),
        issue: String,
        expected_impact: String,
        actions: &'static [Action],
    ) -> Finding {
        let mut references: Vec<&'static str> = Vec::new();
        for file in actions.iter().flat_map(|a| a.files.iter()) {
            if !references.contains(file) {
                references.push(file);
            }
        }
        Finding {
            severity,
            topic,
            source: source.to_owned(),
            measured,
            limit,
            unit,
            issue,
            expected_impact,
            action_items: actions.iter().map(|a| a.text).collect(),
            references,
        }
    }
}

/// Findings of one CPU profile's category shares. `cpu_seconds` scales the impact estimate.
pub fn cpu_findings(
    source: &str,
    shares: &[CategoryShare],
    cpu_seconds: Option<f64>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (share, spec) in shares.iter().zip(CATEGORIES) {
        let Some(severity) = share.severity else {
            continue;
        };
        let top: Vec<String> = share
            .functions
            .iter()
            .take(3)
            .map(|(f, p)| format!("`{f}` {p:.1}%"))
            .collect();
        let (issue, impact) = match spec.limit {
            Limit::Budget(budget) => {
                let excess = share.self_percent - budget;
                let seconds = cpu_seconds
                    .map(|s| {
                        format!(
                            " (about {:.2} of {s:.2} CPU-seconds in this profile)",
                            s * excess / 100.0
                        )
                    })
                    .unwrap_or_default();
                (
                    format!(
                        "{}: {:.1}% of CPU, over the {budget:.0}% budget ({:.1}x); top: {}.",
                        spec.name,
                        share.self_percent,
                        share.self_percent / budget,
                        top.join(", ")
                    ),
                    format!(
                        "Bringing {} under {budget:.0}% frees at least {excess:.1}% of CPU{seconds}.",
                        spec.name
                    ),
                )
            }
            Limit::Flag(threshold) => (
                format!(
                    "{}: {:.1}% of CPU, above the {threshold:.0}% flag threshold; top: {}.",
                    spec.name,
                    share.self_percent,
                    top.join(", ")
                ),
                format!(
                    "Up to {:.1}% of CPU; this time also adds directly to tail latency under load.",
                    share.self_percent
                ),
            ),
        };
        out.push(Finding::new(
            severity,
            spec.name,
            source,
            (share.self_percent, spec.limit.value(), "% CPU"),
            issue,
            impact,
            spec.actions,
        ));
    }
    out
}

/// Findings of measured latency (from profile metadata) against its SLA thresholds.
pub fn latency_findings(
    source: &str,
    route: Option<&str>,
    pairs: &[(&'static str, f64, f64)],
) -> Vec<Finding> {
    let route = route.unwrap_or("the profiled route");
    pairs
        .iter()
        .filter_map(|&(name, measured, threshold)| {
            let severity = severity(measured, Limit::Budget(threshold))?;
            Some(Finding::new(
                severity,
                "SLA latency",
                source,
                (measured, threshold, "ms"),
                format!(
                    "{name} latency of {route} was {measured:.1} ms, over the {threshold:.0} ms SLA ({:.1}x).",
                    measured / threshold
                ),
                format!(
                    "Recovering {:.1} ms at {name} brings {route} back within its SLA.",
                    measured - threshold
                ),
                LATENCY_ACTIONS,
            ))
        })
        .collect()
}

/// Findings of a heap profile: growth per hour, peak heap and steady (end) live heap.
pub fn memory_findings(
    source: &str,
    growth_per_hour: Option<f64>,
    peak: Option<u64>,
    steady: Option<u64>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(rate) = growth_per_hour
        && let Some(severity) = severity(rate, Limit::Budget(GROWTH_LIMIT_BYTES_PER_HOUR))
    {
        out.push(Finding::new(
            severity,
            "Memory growth",
            source,
            (rate / MIB, GROWTH_LIMIT_BYTES_PER_HOUR / MIB, "MiB/h"),
            format!(
                "The live heap grows {}/h, over the {}/h limit ({:.1}x).",
                format_bytes(rate as u64),
                format_bytes(GROWTH_LIMIT_BYTES_PER_HOUR as u64),
                rate / GROWTH_LIMIT_BYTES_PER_HOUR
            ),
            format!(
                "Unchecked, that is {} more live heap per day; a bounded heap keeps RSS flat.",
                format_bytes((rate * 24.0) as u64)
            ),
            GROWTH_ACTIONS,
        ));
    }
    let fixed = [
        ("Peak heap", peak, PEAK_LIMIT_BYTES, PEAK_ACTIONS),
        ("Steady heap", steady, STEADY_LIMIT_BYTES, STEADY_ACTIONS),
    ];
    for (topic, value, limit, actions) in fixed {
        let Some(value) = value else { continue };
        let Some(severity) = severity(value as f64, Limit::Budget(limit)) else {
            continue;
        };
        out.push(Finding::new(
            severity,
            topic,
            source,
            (value as f64 / MIB, limit / MIB, "MiB"),
            format!(
                "{topic} is {}, over the {} limit ({:.1}x).",
                format_bytes(value),
                format_bytes(limit as u64),
                value as f64 / limit
            ),
            format!(
                "Getting under {} saves {} per instance.",
                format_bytes(limit as u64),
                format_bytes(value - limit as u64)
            ),
            actions,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_function_lands_in_one_category() {
        let cases: [(&str, Option<Category>); 24] = [
            (
                "auth_service::kong::cache::Cache::get",
                Some(Category::KongLookups),
            ),
            ("ureq::agent::Agent::run", Some(Category::KongLookups)),
            ("ring::aead::seal", Some(Category::KongLookups)),
            ("auth_service::jwt::sign", Some(Category::JwtSigning)),
            ("jsonwebtoken::encoding::encode", Some(Category::JwtSigning)),
            (
                "<sha2::core_api::Sha256VarCore as digest::core_api::UpdateCore>::update_blocks",
                Some(Category::JwtSigning),
            ),
            ("base64::engine::Engine::encode", Some(Category::JwtSigning)),
            (
                "<&mut serde_json::ser::Serializer<W> as serde::ser::Serializer>::serialize_str",
                Some(Category::Json),
            ),
            ("serde::de::Visitor::visit_str", Some(Category::Json)),
            (
                "tiny_http::util::refined_tcp_stream::RefinedTcpStream::read",
                Some(Category::Http),
            ),
            (
                "<std::net::tcp::TcpStream as std::io::Write>::write",
                Some(Category::Http),
            ),
            ("__libc_send", Some(Category::Http)),
            ("__GI___libc_write", Some(Category::Http)),
            ("epoll_wait", Some(Category::Http)),
            (
                "std::sys::sync::mutex::futex::Mutex::lock_contended",
                Some(Category::LockContention),
            ),
            ("futex_wait", Some(Category::LockContention)),
            ("lru::LruCache<K,V>::get", Some(Category::LockContention)),
            ("malloc", Some(Category::AllocationChurn)),
            ("_int_malloc", Some(Category::AllocationChurn)),
            (
                "__memcpy_avx_unaligned_erms",
                Some(Category::AllocationChurn),
            ),
            (
                "alloc::raw_vec::RawVec<T,A>::grow_one",
                Some(Category::AllocationChurn),
            ),
            (
                "auth_service::profiling::alloc::sample",
                Some(Category::AllocationChurn),
            ),
            ("sha2x::f", None),
            ("core::fmt::write", None),
        ];
        for (function, expected) in cases {
            assert_eq!(
                categorize(function).map(|s| s.category),
                expected,
                "{function}"
            );
        }
    }

    #[test]
    fn shares_add_up_without_double_counting() {
        let functions: Vec<FunctionShare> = [
            ("auth_service::jwt::sign", 30.0),
            ("sha2::compress256", 20.0),
            ("serde_json::to_vec", 9.0),
            ("<alloc::vec::Vec<u8> as std::io::Write>::write", 4.0),
            ("core::fmt::write", 7.0),
        ]
        .iter()
        .map(|(f, p)| FunctionShare {
            function: (*f).into(),
            self_percent: *p,
            self_seconds: None,
            total_percent: None,
            location: String::new(),
        })
        .collect();
        let (shares, other) = category_shares(&functions);
        let sum: f64 = shares.iter().map(|s| s.self_percent).sum::<f64>() + other;
        assert!((sum - 70.0).abs() < 1e-9);
        let get = |c| shares.iter().find(|s| s.category == c).unwrap();
        assert_eq!(get(Category::JwtSigning).self_percent, 50.0);
        assert_eq!(get(Category::JwtSigning).severity, Some(Severity::Medium));
        assert_eq!(get(Category::Json).severity, Some(Severity::Medium));
        // The Vec self type decides: allocation, not HTTP.
        assert_eq!(get(Category::AllocationChurn).self_percent, 4.0);
        assert_eq!(get(Category::Http).self_percent, 0.0);
        assert_eq!(other, 7.0);
    }

    #[test]
    fn severity_rule() {
        let cases = [
            (15.0, Limit::Budget(15.0), None),
            (15.1, Limit::Budget(15.0), Some(Severity::Medium)),
            (22.6, Limit::Budget(15.0), Some(Severity::High)),
            (30.1, Limit::Budget(15.0), Some(Severity::Critical)),
            (5.0, Limit::Flag(5.0), None),
            (6.0, Limit::Flag(5.0), Some(Severity::Low)),
            (10.1, Limit::Flag(5.0), Some(Severity::Medium)),
            (90.0, Limit::Flag(5.0), Some(Severity::Medium)),
        ];
        for (measured, limit, expected) in cases {
            assert_eq!(
                severity(measured, limit),
                expected,
                "{measured} vs {limit:?}"
            );
        }
        assert!(Severity::Critical < Severity::Low);
    }

    #[test]
    fn memory_limits() {
        let findings = memory_findings("h.md", Some(120.0 * MIB), Some(100 << 20), Some(250 << 20));
        let topics: Vec<_> = findings.iter().map(|f| (f.topic, f.severity)).collect();
        assert_eq!(
            topics,
            [
                ("Memory growth", Severity::Critical),
                ("Steady heap", Severity::Medium)
            ]
        );
        assert!(memory_findings("h.md", Some(10.0 * MIB), None, None).is_empty());
    }

    #[test]
    fn actions_name_real_env_vars_metrics_and_files() {
        for actions in ALL_ACTIONS {
            for action in *actions {
                assert!(
                    action.env.iter().any(|e| ENV_VARS.contains(e)),
                    "{}",
                    action.text
                );
                assert!(
                    !action.metrics.is_empty() && !action.files.is_empty(),
                    "{}",
                    action.text
                );
                for name in action.env.iter().chain(action.metrics).chain(action.files) {
                    assert!(
                        ENV_VARS.contains(name)
                            || FLAGS.contains(name)
                            || METRICS.contains(name)
                            || FILES.contains(name),
                        "{name} is not a known name"
                    );
                    assert!(
                        action.text.contains(&format!("`{name}")),
                        "{name} not in: {}",
                        action.text
                    );
                }
            }
        }
    }

    /// Every file a report may reference exists in this repository.
    #[test]
    fn referenced_files_exist() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let missing: Vec<&str> = FILES
            .iter()
            .copied()
            .filter(|file| !root.join(file).is_file())
            .collect();
        assert!(missing.is_empty(), "referenced files missing: {missing:?}");
    }
}
