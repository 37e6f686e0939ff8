//! Counters and histograms of the request path, as fixed arrays of relaxed atomics.
//!
//! Owns the metric names of SPEC 4 and the Prometheus text rendering of what it stores. Label
//! sets are closed enums (routes, methods, a status table, Kong operations), so recording is an
//! index and one `fetch_add`: no lock, no allocation, no map lookup per request. Consumer ids
//! never become labels. Gauges that belong to other components (cache size, breaker state,
//! SLA and profiler figures) are passed in at render time.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::http::Method;

/// The routes we label requests with; `Unmatched` covers 404s so scanners cannot blow up the
/// label set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteLabel {
    Tokens,
    TokensValidate,
    Health,
    HealthReady,
    HealthLive,
    HealthTelemetry,
    Metrics,
    OpenApi,
    Debug,
    Unmatched,
}

impl RouteLabel {
    pub const ALL: [RouteLabel; 10] = [
        RouteLabel::Tokens,
        RouteLabel::TokensValidate,
        RouteLabel::Health,
        RouteLabel::HealthReady,
        RouteLabel::HealthLive,
        RouteLabel::HealthTelemetry,
        RouteLabel::Metrics,
        RouteLabel::OpenApi,
        RouteLabel::Debug,
        RouteLabel::Unmatched,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouteLabel::Tokens => "/tokens",
            RouteLabel::TokensValidate => "/tokens/validate",
            RouteLabel::Health => "/health",
            RouteLabel::HealthReady => "/health/ready",
            RouteLabel::HealthLive => "/health/live",
            RouteLabel::HealthTelemetry => "/health/telemetry",
            RouteLabel::Metrics => "/metrics",
            RouteLabel::OpenApi => "/",
            RouteLabel::Debug => "/debug",
            RouteLabel::Unmatched => "unmatched",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const METHODS: [Method; 8] = [
    Method::Get,
    Method::Head,
    Method::Post,
    Method::Put,
    Method::Patch,
    Method::Delete,
    Method::Options,
    Method::Other,
];

/// Statuses with their own counter; anything else is counted under its class (`2xx` …).
const STATUSES: [u16; 17] = [
    200, 201, 204, 304, 400, 401, 403, 404, 405, 409, 413, 429, 431, 500, 502, 503, 504,
];
const STATUS_SLOTS: usize = STATUSES.len() + 5;

fn status_slot(status: u16) -> usize {
    match STATUSES.iter().position(|known| *known == status) {
        Some(index) => index,
        None => STATUSES.len() + usize::from((status / 100).clamp(1, 5) - 1),
    }
}

fn status_label(slot: usize) -> String {
    match STATUSES.get(slot) {
        Some(status) => status.to_string(),
        None => format!("{}xx", slot - STATUSES.len() + 1),
    }
}

/// Histogram bucket upper bounds in seconds (Prometheus' defaults, plus sub-millisecond).
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        // Only the first bucket that fits is bumped; rendering accumulates, which keeps the
        // hot path at three atomic adds whatever the latency.
        if let Some(index) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let separator = if labels.is_empty() { "" } else { "," };
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {count}"
        );
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// `(upper bound in seconds, observations at or below it)`, as Prometheus' `le` series;
    /// for the OTLP export, which reads these atomics rather than keeping its own.
    pub fn cumulative_buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let mut cumulative = 0;
        BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(move |(bound, bucket)| {
                cumulative += bucket.load(Ordering::Relaxed);
                (*bound, cumulative)
            })
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    pub fn mean(&self) -> Duration {
        let count = self.count();
        if count == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.sum_micros.load(Ordering::Relaxed) / count)
    }
}

/// What we asked Kong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KongOperation {
    GetCredentials,
    CreateCredential,
    HealthCheck,
}

impl KongOperation {
    pub const ALL: [KongOperation; 3] = [
        KongOperation::GetCredentials,
        KongOperation::CreateCredential,
        KongOperation::HealthCheck,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KongOperation::GetCredentials => "get_credentials",
            KongOperation::CreateCredential => "create_credential",
            KongOperation::HealthCheck => "health_check",
        }
    }
}

/// How a Kong call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KongResult {
    Success,
    NotFound,
    Conflict,
    Failure,
}

