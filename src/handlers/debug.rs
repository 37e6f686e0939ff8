//! Every path under `/debug/`: profiling sessions (`/debug/profiling/*`, SPEC §5), Go's
//! `net/http/pprof` conventions (`/debug/pprof/*`) and the profiler self-check workloads
//! (`/debug/workload/*`, a known hot function and a known allocation).
//!
//! Owns only request parsing and JSON shapes; every action goes through `Profiler`. Must not
//! touch the samplers or the allocator directly, spawn threads or sleep: the two long requests
//! (`/debug/pprof/profile` and `/debug/workload/spin`) block inside the profiler and the
//! workload function. The router hides all of this in production before we are called.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::http::problem::Problem;
use crate::http::response::Body;
use crate::http::{Method, Request, Response};
use crate::profiling::pprof_out::HeapView;
use crate::profiling::{
    FinishedSession, Formats, Naming, OutputSpec, Profiler, ProfilingError, SessionInfo,
    SessionKind, SessionRequest, SessionState, Trigger, artifacts, workload,
};

/// Go's default for `/debug/pprof/profile`.
const PPROF_DEFAULT_SECONDS: u64 = 30;
const PPROF_MAX_SECONDS: u64 = 300;

pub fn handle(profiler: &Profiler, request: &Request<'_>) -> Response {
    let path = request.path.trim_end_matches('/');
    let method = request.method;
    use Method::{Delete, Get, Post};
    match path {
        "/debug/profiling/start" => only(request, &[Post], || start(profiler, request)),
        "/debug/profiling/stop" => only(request, &[Post], || stop(profiler, request)),
        "/debug/profiling/status" => only(request, &[Get], || status(profiler)),
        "/debug/profiling/reports" => only(request, &[Get], || reports(profiler)),
        "/debug/profiling/report" => only(request, &[Get], || report(profiler, request)),
        "/debug/profiling/cleanup" => only(request, &[Delete, Post], || cleanup(profiler, request)),
        "/debug/pprof" => only(request, &[Get], pprof_index),
        "/debug/pprof/profile" => only(request, &[Get], || pprof_cpu(profiler, request)),
        "/debug/pprof/heap" => only(request, &[Get], || {
            pprof_bytes(profiler.heap_pprof(HeapView::InUse), "heap")
        }),
        "/debug/pprof/allocs" => only(request, &[Get], || {
            pprof_bytes(profiler.heap_pprof(HeapView::Allocated), "allocs")
        }),
        "/debug/workload/spin" => only(request, &[Post], || spin(request)),
        // Proves the containment promise: this request gets a 500, the worker lives on.
        "/debug/workload/panic" => only(request, &[Post], || {
            panic!("deliberate panic from /debug/workload/panic")
        }),
        "/debug/workload/retain" => match method {
            Post => retain(profiler, request),
            Delete => {
                let released = profiler.retained().release();
                Response::json(200, &json!({"success": true, "releasedMb": released}))
            }
            _ => method_not_allowed(request, &[Post, Delete]),
        },
        _ if path.starts_with("/debug/pprof/") => {
            let mut problem = Problem::not_found(request);
            problem.detail = "Unknown profile: supported are profile, heap and allocs".into();
            problem.into_response(request)
        }
        _ => not_found(request),
    }
}

/// Runs `run` when the method is allowed (HEAD wherever GET is, per RFC 9110), else 405.
fn only(request: &Request<'_>, allowed: &[Method], run: impl FnOnce() -> Response) -> Response {
    let head_as_get = request.method == Method::Head && allowed.contains(&Method::Get);
    if allowed.contains(&request.method) || head_as_get {
        run()
    } else {
        method_not_allowed(request, allowed)
    }
}

fn method_not_allowed(request: &Request<'_>, allowed: &[Method]) -> Response {
    let mut allow: Vec<&str> = Vec::new();
    for method in allowed {
        allow.push(method.as_str());
        if *method == Method::Get {
            allow.push(Method::Head.as_str());
        }
    }
    allow.push(Method::Options.as_str());
    Problem::method_not_allowed(request, &allow.join(", "))
}

