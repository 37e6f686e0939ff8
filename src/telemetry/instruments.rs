//! The OTLP metrics: the Prometheus series of `/metrics` (SPEC 4), under the same names, as
//! asynchronous instruments whose callbacks read `metrics::Metrics`' atomics and the gauges
//! of the Kong store, the SLA monitor and the profiler when the periodic reader collects.
//!
//! Nothing is recorded twice: the request path keeps bumping its atomics and knows nothing of
//! this. The callbacks run on the reader's thread only, allocate there, and hold the `App`
//! through a `Weak` (the `App` owns the meter provider, so a strong reference would be a
//! cycle; `Telemetry::shutdown` stops the reader before the `App` goes).
//!
//! The OTel API has no asynchronous histogram and the SDK's metric data cannot be built
//! outside it, so each histogram goes out as its Prometheus series: cumulative
//! `<name>_bucket{le}`, `<name>_sum` and `<name>_count` counters, which `histogram_quantile`
//! reads as it reads a scraped histogram.

use std::borrow::Cow;
use std::sync::{Arc, Weak};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter};

use crate::app::App;
use crate::metrics::{Histogram, KongOperation, KongResult, RouteLabel, ValidationResult};
use crate::profiling::TriggerKind;

type Emit<'a, T> = &'a mut dyn FnMut(T, &[KeyValue]);
type ReadCounter = fn(&App) -> u64;

/// Registers every instrument on `meter`; they report as long as the meter provider lives.
pub fn register(meter: &Meter, app: &Arc<App>) {
    let app = Arc::downgrade(app);
    counter(
        meter,
        &app,
        "http_requests_total",
        "HTTP requests by route, method and status.",
        |app, emit| {
            for (route, method, status, value) in app.metrics.request_counts() {
                emit(
                    value,
                    &[
                        KeyValue::new("route", route.as_str()),
                        KeyValue::new("method", method.as_str()),
                        KeyValue::new("status", status),
                    ],
                );
            }
        },
    );
    histogram(
        meter,
        &app,
        "http_request_duration_seconds",
        "Service time: from a worker taking a request to its response being handed to the socket.",
        |app| routes(app, |app, route| app.metrics.route_duration(route)),
    );
    histogram(
        meter,
        &app,
        "http_request_queue_seconds",
        "Queue wait: from the first byte of a request being read to a worker taking it.",
        |app| routes(app, |app, route| app.metrics.queue_wait(route)),
    );
    counter(
        meter,
        &app,
        "kong_operations_total",
        "Kong Admin API calls by operation and result.",
        |app, emit| {
            for operation in KongOperation::ALL {
                for result in KongResult::ALL {
                    emit(
                        app.metrics.kong_count(operation, result),
                        &[
                            KeyValue::new("operation", operation.as_str()),
                            KeyValue::new("result", result.as_str()),
                        ],
                    );
                }
            }
        },
    );
    histogram(
        meter,
        &app,
        "kong_operation_duration_seconds",
        "Kong Admin API call latency, retries included.",
        |app| {
            KongOperation::ALL
                .iter()
                .map(|op| {
                    let label = KeyValue::new("operation", op.as_str());
                    (label, app.metrics.kong_duration(*op))
                })
                .collect()
        },
    );
    let plain: [(&'static str, &'static str, ReadCounter); 6] = [
        (
            "kong_cache_hits_total",
            "Credential lookups answered from fresh cache.",
            |app| relaxed(&app.metrics.cache_hits),
        ),
        (
            "kong_cache_misses_total",
            "Credential lookups that needed Kong.",
            |app| relaxed(&app.metrics.cache_misses),
        ),
        (
            "kong_cache_stale_served_total",
            "Stale credentials served.",
            |app| relaxed(&app.metrics.cache_stale_served),
        ),
        (
            "kong_wait_rejected_total",
            "Requests turned away from waiting on Kong (KONG_MAX_WAITING_WORKERS).",
            |app| relaxed(&app.metrics.kong_wait_rejected),
        ),
        (
            "jwt_tokens_issued_total",
            "Tokens issued by /tokens.",
            |app| relaxed(&app.metrics.tokens_issued),
        ),
        (
            "http_handler_panics_total",
            "Handler panics contained to a 500.",
            |app| relaxed(&app.metrics.panics),
        ),
    ];
    for (name, description, read) in plain {
        counter(meter, &app, name, description, move |app, emit| {
            emit(read(app), &[])
        });
    }
    counter(
        meter,
        &app,
        "jwt_validations_total",
        "Token validations by result.",
        |app, emit| {
            for result in ValidationResult::ALL {
                let value = app.metrics.validation_count(result);
                emit(value, &[KeyValue::new("result", result.as_str())]);
            }
        },
    );
    counter(
        meter,
        &app,
        "profiling_sessions_total",
        "Profiling sessions started, by trigger.",
        |app, emit| {
            for trigger in TriggerKind::ALL {
                let value = app.profiler.sessions_total(trigger);
                emit(value, &[KeyValue::new("trigger", trigger.as_str())]);
            }
        },
    );
    counter(
        meter,
        &app,
        "sla_violations_total",
        "SLA violation decisions, by whether a profile started.",
        |app, emit| {
            for endpoint in app.sla.snapshot().endpoints {
                for (triggered, count) in [
                    ("false", endpoint.violations[0]),
                    ("true", endpoint.violations[1]),
                ] {
                    let labels = [
                        KeyValue::new("endpoint", endpoint.route.clone()),
                        KeyValue::new("triggered", triggered),
                    ];
                    emit(count, &labels);
                }
            }
        },
    );
    gauge(
        meter,
        &app,
        "kong_cache_entries",
        "Credential cache entries.",
        |app, emit| emit(app.store.cache_len() as f64, &[]),
    );
    gauge(
        meter,
        &app,
        "circuit_breaker_state",
        "Kong circuit breaker: 0 closed, 1 open, 2 half-open.",
        |app, emit| emit(f64::from(app.store.breaker_state().gauge()), &[]),
    );
    gauge(
        meter,
        &app,
        "sla_p95_seconds",
        "Rolling-window p95 latency per SLA route.",
        |app, emit| sla_percentile(app, emit, |e| e.p95_ms),
    );
    gauge(
        meter,
        &app,
        "sla_p99_seconds",
        "Rolling-window p99 latency per SLA route.",
        |app, emit| sla_percentile(app, emit, |e| e.p99_ms),
    );
    gauge(
        meter,
        &app,
        "profiling_active",
        "1 while a profiling session runs.",
        |app, emit| emit(if app.profiler.is_active() { 1.0 } else { 0.0 }, &[]),
    );
    gauge(
        meter,
        &app,
        "process_resident_memory_bytes",
        "Resident set size.",
        |_, emit| emit(crate::process::resident_bytes() as f64, &[]),
    );
}