impl KongResult {
    pub const ALL: [KongResult; 4] = [
        KongResult::Success,
        KongResult::NotFound,
        KongResult::Conflict,
        KongResult::Failure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KongResult::Success => "success",
            KongResult::NotFound => "not_found",
            KongResult::Conflict => "conflict",
            KongResult::Failure => "failure",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidationResult {
    Valid,
    Expired,
    Invalid,
    Rejected,
}

impl ValidationResult {
    pub const ALL: [ValidationResult; 4] = [
        ValidationResult::Valid,
        ValidationResult::Expired,
        ValidationResult::Invalid,
        ValidationResult::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ValidationResult::Valid => "valid",
            ValidationResult::Expired => "expired",
            ValidationResult::Invalid => "invalid",
            ValidationResult::Rejected => "rejected",
        }
    }
}

const ROUTES: usize = RouteLabel::ALL.len();

/// A metric family: its name and help text. The Prometheus exposition below, the SLA
/// monitor's lines and the OTLP instruments (`telemetry::instruments`) all take them from
/// `family`, so the two exports never drift apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
}

/// The families exported both as Prometheus text and over OTLP.
pub mod family {
    use super::Family;

    const fn family(name: &'static str, help: &'static str) -> Family {
        Family { name, help }
    }

    pub const HTTP_REQUESTS: Family = family(
        "http_requests_total",
        "HTTP requests by route, method and status.",
    );
    pub const REQUEST_DURATION: Family = family(
        "http_request_duration_seconds",
        "Service time: from a worker taking a request to its response being handed to the socket (the queue wait is http_request_queue_seconds).",
    );
    pub const QUEUE_WAIT: Family = family(
        "http_request_queue_seconds",
        "Queue wait: from the first byte of a request being read to a worker taking it.",
    );
    pub const KONG_OPERATIONS: Family = family(
        "kong_operations_total",
        "Kong Admin API calls by operation and result.",
    );
    pub const KONG_DURATION: Family = family(
        "kong_operation_duration_seconds",
        "Kong Admin API call latency, retries included.",
    );
    pub const CACHE_HITS: Family = family(
        "kong_cache_hits_total",
        "Credential lookups answered from fresh cache.",
    );
    pub const CACHE_MISSES: Family = family(
        "kong_cache_misses_total",
        "Credential lookups that needed Kong.",
    );
    pub const CACHE_STALE_SERVED: Family = family(
        "kong_cache_stale_served_total",
        "Stale credentials served: while a refresh was in flight, because Kong failed or the breaker was open, or because too many workers waited on Kong.",
    );
    pub const KONG_WAIT_REJECTED: Family = family(
        "kong_wait_rejected_total",
        "Requests turned away from waiting on Kong because KONG_MAX_WAITING_WORKERS workers already waited (stale credential if any, else 503 AUTH_004).",
    );
    pub const CACHE_ENTRIES: Family = family(
        "kong_cache_entries",
        "Credential cache entries (fresh, stale and negative).",
    );
    pub const BREAKER_STATE: Family = family(
        "circuit_breaker_state",
        "Kong circuit breaker: 0 closed, 1 open, 2 half-open.",
    );
    pub const TOKENS_ISSUED: Family =
        family("jwt_tokens_issued_total", "Tokens issued by /tokens.");
    pub const VALIDATIONS: Family = family("jwt_validations_total", "Token validations by result.");
    pub const HANDLER_PANICS: Family = family(
        "http_handler_panics_total",
        "Handler panics contained to a 500.",
    );
    pub const PROFILING_SESSIONS: Family = family(
        "profiling_sessions_total",
        "Profiling sessions started, by trigger.",
    );
    pub const PROFILING_ACTIVE: Family =
        family("profiling_active", "1 while a profiling session runs.");
    pub const RESIDENT_MEMORY: Family =
        family("process_resident_memory_bytes", "Resident set size.");
    pub const SLA_P95: Family = family(
        "sla_p95_seconds",
        "Nearest-rank p95 latency of the SLA window, by route.",
    );
    pub const SLA_P99: Family = family(
        "sla_p99_seconds",
        "Nearest-rank p99 latency of the SLA window, by route.",
    );
    pub const SLA_VIOLATIONS: Family = family(
        "sla_violations_total",
        "SLA violation decisions, by whether a profile started.",
    );
}

/// Reads one counter of `Metrics`.
pub type ReadCounter = fn(&Metrics) -> u64;

