//! `GET /metrics`: Prometheus text for scrapers (by `Accept` or `?format=prometheus`), else the
//! old service's JSON views (`?view=operational|infrastructure|config|full`).

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::app::App;
use crate::http::problem::{ErrorCode, Problem};
use crate::http::{Request, Response};
use crate::kong::KongProbe;
use crate::metrics::{Gauges, KongOperation, KongResult, RouteLabel};
use crate::profiling::{TriggerKind, alloc};
use crate::{process, timefmt};

const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn metrics(app: &App, request: &Request<'_>) -> Response {
    let format = request.query_param("format");
    let wants_text = request.header("accept").is_some_and(|accept| {
        accept.contains("text/plain") || accept.contains("application/openmetrics-text")
    });
    match format.as_deref() {
        Some("prometheus") => return prometheus(app),
        Some("json") | None => {}
        Some(other) => {
            return Problem::auth(
                ErrorCode::InvalidRequestFormat,
                format!("unknown format {other:?}; use prometheus or json"),
            )
            .into_response(request);
        }
    }
    if wants_text && format.is_none() {
        return prometheus(app);
    }
    let view = request.query_param("view");
    let body = match view.as_deref().unwrap_or("operational") {
        "operational" => operational(app),
        "infrastructure" => infrastructure(app),
        "config" => config_view(app),
        // The exporter's state, as `/health/telemetry` has it.
        "telemetry" | "exports" => super::telemetry::view(app),
        "full" => json!({
            "operational": operational(app),
            "infrastructure": infrastructure(app),
            "config": config_view(app),
        }),
        other => {
            return Problem::auth(
                ErrorCode::InvalidRequestFormat,
                format!("unknown view {other:?}; use operational, infrastructure, config, telemetry, exports or full"),
            )
            .into_response(request);
        }
    };
    Response::json(200, &body).with_header("Cache-Control", "no-store")
}

/// Gauges owned by other components, read now.
pub fn gauges(app: &App) -> Gauges {
    let entries = app.store.cache_len();
    let heap = alloc::heap_stats();
    let sla = app.sla.snapshot();
    Gauges {
        connections: app.connection_stats(),
        cache_entries: entries,
        breaker_state: app.store.breaker_state().gauge(),
        resident_bytes: process::resident_bytes(),
        cpu_seconds: process::cpu_seconds(),
        heap_live_bytes: heap.live_bytes,
        heap_peak_bytes: heap.peak_bytes,
        profiler_heap_bytes: alloc::profiler_stats().live_bytes,
        profiling_active: app.profiler.is_active(),
        profiling_sessions: TriggerKind::ALL
            .iter()
            .map(|trigger| (trigger.as_str(), app.profiler.sessions_total(*trigger)))
            .collect(),
        profiling_storage_bytes: sla.storage_used_bytes,
        extra: {
            let mut extra = sla.prometheus(app.samples.dropped());
            app.telemetry.render_prometheus(&mut extra);
            extra
        },
    }
}

fn prometheus(app: &App) -> Response {
    Response::text(200, PROMETHEUS, app.metrics.render_prometheus(&gauges(app)))
        .with_header("Cache-Control", "no-store")
}

fn operational(app: &App) -> Value {
    let gauges = gauges(app);
    let hits = app.metrics.cache_hits.load(Ordering::Relaxed);
    let misses = app.metrics.cache_misses.load(Ordering::Relaxed);
    let (entries, stale) = app.store.cache_counts();
    let tokens = app.metrics.route_duration(RouteLabel::Tokens);
    json!({
        "timestamp": timefmt::now_iso8601(),
        "uptime": app.started.elapsed().as_secs(),
        "memory": memory_view(&gauges),
        "cache": {
            "entries": entries,
            "staleEntries": stale,
            "hits": hits,
            "misses": misses,
            "staleServed": app.metrics.cache_stale_served.load(Ordering::Relaxed),
            "hitRate": if hits + misses == 0 { 0.0 } else { hits as f64 / (hits + misses) as f64 },
        },
        "circuitBreakers": { "kong": { "state": app.store.breaker_state().as_str() } },
        "kong": kong_view(app),
        "requests": {
            "total": app.metrics.requests_total(),
            "tokensIssued": app.metrics.tokens_issued.load(Ordering::Relaxed),
            "tokensMeanMs": tokens.mean().as_secs_f64() * 1000.0,
        },
        "telemetry": super::telemetry::summary(app),
    })
}

/// The old service's four keys in whole MiB (`used` heap in use, `total` heap held from the
/// kernel, `rss`, `external` everything else resident), then ours in bytes.
fn memory_view(gauges: &Gauges) -> Value {
    let heap_total = process::allocator_footprint_bytes()
        .unwrap_or(gauges.heap_peak_bytes)
        .max(gauges.heap_live_bytes);
    let mib = |bytes: u64| (bytes as f64 / (1024.0 * 1024.0)).round() as u64;
    json!({
        "used": mib(gauges.heap_live_bytes),
        "total": mib(heap_total),
        "rss": mib(gauges.resident_bytes),
        "external": mib(gauges.resident_bytes.saturating_sub(heap_total)),
        "residentBytes": gauges.resident_bytes,
        "heapLiveBytes": gauges.heap_live_bytes,
        "heapPeakBytes": gauges.heap_peak_bytes,
        "profilerHeapBytes": gauges.profiler_heap_bytes,
    })
}