fn not_found(request: &Request<'_>) -> Response {
    Problem::not_found(request).into_response(request)
}

fn bad_request(request: &Request<'_>, detail: impl Into<String>) -> Response {
    Problem::plain(400, "Bad Request", detail).into_response(request)
}

fn error_response(request: &Request<'_>, err: &ProfilingError) -> Response {
    match err {
        ProfilingError::Busy => Problem::plain(
            409,
            "Conflict",
            "a profiling session is already running; stop it first",
        )
        .into_response(request),
        ProfilingError::InvalidRequest(why) => bad_request(request, why.clone()),
        other => {
            log::error!("profiling request {} failed: {other}", request.path);
            Problem::plain(500, "Internal Server Error", other.to_string()).into_response(request)
        }
    }
}

/// A query parameter as an integer in `range`, `Ok(None)` when absent.
fn number_param(
    request: &Request<'_>,
    name: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, Response> {
    match request.query_param(name) {
        None => Ok(None),
        Some(text) => match text.parse::<u64>() {
            Ok(value) if range.contains(&value) => Ok(Some(value)),
            _ => Err(bad_request(
                request,
                format!(
                    "{name} must be an integer from {} to {}, got {text:?}",
                    range.start(),
                    range.end()
                ),
            )),
        },
    }
}

fn iso(at: SystemTime) -> String {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    crate::timefmt::iso8601_millis(since.as_secs() as i64, since.subsec_millis())
}

fn seconds_text(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

fn file_names(finished: &FinishedSession) -> Vec<String> {
    finished
        .artifacts
        .iter()
        .filter_map(|a| a.path.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}

fn start(profiler: &Profiler, request: &Request<'_>) -> Response {
    let kind_text = request.query_param("type");
    let kind = match kind_text.as_deref() {
        None | Some("") => SessionKind::Cpu,
        Some(text) => match SessionKind::parse(text) {
            Some(kind) => kind,
            None => {
                return bad_request(
                    request,
                    format!("type must be cpu, heap or both, got {text:?}"),
                );
            }
        },
    };
    let seconds = match number_param(
        request,
        "seconds",
        1..=crate::profiling::MAX_SESSION_SECONDS,
    ) {
        Ok(seconds) => seconds,
        Err(response) => return response,
    };
    let session = SessionRequest {
        kind,
        trigger: Trigger::Manual,
        output: OutputSpec {
            dir: profiler.settings().manual_dir.clone(),
            naming: Naming::Standard,
            formats: Formats::all(),
        },
        seconds,
    };
    match profiler.start(session) {
        Ok(info) => Response::json(
            200,
            &json!({
                "success": true,
                "message": "Profiling session started",
                "sessionId": info.id,
                "type": info.kind.as_str(),
                "startedAt": info.started_at,
                "seconds": info.seconds,
            }),
        ),
        Err(err) => error_response(request, &err),
    }
}

fn stop(profiler: &Profiler, request: &Request<'_>) -> Response {
    match profiler.stop() {
        Ok(Some(finished)) => Response::json(
            200,
            &json!({
                "success": true,
                "message": "Profiling session stopped",
                "sessionId": finished.info.id,
                "type": finished.info.kind.as_str(),
                "duration": seconds_text(finished.duration),
                "artifacts": file_names(&finished),
                "errors": finished.errors,
            }),
        ),
        Ok(None) => Response::json(
            200,
            &json!({
                "success": true,
                "message": "No active profiling session",
                "sessionId": null,
                "artifacts": [],
            }),
        ),
        Err(err) => error_response(request, &err),
    }
}

fn active_json(info: &SessionInfo) -> Value {
    json!({
        "id": info.id,
        "type": info.kind.as_str(),
        "trigger": info.trigger.as_str(),
        "status": SessionState::Running.as_str(),
        "startTime": info.started_at,
        "endTime": null,
        "duration": seconds_text(SystemTime::now().duration_since(info.started).unwrap_or_default()),
    })
}

fn finished_json(finished: &FinishedSession) -> Value {
    json!({
        "id": finished.info.id,
        "type": finished.info.kind.as_str(),
        "trigger": finished.info.trigger.as_str(),
        "status": finished.state().as_str(),
        "startTime": finished.info.started_at,
        "endTime": finished.ended_at,
        "duration": seconds_text(finished.duration),
        "artifacts": file_names(finished),
        "errors": finished.errors,
    })
}

fn status(profiler: &Profiler) -> Response {
    let status = profiler.status();
    let mut sessions: Vec<Value> = status.sessions.iter().rev().map(finished_json).collect();
    if let Some(active) = &status.active {
        sessions.insert(0, active_json(active));
    }
    let reports: Vec<Value> = profiler
        .reports()
        .iter()
        .map(|entry| {
            json!({
                "id": entry.file.file_name,
                "type": entry.file.kind,
                "size": entry.file.size,
                "created": iso(entry.file.modified),
            })
        })
        .collect();
    Response::json(
        200,
        &json!({
            "enabled": true,
            "active": status.active.is_some(),
            "activeSession": status.active.as_ref().map(active_json),
            "sessions": sessions,
            "lastSession": status.last.as_ref().map(finished_json),
            "reports": reports,
        }),
    )
}

fn reports(profiler: &Profiler) -> Response {
    let reports: Vec<Value> = profiler
        .reports()
        .iter()
        .map(|entry| {
            json!({
                "sessionId": entry.session_id,
                "type": entry.file.kind,
                "filename": entry.file.file_name,
                "size": entry.file.size,
                "created": iso(entry.file.modified),
            })
        })
        .collect();
    let total = reports.len();
    Response::json(200, &json!({"reports": reports, "total": total}))
}

/// Serves one artifact. Only a bare file name that appears in the reports list is accepted,
/// so no path from the client ever reaches the filesystem.
fn report(profiler: &Profiler, request: &Request<'_>) -> Response {
    let Some(name) = request.query_param("file") else {
        return bad_request(
            request,
            "file is required (a name from /debug/profiling/reports)",
        );
    };
    if name.is_empty() || name.contains('/') || name.contains('\\') || name.contains("..") {
        return bad_request(
            request,
            "file must be a bare file name from the reports list",
        );
    }
    let Some(entry) = profiler
        .reports()
        .into_iter()
        .find(|entry| entry.file.file_name == name.as_ref())
    else {
        return bad_request(request, format!("{name} is not in the reports list"));
    };
    match std::fs::read(&entry.file.path) {
        Ok(bytes) => Response::new(200)
            .with_header("Content-Type", artifacts::content_type(&name))
            .with_header("X-Content-Type-Options", "nosniff")
            .with_body(Body::Bytes(bytes)),
        Err(err) => {
            log::error!("cannot read {}: {err}", entry.file.path.display());
            Problem::plain(500, "Internal Server Error", format!("cannot read {name}"))
                .into_response(request)
        }
    }
}

fn cleanup(profiler: &Profiler, request: &Request<'_>) -> Response {
    match profiler.cleanup() {
        Ok(cleaned) => Response::json(
            200,
            &json!({
                "success": true,
                "message": "Profiling cleanup completed",
                "cleaned": {"reports": cleaned.reports, "sessions": cleaned.sessions},
                "stoppedSession": cleaned.stopped,
            }),
        ),
        Err(err) => error_response(request, &err),
    }
}

fn pprof_index() -> Response {
    let body = "<html><head><title>/debug/pprof/</title></head><body>\n\
        <p>/debug/pprof/</p>\n\
        <table>\n\
        <tr><td><a href=\"profile?seconds=30\">profile</a></td><td>CPU profile (SIGPROF sampling, 99 Hz). \
        Add ?seconds=N (1-300, default 30); the request blocks for that long.</td></tr>\n\
        <tr><td><a href=\"heap\">heap</a></td><td>A sampling of live heap allocations \
        (inuse_space by default) from the current or last heap session.</td></tr>\n\
        <tr><td><a href=\"allocs\">allocs</a></td><td>A sampling of all allocations \
        (alloc_space by default) from the current or last heap session.</td></tr>\n\
        </table>\n\
        <p>Sessions with Markdown reports: POST /debug/profiling/start?type=cpu|heap|both.</p>\n\
        </body></html>\n";
    Response::text(200, "text/html; charset=utf-8", body)
}

fn pprof_bytes(bytes: Vec<u8>, name: &'static str) -> Response {
    Response::new(200)
        .with_header("Content-Type", "application/octet-stream")
        .with_header(
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        )
        .with_header("X-Content-Type-Options", "nosniff")
        .with_body(Body::Bytes(bytes))
}

fn pprof_cpu(profiler: &Profiler, request: &Request<'_>) -> Response {
    let seconds = match number_param(request, "seconds", 1..=PPROF_MAX_SECONDS) {
        Ok(seconds) => seconds.unwrap_or(PPROF_DEFAULT_SECONDS),
        Err(response) => return response,
    };
    match profiler.cpu_pprof_for(seconds) {
        Ok(bytes) => pprof_bytes(bytes, "profile"),
        Err(err) => error_response(request, &err),
    }
}

fn spin(request: &Request<'_>) -> Response {
    let ms = match number_param(request, "ms", 1..=workload::MAX_SPIN_MS) {
        Ok(Some(ms)) => ms,
        Ok(None) => return bad_request(request, "ms is required (1 to 10000)"),
        Err(response) => return response,
    };
    let rounds = workload::spin_cpu(Duration::from_millis(ms));
    Response::json(
        200,
        &json!({
            "success": true,
            "function": "auth_service::profiling::workload::spin_cpu",
            "ms": ms,
            "rounds": rounds,
        }),
    )
}

fn retain(profiler: &Profiler, request: &Request<'_>) -> Response {
    let mb = match number_param(request, "mb", 1..=workload::MAX_RETAIN_MIB as u64) {
        Ok(Some(mb)) => mb as usize,
        Ok(None) => return bad_request(request, "mb is required (1 to 256)"),
        Err(response) => return response,
    };
    match profiler.retained().retain(mb) {
        Some(total) => Response::json(
            200,
            &json!({
                "success": true,
                "function": "auth_service::profiling::workload::retain_mib",
                "retainedMb": total,
            }),
        ),
        None => bad_request(
            request,
            format!(
                "retaining {mb} MiB more would exceed {} MiB in total; DELETE first",
                workload::MAX_RETAINED_TOTAL_MIB
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiling::ProfilerSettings;
    use std::sync::Arc;

    fn profiler(name: &str) -> Arc<Profiler> {
        let dir =
            std::env::temp_dir().join(format!("auth-service-debug-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Profiler::new(ProfilerSettings {
            manual_dir: dir,
            ..ProfilerSettings::default()
        })
    }

    fn call(profiler: &Profiler, method: Method, url: &str) -> (Response, Value) {
        let request = Request::new(method, url, Vec::new(), "test-id");
        let response = handle(profiler, &request);
        let body = serde_json::from_slice(response.body.as_bytes()).unwrap_or(Value::Null);
        (response, body)
    }

    #[test]
    fn routes_methods_and_validation() {
        let p = profiler("routes");
        let cases: [(Method, &str, u16); 14] = [
            (Method::Get, "/debug/profiling/start", 405),
            (Method::Post, "/debug/profiling/start?type=gpu", 400),
            (Method::Post, "/debug/profiling/start?seconds=0", 400),
            (Method::Post, "/debug/profiling/start?seconds=x", 400),
            (Method::Post, "/debug/profiling/stop", 200),
            (Method::Get, "/debug/profiling/status", 200),
            (Method::Get, "/debug/profiling/reports", 200),
            (Method::Get, "/debug/profiling/report?file=../x", 400),
            (Method::Get, "/debug/profiling/report?file=a%2Fb", 400),
            (Method::Get, "/debug/profiling/report?file=CPU.x.1.md", 400),
            (Method::Get, "/debug/pprof/goroutine", 404),
            (Method::Get, "/debug/nothing", 404),
            (Method::Post, "/debug/workload/spin?ms=20000", 400),
            (Method::Put, "/debug/workload/retain", 405),
        ];
        for (method, url, expected) in cases {
            let (response, _) = call(&p, method, url);
            assert_eq!(response.status, expected, "{method:?} {url}");
            if expected >= 400 {
                assert_eq!(
                    response.header("Content-Type"),
                    Some("application/problem+json"),
                    "{url}"
                );
            }
        }
        let (response, _) = call(&p, Method::Get, "/debug/profiling/start");
        assert_eq!(response.header("Allow"), Some("POST, OPTIONS"));
        let (response, _) = call(&p, Method::Get, "/debug/profiling/cleanup");
        assert_eq!(response.header("Allow"), Some("DELETE, POST, OPTIONS"));
        let (_, body) = call(&p, Method::Post, "/debug/profiling/stop");
        assert_eq!(body["message"], "No active profiling session");
        assert_eq!(body["sessionId"], Value::Null);
        let (response, _) = call(&p, Method::Get, "/debug/pprof/");
        assert!(String::from_utf8_lossy(response.body.as_bytes()).contains("profile?seconds=30"));
        let (response, _) = call(&p, Method::Get, "/debug/pprof/allocs");
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("Content-Type"),
            Some("application/octet-stream")
        );
        let (_, body) = call(&p, Method::Post, "/debug/workload/retain?mb=1");
        assert_eq!(body["retainedMb"], 1);
        let (_, body) = call(&p, Method::Delete, "/debug/workload/retain");
        assert_eq!(body["releasedMb"], 1);
        let (_, body) = call(&p, Method::Post, "/debug/workload/spin?ms=5");
        assert_eq!(body["ms"], 5);
    }

    #[test]
    fn session_lifecycle_over_the_handler() {
        let _serial = crate::profiling::alloc::tests::SAMPLER_TESTS
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let p = profiler("lifecycle");
        let (response, body) = call(&p, Method::Post, "/debug/profiling/start?type=both");
        assert_eq!(response.status, 200, "{body}");
        assert_eq!(body["type"], "both");
        assert!(body["sessionId"].as_str().unwrap().starts_with("profile-"));
        let (response, _) = call(&p, Method::Post, "/debug/profiling/start");
        assert_eq!(response.status, 409);
        let (response, _) = call(&p, Method::Get, "/debug/pprof/profile?seconds=1");
        assert_eq!(response.status, 409);
        let (_, status) = call(&p, Method::Get, "/debug/profiling/status");
        assert_eq!(status["active"], true);
        assert_eq!(status["activeSession"]["id"], body["sessionId"]);
        let (_, stopped) = call(&p, Method::Post, "/debug/profiling/stop");
        assert_eq!(stopped["message"], "Profiling session stopped");
        let artifacts: Vec<String> = stopped["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(artifacts.len(), 5, "{stopped}");
        let (_, listed) = call(&p, Method::Get, "/debug/profiling/reports");
        assert_eq!(listed["total"], 5);
        let md = artifacts
            .iter()
            .find(|a| a.starts_with("Heap.") && a.ends_with(".md"))
            .unwrap();
        let (response, _) = call(
            &p,
            Method::Get,
            &format!("/debug/profiling/report?file={md}"),
        );
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("Content-Type"),
            Some("text/markdown; charset=utf-8")
        );
        assert!(String::from_utf8_lossy(response.body.as_bytes()).starts_with("# Heap Profile"));
        let (_, cleaned) = call(&p, Method::Delete, "/debug/profiling/cleanup");
        assert_eq!(cleaned["cleaned"]["reports"], 5);
        assert_eq!(cleaned["cleaned"]["sessions"], 1);
        let _ = std::fs::remove_dir_all(&p.settings().manual_dir);
    }
}