/// The unlabelled counters of `Metrics`, with how to read each.
pub const PLAIN_COUNTERS: [(Family, ReadCounter); 6] = [
    (family::CACHE_HITS, |m| m.cache_hits.load(Ordering::Relaxed)),
    (family::CACHE_MISSES, |m| {
        m.cache_misses.load(Ordering::Relaxed)
    }),
    (family::CACHE_STALE_SERVED, |m| {
        m.cache_stale_served.load(Ordering::Relaxed)
    }),
    (family::KONG_WAIT_REJECTED, |m| {
        m.kong_wait_rejected.load(Ordering::Relaxed)
    }),
    (family::TOKENS_ISSUED, |m| {
        m.tokens_issued.load(Ordering::Relaxed)
    }),
    (family::HANDLER_PANICS, |m| m.panics.load(Ordering::Relaxed)),
];

pub struct Metrics {
    requests: [[[AtomicU64; STATUS_SLOTS]; METHODS.len()]; ROUTES],
    /// Service time: from a worker taking the request to its response being handed to the
    /// socket.
    durations: [Histogram; ROUTES],
    /// From the request's first byte being read to a worker taking it (queue wait).
    queue_waits: [Histogram; ROUTES],
    kong_operations: [[AtomicU64; KongResult::ALL.len()]; KongOperation::ALL.len()],
    kong_durations: [Histogram; KongOperation::ALL.len()],
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub cache_stale_served: AtomicU64,
    /// Requests that would have waited on Kong while `KONG_MAX_WAITING_WORKERS` workers
    /// already did (served stale when there was a stale credential, else 503 AUTH_004).
    pub kong_wait_rejected: AtomicU64,
    pub tokens_issued: AtomicU64,
    validations: [AtomicU64; ValidationResult::ALL.len()],
    pub panics: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: [const { [const { [const { AtomicU64::new(0) }; STATUS_SLOTS] }; METHODS.len()] };
                ROUTES],
            durations: [const { Histogram::new() }; ROUTES],
            queue_waits: [const { Histogram::new() }; ROUTES],
            kong_operations: [const { [const { AtomicU64::new(0) }; KongResult::ALL.len()] };
                KongOperation::ALL.len()],
            kong_durations: [const { Histogram::new() }; KongOperation::ALL.len()],
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            cache_stale_served: AtomicU64::new(0),
            kong_wait_rejected: AtomicU64::new(0),
            tokens_issued: AtomicU64::new(0),
            validations: [const { AtomicU64::new(0) }; ValidationResult::ALL.len()],
            panics: AtomicU64::new(0),
        }
    }
}

