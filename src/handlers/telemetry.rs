//! The telemetry routes of the old service: `GET /health/telemetry`, the
//! `telemetry`/`exports` views of `/metrics`, and `POST /debug/metrics/test|export`.
//!
//! Reads what `telemetry::Telemetry` reports and asks it to flush; owns only the JSON shapes.
//! Like every handler it never sees a span or an exporter thread. `POST /debug/metrics/export`
//! waits for the flush (the SDK bounds each wait at 5 s), as `/debug/pprof/profile` waits for
//! its profile; it is a debug route on the urgent lane.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};

use crate::app::App;
use crate::http::problem::Problem;
use crate::http::{Method, Request, Response};
use crate::metrics::{KongOperation, KongResult, RouteLabel, ValidationResult};
use crate::timefmt;

/// `GET /health/telemetry`: always 200 (a failing collector is not the service's health),
/// with the mode, per-signal endpoints, status and export counts.
pub fn health(app: &App, request: &Request<'_>) -> Response {
    let mut body = app.telemetry.status_json();
    body["timestamp"] = Value::from(timefmt::now_iso8601());
    body["requestId"] = Value::from(request.request_id);
    Response::json(200, &body).with_header("Cache-Control", "no-store")
}

/// `/metrics?view=telemetry` and `?view=exports`.
pub fn view(app: &App) -> Value {
    app.telemetry.status_json()
}

/// The `telemetry` entry of the operational view.
pub fn summary(app: &App) -> Value {
    json!({
        "mode": app.telemetry.mode().as_str(),
        "status": app.telemetry.status(),
        "exporting": app.telemetry.is_exporting(),
    })
}

/// `POST /debug/metrics/test` and `POST /debug/metrics/export` (the router already hid
/// `/debug/*` in production).
pub fn debug(app: &App, request: &Request<'_>) -> Option<Response> {
    let path = request.path.trim_end_matches('/');
    let run: fn(&App) -> Response = match path {
        "/debug/metrics/test" => record_test,
        "/debug/metrics/export" => export,
        _ => return None,
    };
    Some(if request.method == Method::Post {
        run(app)
    } else {
        Problem::plain(
            405,
            "Method Not Allowed",
            format!("{} is not allowed here; use POST", request.method.as_str()),
        )
        .into_response(request)
        .with_header("Allow", "POST")
    })
}

/// One test increment of each counter we export, so a dashboard can be checked end to end.
fn record_test(app: &App) -> Response {
    let metrics = &app.metrics;
    metrics.record_request(RouteLabel::Debug, Method::Post, 200, Duration::ZERO);
    metrics.record_queue_wait(RouteLabel::Debug, Duration::ZERO);
    metrics.record_kong(
        KongOperation::HealthCheck,
        KongResult::Success,
        Duration::ZERO,
    );
    for counter in [
        &metrics.cache_hits,
        &metrics.cache_misses,
        &metrics.cache_stale_served,
        &metrics.tokens_issued,
    ] {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    metrics.record_validation(ValidationResult::Valid);
    Response::json(
        200,
        &json!({
            "success": true,
            "recorded": [
                "http_requests_total{route=\"/debug\",method=\"POST\",status=\"200\"}",
                "http_request_duration_seconds{route=\"/debug\"}",
                "http_request_queue_seconds{route=\"/debug\"}",
                "kong_operations_total{operation=\"health_check\",result=\"success\"}",
                "kong_cache_hits_total",
                "kong_cache_misses_total",
                "kong_cache_stale_served_total",
                "jwt_tokens_issued_total",
                "jwt_validations_total{result=\"valid\"}",
            ],
            "exporting": app.telemetry.is_exporting(),
        }),
    )
}

/// Forces an export of queued spans and one metrics collection, and waits for both.
fn export(app: &App) -> Response {
    let report = app.telemetry.flush();
    Response::json(
        200,
        &json!({
            "success": report.error.is_none(),
            "exporting": app.telemetry.is_exporting(),
            "mode": app.telemetry.mode().as_str(),
            "exports": report.exports,
            "spansExported": report.spans,
            "durationMs": report.duration.as_secs_f64() * 1000.0,
            "error": report.error,
        }),
    )
    .with_header("Cache-Control", "no-store")
}
