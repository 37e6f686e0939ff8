//! `/health`, `/health/ready` and `/health/live`.
//!
//! None of them calls Kong: readiness and `/health` read the last result of the Kong store's
//! background prober (`CredentialStore::health`), which probes at most once per
//! `HEALTH_KONG_CACHE_MS`, so a scraper storm costs Kong one request per interval and a slow
//! Kong never slows a health check. Liveness touches nothing shared.

use serde_json::{Value, json};

use crate::app::App;
use crate::http::{Body, Request, Response};
use crate::kong::KongProbe;
use crate::kong::breaker::BreakerState;
use crate::profiling::SessionState;
use crate::timefmt;

/// `GET /health/live`: 200 while the process serves. A constant body, no allocation.
pub fn live() -> Response {
    Response::new(200)
        .with_header("Content-Type", crate::http::response::JSON)
        .with_header("Cache-Control", "no-store")
        .with_body(Body::Static(br#"{"status":"alive"}"#))
}

/// `GET /health/ready`: 503 while draining or when Kong is unreachable.
///
/// Kong's state is the background prober's last result, never a Kong call made here: a result
/// older than `HEALTH_KONG_CACHE_MS` starts a new probe and is still what this answer reflects.
/// The prober probes once when the service starts. Until that first probe completes the
/// answer waits for it, but only until one `KONG_TIMEOUT_MS` after start-up: so a fresh
/// instance is ready as soon as Kong answered, and is not called ready before anybody knows.
/// Past that wait, with still no result (Kong is slower than its timeout), the answer is 503
/// `not_ready` with the reason `kong not probed yet`, at once.
pub fn ready(app: &App, _request: &Request<'_>) -> Response {
    if app.is_draining() {
        return Response::json(
            503,
            &json!({"status": "not_ready", "reason": "shutting down"}),
        );
    }
    match app.store.health() {
        KongProbe::Checked { result: Ok(_), .. } => {
            Response::json(200, &json!({"status": "ready"}))
        }
        KongProbe::Checked {
            result: Err(err), ..
        } => Response::json(
            503,
            &json!({"status": "not_ready", "reason": format!("kong unreachable: {err}")}),
        ),
        KongProbe::NotYet => {
            Response::json(503, &json!({"status": "not_ready", "reason": NOT_PROBED}))
        }
    }
}

/// The reason and error text while no Kong probe has completed yet.
const NOT_PROBED: &str = "kong not probed yet";

/// `GET /health`: dependency health; 503 `unhealthy` only while draining.
///
/// Kong's part is the prober's last result, as for readiness (same start-up wait). Before any
/// probe completed, `dependencies.kong.status` is `unknown` with the error `kong not probed
/// yet`, and the overall status `degraded`.
pub fn health(app: &App, request: &Request<'_>) -> Response {
    let probe = app.store.health();
    let breaker = app.store.breaker_state();
    let (kong_status, response_ms, error) = match &probe {
        KongProbe::Checked { result: Ok(d), .. } => {
            ("healthy", Some(d.as_secs_f64() * 1000.0), None)
        }
        KongProbe::Checked {
            result: Err(err), ..
        } => ("unhealthy", None, Some(err.as_str())),
        KongProbe::NotYet => ("unknown", None, Some(NOT_PROBED)),
    };
    let status = if app.is_draining() {
        "unhealthy"
    } else if kong_status == "healthy" && breaker == BreakerState::Closed {
        "healthy"
    } else {
        "degraded"
    };
    let mut details = json!({
        "adminUrl": redact_userinfo(app.store.client().admin_url()),
        "mode": app.store.client().mode().as_str(),
    });
    if let Some(err) = error {
        details["error"] = Value::from(err);
    }
    let (entries, stale) = app.store.cache_counts();
    let hits = app
        .metrics
        .cache_hits
        .load(std::sync::atomic::Ordering::Relaxed);
    let misses = app
        .metrics
        .cache_misses
        .load(std::sync::atomic::Ordering::Relaxed);
    let hit_rate = if hits + misses == 0 {
        0.0
    } else {
        hits as f64 / (hits + misses) as f64
    };
    let uptime = app.started.elapsed().as_secs();
    let body = json!({
        "status": status,
        "timestamp": timefmt::now_iso8601(),
        "version": env!("CARGO_PKG_VERSION"),
        "environment": app.config.environment,
        "uptime": human_uptime(uptime),
        "uptimeSeconds": uptime,
        "dependencies": {
            "kong": {
                "status": kong_status,
                "responseTime": response_ms,
                "details": details,
            },
            "cache": { "entries": entries, "staleEntries": stale, "hitRate": hit_rate },
        },
        "circuitBreakerState": breaker.as_str(),
        "slaMonitor": sla_section(app),
        "profiling": profiling_section(app),
        "requestId": request.request_id,
    });
    Response::json(if app.is_draining() { 503 } else { 200 }, &body)
        .with_header("Cache-Control", "no-store")
}

/// A threshold as JSON: a whole number stays an integer (as before fractions were allowed), a
/// fraction is a float.
fn milliseconds(ms: f64) -> Value {
    if ms.fract() == 0.0 && ms >= 0.0 && ms < u64::MAX as f64 {
        Value::from(ms as u64)
    } else {
        Value::from(ms)
    }
}

/// `slaMonitor`: the SLA monitor's last published snapshot (refreshed every 250 ms).
fn sla_section(app: &App) -> Value {
    let sla = &app.config.sla;
    let snapshot = app.sla.snapshot();
    let endpoints: serde_json::Map<String, Value> = snapshot
        .endpoints
        .iter()
        .map(|endpoint| {
            (
                endpoint.route.clone(),
                json!({
                    "samples": endpoint.samples,
                    "p95Ms": endpoint.p95_ms,
                    "p99Ms": endpoint.p99_ms,
                    "thresholdP95Ms": milliseconds(endpoint.threshold_p95_ms),
                    "thresholdP99Ms": milliseconds(endpoint.threshold_p99_ms),
                    "violating": endpoint.violating,
                    "lastTrigger": endpoint.last_trigger,
                }),
            )
        })
        .collect();
    json!({
        "enabled": sla.continuous_profiling,
        "autoTrigger": sla.auto_trigger,
        "throttleMinutes": sla.throttle.as_secs_f64() / 60.0,
        "bufferSize": sla.buffer_size,
        "endpoints": endpoints,
        "activeSession": snapshot.active_session,
        "lastBlockedReason": snapshot.last_blocked_reason.map(|reason| reason.as_str()),
        "lastBlockedMessage": snapshot.last_blocked_reason.map(crate::monitor::explain),
        "storage": {
            "usedBytes": snapshot.storage_used_bytes,
            "quotaBytes": snapshot.storage_quota_bytes,
        },
        "overhead": snapshot.overhead_percent,
    })
}

fn profiling_section(app: &App) -> Value {
    let status = app.profiler.status();
    let active = status.active.map(|session| {
        json!({
            "id": session.id,
            "type": session.kind.as_str(),
            "trigger": session.trigger.as_str(),
            "status": SessionState::Running.as_str(),
            "startedAt": session.started_at,
        })
    });
    let last = status.last.map(|session| {
        json!({
            "id": session.info.id,
            "type": session.info.kind.as_str(),
            "trigger": session.info.trigger.as_str(),
            "status": session.state().as_str(),
            "startedAt": session.info.started_at,
            "endedAt": session.ended_at,
            "durationSeconds": session.duration.as_secs_f64(),
            "artifacts": session.artifact_paths(),
        })
    });
    json!({
        "enabled": app.config.profiling.debug_routes,
        "active": active.is_some(),
        "activeSession": active,
        "lastSession": last,
    })
}

fn human_uptime(seconds: u64) -> String {
    let (days, hours, minutes, secs) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, _) => format!("{minutes}m {secs}s"),
        (0, _, _) => format!("{hours}h {minutes}m {secs}s"),
        _ => format!("{days}d {hours}h {minutes}m {secs}s"),
    }
}

/// `https://user:pass@host` → `https://host`: the admin URL is shown, its credentials are not.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_removed() {
        assert_eq!(
            redact_userinfo("https://u:p@kong:8001/x"),
            "https://kong:8001/x"
        );
        assert_eq!(redact_userinfo("http://kong:8001"), "http://kong:8001");
        assert_eq!(human_uptime(3725), "1h 2m 5s");
    }
}