/// The connection layer's counters (owned by the server), sampled when `/metrics` is rendered.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnectionStats {
    pub open: u64,
    pub max: u64,
    pub accepted: u64,
    pub accept_errors: u64,
    pub thread_failures: u64,
    /// `(reason, count)` rows of `http_connections_closed_total`.
    pub closed: [(&'static str, u64); 6],
}

/// Figures owned elsewhere, sampled when `/metrics` is rendered.
#[derive(Default)]
pub struct Gauges {
    pub connections: ConnectionStats,
    pub cache_entries: usize,
    /// 0 closed, 1 open, 2 half-open.
    pub breaker_state: u8,
    pub resident_bytes: u64,
    pub cpu_seconds: f64,
    /// The service's heap (the profiler's own allocations apart).
    pub heap_live_bytes: u64,
    pub heap_peak_bytes: u64,
    /// The profiler's own live heap (sample tables, symbol data, reports).
    pub profiler_heap_bytes: u64,
    pub profiling_active: bool,
    pub profiling_storage_bytes: u64,
    /// `(trigger, count)` rows of `profiling_sessions_total`.
    pub profiling_sessions: Vec<(&'static str, u64)>,
    /// Extra exposition text from the SLA monitor (already in Prometheus format).
    pub extra: String,
}

impl Metrics {
    pub fn record_request(
        &self,
        route: RouteLabel,
        method: Method,
        status: u16,
        elapsed: Duration,
    ) {
        let method_index = METHODS
            .iter()
            .position(|m| *m == method)
            .unwrap_or(METHODS.len() - 1);
        self.requests[route.index()][method_index][status_slot(status)]
            .fetch_add(1, Ordering::Relaxed);
        self.durations[route.index()].observe(elapsed);
    }

    /// The wait of one request between being read and a worker taking it.
    pub fn record_queue_wait(&self, route: RouteLabel, waited: Duration) {
        self.queue_waits[route.index()].observe(waited);
    }

    pub fn record_kong(&self, operation: KongOperation, result: KongResult, elapsed: Duration) {
        self.kong_operations[operation as usize][result as usize].fetch_add(1, Ordering::Relaxed);
        self.kong_durations[operation as usize].observe(elapsed);
    }

    pub fn record_validation(&self, result: ValidationResult) {
        self.validations[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn route_duration(&self, route: RouteLabel) -> &Histogram {
        &self.durations[route.index()]
    }

    pub fn queue_wait(&self, route: RouteLabel) -> &Histogram {
        &self.queue_waits[route.index()]
    }

    /// Every non-zero `http_requests_total` series as `(route, method, status label, count)`.
    pub fn request_counts(&self) -> Vec<(RouteLabel, Method, String, u64)> {
        let mut rows = Vec::new();
        for route in RouteLabel::ALL {
            for (method_index, method) in METHODS.iter().enumerate() {
                for (slot, counter) in self.requests[route.index()][method_index]
                    .iter()
                    .enumerate()
                {
                    let value = counter.load(Ordering::Relaxed);
                    if value > 0 {
                        rows.push((route, *method, status_label(slot), value));
                    }
                }
            }
        }
        rows
    }

    pub fn kong_count(&self, operation: KongOperation, result: KongResult) -> u64 {
        self.kong_operations[operation as usize][result as usize].load(Ordering::Relaxed)
    }

    pub fn kong_duration(&self, operation: KongOperation) -> &Histogram {
        &self.kong_durations[operation as usize]
    }

    pub fn requests_total(&self) -> u64 {
        self.requests
            .iter()
            .flatten()
            .flatten()
            .map(|counter| counter.load(Ordering::Relaxed))
            .sum()
    }

    pub fn validation_count(&self, result: ValidationResult) -> u64 {
        self.validations[result as usize].load(Ordering::Relaxed)
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render_prometheus(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(16 * 1024);
        header(&mut out, family::HTTP_REQUESTS, "counter");
        for (route, method, status, value) in self.request_counts() {
            let _ = writeln!(
                out,
                "http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {value}",
                route.as_str(),
                method.as_str(),
            );
        }
        header(&mut out, family::REQUEST_DURATION, "histogram");
        for route in RouteLabel::ALL {
            let labels = format!("route=\"{}\"", route.as_str());
            self.durations[route.index()].render(
                &mut out,
                "http_request_duration_seconds",
                &labels,
            );
        }
        header(&mut out, family::QUEUE_WAIT, "histogram");
        for route in RouteLabel::ALL {
            let labels = format!("route=\"{}\"", route.as_str());
            self.queue_waits[route.index()].render(&mut out, "http_request_queue_seconds", &labels);
        }
        header(&mut out, family::KONG_OPERATIONS, "counter");
        for operation in KongOperation::ALL {
            for result in KongResult::ALL {
                let _ = writeln!(
                    out,
                    "kong_operations_total{{operation=\"{}\",result=\"{}\"}} {}",
                    operation.as_str(),
                    result.as_str(),
                    self.kong_count(operation, result)
                );
            }
        }
        header(&mut out, family::KONG_DURATION, "histogram");
        for operation in KongOperation::ALL {
            let labels = format!("operation=\"{}\"", operation.as_str());
            self.kong_durations[operation as usize].render(
                &mut out,
                "kong_operation_duration_seconds",
                &labels,
            );
        }
        for (family, read) in PLAIN_COUNTERS {
            counter(&mut out, family, read(self));
        }
        gauge(&mut out, family::CACHE_ENTRIES, gauges.cache_entries as f64);
        gauge(
            &mut out,
            family::BREAKER_STATE,
            f64::from(gauges.breaker_state),
        );
        header(&mut out, family::VALIDATIONS, "counter");
        for result in ValidationResult::ALL {
            let _ = writeln!(
                out,
                "jwt_validations_total{{result=\"{}\"}} {}",
                result.as_str(),
                self.validation_count(result)
            );
        }
        header(&mut out, family::PROFILING_SESSIONS, "counter");
        for (trigger, count) in &gauges.profiling_sessions {
            let _ = writeln!(
                out,
                "profiling_sessions_total{{trigger=\"{trigger}\"}} {count}"
            );
        }
        gauge(
            &mut out,
            family::PROFILING_ACTIVE,
            if gauges.profiling_active { 1.0 } else { 0.0 },
        );
        gauge(
            &mut out,
            Family {
                name: "profiling_storage_bytes",
                help: "Bytes of automatic profiles on disk.",
            },
            gauges.profiling_storage_bytes as f64,
        );
        out.push_str(&gauges.extra);
        render_connections(&mut out, &gauges.connections);
        gauge(
            &mut out,
            family::RESIDENT_MEMORY,
            gauges.resident_bytes as f64,
        );
        header(
            &mut out,
            Family {
                name: "process_cpu_seconds_total",
                help: "User and system CPU time.",
            },
            "counter",
        );
        let _ = writeln!(out, "process_cpu_seconds_total {}", gauges.cpu_seconds);
        gauge(
            &mut out,
            Family {
                name: "heap_live_bytes",
                help: "Bytes the service has allocated and not freed (the profiler's own allocations are in profiler_heap_bytes).",
            },
            gauges.heap_live_bytes as f64,
        );
        gauge(
            &mut out,
            Family {
                name: "heap_peak_bytes",
                help: "Highest heap_live_bytes seen.",
            },
            gauges.heap_peak_bytes as f64,
        );
        gauge(
            &mut out,
            Family {
                name: "profiler_heap_bytes",
                help: "Bytes the profiler itself holds: sample tables, symbol data and reports while a session runs or writes.",
            },
            gauges.profiler_heap_bytes as f64,
        );
        out
    }
}

fn render_connections(out: &mut String, connections: &ConnectionStats) {
    gauge(
        out,
        Family {
            name: "http_connections_open",
            help: "Client connections open now.",
        },
        connections.open as f64,
    );
    gauge(
        out,
        Family {
            name: "http_connections_max",
            help: "The connection cap (MAX_CONNECTIONS or derived from the fd limit).",
        },
        connections.max as f64,
    );
    let counters = [
        (
            "http_connections_accepted_total",
            "Connections accepted (refused ones included).",
            connections.accepted,
        ),
        (
            "http_accept_errors_total",
            "accept() failures (EMFILE, ENFILE, ...); the listener backs off and goes on.",
            connections.accept_errors,
        ),
        (
            "http_connection_thread_failures_total",
            "Connections closed because no thread could be started for them.",
            connections.thread_failures,
        ),
    ];
    for (name, help, value) in counters {
        counter(out, Family { name, help }, value);
    }
    header(
        out,
        Family {
            name: "http_connections_closed_total",
            help: "Connections the service ended: idle keep-alive, head or body or write timeout, malformed request, refused over the cap.",
        },
        "counter",
    );
    for (reason, count) in connections.closed {
        let _ = writeln!(
            out,
            "http_connections_closed_total{{reason=\"{reason}\"}} {count}"
        );
    }
}

fn header(out: &mut String, family: Family, kind: &str) {
    let Family { name, help } = family;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(out: &mut String, family: Family, value: u64) {
    header(out, family, "counter");
    let _ = writeln!(out, "{} {value}", family.name);
}

fn gauge(out: &mut String, family: Family, value: f64) {
    header(out, family, "gauge");
    let _ = writeln!(out, "{} {value}", family.name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_counters_and_histogram_render() {
        let metrics = Metrics::default();
        metrics.record_request(
            RouteLabel::Tokens,
            Method::Get,
            200,
            Duration::from_micros(700),
        );
        metrics.record_request(
            RouteLabel::Tokens,
            Method::Get,
            200,
            Duration::from_millis(30),
        );
        metrics.record_request(
            RouteLabel::Unmatched,
            Method::Get,
            418,
            Duration::from_millis(1),
        );
        let text = metrics.render_prometheus(&Gauges::default());
        assert!(
            text.contains("http_requests_total{route=\"/tokens\",method=\"GET\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "http_requests_total{route=\"unmatched\",method=\"GET\",status=\"4xx\"} 1"
            )
        );
        assert!(
            text.contains("http_request_duration_seconds_bucket{route=\"/tokens\",le=\"0.001\"} 1")
        );
        assert!(
            text.contains("http_request_duration_seconds_bucket{route=\"/tokens\",le=\"0.05\"} 2")
        );
        assert!(text.contains("http_request_duration_seconds_count{route=\"/tokens\"} 2"));
    }
}