fn relaxed(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(std::sync::atomic::Ordering::Relaxed)
}

fn routes(app: &App, histogram: fn(&App, RouteLabel) -> &Histogram) -> Vec<(KeyValue, &Histogram)> {
    RouteLabel::ALL
        .iter()
        .map(|route| {
            (
                KeyValue::new("route", route.as_str()),
                histogram(app, *route),
            )
        })
        .collect()
}

fn sla_percentile(
    app: &App,
    emit: Emit<'_, f64>,
    value: fn(&crate::monitor::state::EndpointSnapshot) -> Option<f64>,
) {
    for endpoint in app.sla.snapshot().endpoints {
        if let Some(ms) = value(&endpoint) {
            emit(
                ms / 1000.0,
                &[KeyValue::new("route", endpoint.route.clone())],
            );
        }
    }
}

fn counter(
    meter: &Meter,
    app: &Weak<App>,
    name: impl Into<Cow<'static, str>>,
    description: &'static str,
    read: impl Fn(&App, Emit<'_, u64>) + Send + Sync + 'static,
) {
    meter
        .u64_observable_counter(name)
        .with_description(description)
        .with_callback(observe(app, read))
        .build();
}

fn gauge(
    meter: &Meter,
    app: &Weak<App>,
    name: &'static str,
    description: &'static str,
    read: impl Fn(&App, Emit<'_, f64>) + Send + Sync + 'static,
) {
    meter
        .f64_observable_gauge(name)
        .with_description(description)
        .with_callback(observe(app, read))
        .build();
}

/// The instrument callback: `read` with the `App`, unless it is already gone.
fn observe<T: 'static>(
    app: &Weak<App>,
    read: impl Fn(&App, Emit<'_, T>) + Send + Sync + 'static,
) -> impl Fn(&dyn AsyncInstrument<T>) + Send + Sync + 'static {
    let app = Weak::clone(app);
    move |observer: &dyn AsyncInstrument<T>| {
        if let Some(app) = app.upgrade() {
            read(&app, &mut |value, labels| observer.observe(value, labels));
        }
    }
}

/// One histogram of `metrics` as its three cumulative Prometheus series.
fn histogram(
    meter: &Meter,
    app: &Weak<App>,
    name: &'static str,
    description: &'static str,
    series: fn(&App) -> Vec<(KeyValue, &Histogram)>,
) {
    counter(
        meter,
        app,
        format!("{name}_bucket"),
        description,
        move |app, emit| {
            for (label, histogram) in series(app) {
                for (bound, count) in histogram.cumulative_buckets() {
                    emit(
                        count,
                        &[label.clone(), KeyValue::new("le", bound.to_string())],
                    );
                }
                emit(histogram.count(), &[label, KeyValue::new("le", "+Inf")]);
            }
        },
    );
    counter(
        meter,
        app,
        format!("{name}_count"),
        description,
        move |app, emit| {
            for (label, histogram) in series(app) {
                emit(histogram.count(), &[label]);
            }
        },
    );
    meter
        .f64_observable_counter(format!("{name}_sum"))
        .with_description(description)
        .with_unit("s")
        .with_callback(observe(app, move |app, emit| {
            for (label, histogram) in series(app) {
                emit(histogram.sum_seconds(), &[label]);
            }
        }))
        .build();
}