fn kong_view(app: &App) -> Value {
    let (waiting, max_waiting) = app.store.waiting_on_kong();
    let get = |result| {
        app.metrics
            .kong_count(KongOperation::GetCredentials, result)
    };
    json!({
        "adminUrl": app.store.client().admin_url(),
        "mode": app.store.client().mode().as_str(),
        "credentialLookups": {
            "success": get(KongResult::Success),
            "notFound": get(KongResult::NotFound),
            "failure": get(KongResult::Failure),
            "meanMs": app.metrics.kong_duration(KongOperation::GetCredentials).mean().as_secs_f64() * 1000.0,
        },
        "credentialsProvisioned": app.metrics.kong_count(KongOperation::CreateCredential, KongResult::Success),
        "waiting": waiting,
        "maxWaitingWorkers": max_waiting,
        "waitRejected": app.metrics.kong_wait_rejected.load(Ordering::Relaxed),
    })
}

fn infrastructure(app: &App) -> Value {
    let probe = app.store.health();
    let connections = app.connection_stats();
    let closed: serde_json::Map<String, Value> = connections
        .closed
        .iter()
        .map(|(reason, count)| ((*reason).to_owned(), Value::from(*count)))
        .collect();
    json!({
        "timestamp": timefmt::now_iso8601(),
        "process": {
            "pid": std::process::id(),
            "residentBytes": process::resident_bytes(),
            "peakResidentBytes": process::peak_resident_bytes(),
            "cpuSeconds": process::cpu_seconds(),
            "workers": app.config.server.workers,
        },
        "connections": {
            "open": connections.open,
            "max": connections.max,
            "accepted": connections.accepted,
            "acceptErrors": connections.accept_errors,
            "threadFailures": connections.thread_failures,
            "closed": closed,
        },
        "kong": {
            "reachable": probe.reachable(),
            "responseTimeMs": match &probe {
                KongProbe::Checked { result: Ok(d), .. } => Some(d.as_secs_f64() * 1000.0),
                _ => None,
            },
            "error": match &probe {
                KongProbe::Checked { result: Err(err), .. } => Some(err.as_str()),
                KongProbe::Checked { .. } => None,
                KongProbe::NotYet => Some("kong not probed yet"),
            },
        },
        "circuitBreakers": { "kong": { "state": app.store.breaker_state().as_str() } },
        "metrics": super::telemetry::summary(app),
    })
}

/// The effective configuration, without secrets.
fn config_view(app: &App) -> Value {
    let config = &app.config;
    json!({
        "environment": config.environment,
        "server": {
            "workers": config.server.workers,
            "maxRequestBodySize": config.server.max_body_bytes,
            "maxHeaderLength": config.server.max_header_length,
            "corsOrigin": config.server.cors_origin,
            "shutdownGraceSeconds": config.server.shutdown_grace.as_secs(),
            "headerTimeoutMs": config.server.connections.header_timeout.as_millis() as u64,
            "keepAliveTimeoutMs": config.server.connections.keepalive_timeout.as_millis() as u64,
            "bodyTimeoutMs": config.server.connections.body_timeout.as_millis() as u64,
            "writeTimeoutMs": config.server.connections.write_timeout.as_millis() as u64,
            "maxConnections": app.connection_stats().max,
        },
        "jwt": {
            "keyClaimName": config.jwt.key_claim_name,
            "expirationMinutes": config.jwt.expiration_minutes,
            "issuer": config.jwt.issuer,
            "audience": config.jwt.audience,
        },
        "kong": {
            "mode": config.kong.mode.as_str(),
            "adminUrl": config.kong.admin_url,
            "adminTokenSet": config.kong.admin_token.is_some(),
            "timeoutMs": config.kong.timeout.as_millis() as u64,
            "autoProvision": config.kong.auto_provision,
            "maxWaitingWorkers": config.kong.max_waiting_workers,
        },
        "cache": {
            "maxEntries": config.cache.max_entries,
            "ttlSeconds": config.cache.fresh_ttl.as_secs(),
            "staleToleranceMinutes": config.cache.stale_tolerance.as_secs() / 60,
            "negativeTtlSeconds": config.cache.negative_ttl.as_secs(),
        },
        "circuitBreaker": {
            "enabled": config.breaker.enabled,
            "errorThresholdPercent": config.breaker.error_threshold_percent,
            "volumeThreshold": config.breaker.volume_threshold,
            "rollingWindowMs": config.breaker.rolling_window.as_millis() as u64,
            "resetTimeoutMs": config.breaker.reset_timeout.as_millis() as u64,
        },
        "profiling": {
            "debugRoutes": config.profiling.debug_routes,
            "cpuHz": config.profiling.cpu_hz,
            "outputDir": config.profiling.output_dir,
            "continuous": config.sla.continuous_profiling,
        },
    })
}
