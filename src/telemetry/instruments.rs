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
use crate::metrics::{
    Family, Histogram, KongOperation, KongResult, PLAIN_COUNTERS, RouteLabel, ValidationResult,
    family,
};
use crate::profiling::TriggerKind;

type Emit<'a, T> = &'a mut dyn FnMut(T, &[KeyValue]);

/// Registers every instrument on `meter`; they report as long as the meter provider lives.
pub fn register(meter: &Meter, app: &Arc<App>) {
    let app = Arc::downgrade(app);
    counter(meter, &app, family::HTTP_REQUESTS, |app, emit| {
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
    });
    histogram(meter, &app, family::REQUEST_DURATION, |app| {
        routes(app, |app, route| app.metrics.route_duration(route))
    });
    histogram(meter, &app, family::QUEUE_WAIT, |app| {
        routes(app, |app, route| app.metrics.queue_wait(route))
    });
    counter(meter, &app, family::KONG_OPERATIONS, |app, emit| {
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
    });
    histogram(meter, &app, family::KONG_DURATION, |app| {
        KongOperation::ALL
            .iter()
            .map(|op| {
                let label = KeyValue::new("operation", op.as_str());
                (label, app.metrics.kong_duration(*op))
            })
            .collect()
    });
    for (family, read) in PLAIN_COUNTERS {
        counter(meter, &app, family, move |app, emit| {
            emit(read(&app.metrics), &[])
        });
    }
    counter(meter, &app, family::VALIDATIONS, |app, emit| {
        for result in ValidationResult::ALL {
            let value = app.metrics.validation_count(result);
            emit(value, &[KeyValue::new("result", result.as_str())]);
        }
    });
    counter(meter, &app, family::PROFILING_SESSIONS, |app, emit| {
        for trigger in TriggerKind::ALL {
            let value = app.profiler.sessions_total(trigger);
            emit(value, &[KeyValue::new("trigger", trigger.as_str())]);
        }
    });
    counter(meter, &app, family::SLA_VIOLATIONS, |app, emit| {
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
    });
    gauge(meter, &app, family::CACHE_ENTRIES, |app, emit| {
        emit(app.store.cache_len() as f64, &[])
    });
    gauge(meter, &app, family::BREAKER_STATE, |app, emit| {
        emit(f64::from(app.store.breaker_state().gauge()), &[])
    });
    gauge(meter, &app, family::SLA_P95, |app, emit| {
        sla_percentile(app, emit, |e| e.p95_ms)
    });
    gauge(meter, &app, family::SLA_P99, |app, emit| {
        sla_percentile(app, emit, |e| e.p99_ms)
    });
    gauge(meter, &app, family::PROFILING_ACTIVE, |app, emit| {
        emit(if app.profiler.is_active() { 1.0 } else { 0.0 }, &[])
    });
    gauge(meter, &app, family::RESIDENT_MEMORY, |_, emit| {
        emit(crate::process::resident_bytes() as f64, &[])
    });
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
    family: Family,
    read: impl Fn(&App, Emit<'_, u64>) + Send + Sync + 'static,
) {
    series_counter(meter, app, family.name, family.help, read);
}

/// A counter named apart from its family: a histogram's `_bucket` and `_count` series.
fn series_counter(
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
    family: Family,
    read: impl Fn(&App, Emit<'_, f64>) + Send + Sync + 'static,
) {
    meter
        .f64_observable_gauge(family.name)
        .with_description(family.help)
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
    family: Family,
    series: fn(&App) -> Vec<(KeyValue, &Histogram)>,
) {
    let Family {
        name,
        help: description,
    } = family;
    series_counter(
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
    series_counter(
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
