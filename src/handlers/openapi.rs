//! `GET /`: the OpenAPI 3.1 description of every route, as JSON or (when `Accept` asks) YAML,
//! with the old service's caching: one `ETag` per representation, `Last-Modified`, `Vary:
//! Accept` and `Cache-Control: public, max-age=300`, and 304 for `If-None-Match` /
//! `If-Modified-Since`.
//!
//! The document is built once, on first use, and never changes while the process runs, so the
//! time it was built is its `Last-Modified`.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::http::{Body, Request, Response};

/// One representation of the document, with its own validator: a cache that stored the YAML
/// must never be told its copy is current by the JSON's ETag.
struct Representation {
    content_type: &'static str,
    body: Vec<u8>,
    etag: String,
}

impl Representation {
    fn new(content_type: &'static str, body: Vec<u8>) -> Representation {
        Representation {
            etag: format!("\"{:016x}\"", fnv1a(&body)),
            content_type,
            body,
        }
    }
}

struct Rendered {
    json: Representation,
    yaml: Representation,
    /// Whole seconds: HTTP-dates have no finer resolution, and a client's copy of our own
    /// `Last-Modified` must compare as not older.
    built: SystemTime,
    last_modified: String,
}

static DOCUMENT: LazyLock<Rendered> = LazyLock::new(|| {
    let document = build();
    let mut yaml = String::new();
    write_yaml(&mut yaml, &document, 0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let built = UNIX_EPOCH + Duration::from_secs(now.as_secs());
    Rendered {
        json: Representation::new(
            "application/json",
            serde_json::to_vec_pretty(&document).unwrap_or_default(),
        ),
        yaml: Representation::new("application/yaml", yaml.into_bytes()),
        built,
        last_modified: httpdate::fmt_http_date(built),
    }
});

const CACHE_CONTROL: &str = "public, max-age=300";

pub fn document(request: &Request<'_>) -> Response {
    let rendered: &'static Rendered = &DOCUMENT;
    let wants_yaml = request.header("accept").is_some_and(|accept| {
        accept
            .as_bytes()
            .windows(4)
            .any(|word| word.eq_ignore_ascii_case(b"yaml"))
    });
    let chosen = if wants_yaml {
        &rendered.yaml
    } else {
        &rendered.json
    };
    let response = if is_fresh(request, &chosen.etag, rendered.built) {
        Response::new(304)
    } else {
        Response::new(200)
            .with_header("Content-Type", chosen.content_type)
            .with_body(Body::Static(&chosen.body))
    };
    response
        .with_header("ETag", chosen.etag.as_str())
        .with_header("Last-Modified", rendered.last_modified.as_str())
        .with_header("Cache-Control", CACHE_CONTROL)
        .with_header("Vary", "Accept")
}

/// RFC 9110 13.2.2: `If-None-Match` (weak comparison) decides when present; only without it
/// does `If-Modified-Since` count.
fn is_fresh(request: &Request<'_>, etag: &str, built: SystemTime) -> bool {
    if let Some(tags) = request.header("if-none-match") {
        return tags
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag);
    }
    request
        .header("if-modified-since")
        .and_then(|date| httpdate::parse_http_date(date).ok())
        .is_some_and(|since| built <= since)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn problem(description: &str) -> Value {
    json!({"description": description, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
}

fn consumer_headers() -> Value {
    json!([
        {"name": "X-Consumer-ID", "in": "header", "required": true, "schema": {"type": "string", "maxLength": 256}, "description": "Kong consumer id, set by Kong"},
        {"name": "X-Consumer-Username", "in": "header", "required": true, "schema": {"type": "string", "maxLength": 256}},
        {"name": "X-Anonymous-Consumer", "in": "header", "required": false, "schema": {"type": "string"}, "description": "`true` is refused (AUTH_009)"},
    ])
}

fn build() -> Value {
    let token_op = |summary: &str| {
        json!({
            "summary": summary,
            "tags": ["tokens"],
            "parameters": consumer_headers(),
            "responses": {
                "200": {"description": "a signed HS256 JWT", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenResponse"}}}},
                "400": problem("AUTH_007 header too long, X-Consumer-ID . or .., or a body that is neither JSON nor form-urlencoded"),
                "401": problem("AUTH_001 missing consumer headers, AUTH_002 consumer not found, AUTH_009 anonymous consumer"),
                "500": problem("AUTH_003 signing failed, AUTH_008 internal error"),
                "503": problem("AUTH_004 Kong unavailable or too many requests waiting on Kong, AUTH_005 circuit breaker open (with Retry-After)"),
            }
        })
    };
    let mut validate_params = consumer_headers();
    if let Value::Array(params) = &mut validate_params {
        params.insert(0, json!({"name": "Authorization", "in": "header", "required": true, "schema": {"type": "string"}, "description": "Bearer <token>"}));
    }
    let validate_op = |summary: &str| {
        json!({
            "summary": summary,
            "tags": ["tokens"],
            "parameters": validate_params,
            "responses": {
                "200": {"description": "the token is valid", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ValidationResponse"}}}},
                "400": problem("AUTH_007 bad consumer header, AUTH_011 invalid token, AUTH_012 missing authorization"),
                "401": problem("AUTH_001, AUTH_002, AUTH_009, AUTH_010 token expired"),
                "503": problem("AUTH_004, AUTH_005"),
            }
        })
    };
    let json_ok = |summary: &str, tag: &str| json!({"summary": summary, "tags": [tag], "responses": {"200": {"description": "OK", "content": {"application/json": {}}}}});
    let debug_op = |summary: &str| json!({"summary": summary, "tags": ["profiling"], "description": "Only outside production (APP_ENV) and with PROFILING_ENABLED not false; 404 otherwise.", "responses": {"200": {"description": "OK"}, "400": problem("bad parameters"), "404": problem("debug routes disabled"), "409": problem("a session is already running")}});
    json!({
        "openapi": "3.1.1",
        "info": {
            "title": "Authentication Service API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Issues and validates short-lived HS256 JWTs for Kong consumers; profiles itself.",
        },
        "paths": {
            "/tokens": {"get": token_op("Issue a token for the Kong consumer"), "post": token_op("Issue a token for the Kong consumer")},
            "/tokens/validate": {"get": validate_op("Validate a token for the Kong consumer"), "post": validate_op("Validate a token for the Kong consumer")},
            "/health": {"get": {"summary": "Dependency health with slaMonitor and profiling sections", "tags": ["operations"], "responses": {"200": {"description": "healthy or degraded"}, "503": {"description": "unhealthy (draining)"}}}},
            "/health/ready": {"get": {"summary": "Readiness", "tags": ["operations"], "responses": {"200": {"description": "ready"}, "503": {"description": "Kong unreachable, not probed yet, or draining"}}}},
            "/health/live": {"get": json_ok("Liveness", "operations")},
            "/health/telemetry": {"get": json_ok("OpenTelemetry export state: mode, endpoints, export counts, recent errors", "operations")},
            "/metrics": {"get": {"summary": "Prometheus text (Accept: text/plain or ?format=prometheus) or JSON views", "tags": ["operations"],
                "parameters": [
                    {"name": "format", "in": "query", "schema": {"enum": ["prometheus", "json"]}},
                    {"name": "view", "in": "query", "schema": {"enum": ["operational", "infrastructure", "config", "telemetry", "exports", "full"]}},
                ],
                "responses": {"200": {"description": "metrics"}, "400": problem("AUTH_007 unknown view or format")}}},
            "/": {"get": {"summary": "This document (JSON, or YAML when Accept asks for yaml)", "tags": ["operations"], "responses": {"200": {"description": "OpenAPI 3.1"}, "304": {"description": "not modified (If-None-Match or If-Modified-Since)"}}}},
            "/debug/profiling/start": {"post": debug_op("Start a profiling session (?type=cpu|heap|both&seconds=N)")},
            "/debug/profiling/stop": {"post": debug_op("Stop the session and write its artifacts")},
            "/debug/profiling/status": {"get": debug_op("Profiler status")},
            "/debug/profiling/reports": {"get": debug_op("List written artifacts")},
            "/debug/profiling/report": {"get": debug_op("Download one artifact (?file=NAME)")},
            "/debug/profiling/cleanup": {"delete": debug_op("Delete artifacts and session history"), "post": debug_op("Delete artifacts and session history")},
            "/debug/pprof/": {"get": debug_op("Index of pprof endpoints")},
            "/debug/pprof/profile": {"get": debug_op("CPU profile for ?seconds=N (gzipped pprof)")},
            "/debug/pprof/heap": {"get": debug_op("Sampled heap (gzipped pprof)")},
            "/debug/pprof/allocs": {"get": debug_op("Sampled allocations (gzipped pprof)")},
            "/debug/metrics/test": {"post": debug_op("Record one test increment of each exported counter")},
            "/debug/metrics/export": {"post": debug_op("Export queued spans and one metrics collection now (count and duration)")},
        },
        "components": {
            "schemas": {
                "TokenResponse": {"type": "object", "required": ["access_token", "expires_in", "token_type"], "properties": {
                    "access_token": {"type": "string"}, "expires_in": {"type": "integer"}, "token_type": {"const": "Bearer"}}},
                "ValidationResponse": {"type": "object", "properties": {
                    "valid": {"type": "boolean"}, "tokenId": {"type": "string"}, "subject": {"type": "string"},
                    "issuer": {"type": "string"}, "audience": {"type": ["string", "array"]},
                    "issuedAt": {"type": "string", "format": "date-time"}, "expiresAt": {"type": "string", "format": "date-time"},
                    "expiresIn": {"type": "integer"}}},
                "Problem": {"type": "object", "required": ["type", "title", "status", "detail", "instance", "requestId", "timestamp"], "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                    "detail": {"type": "string"}, "instance": {"type": "string"}, "code": {"type": "string", "pattern": "^AUTH_0[0-9]{2}$"},
                    "requestId": {"type": "string"}, "timestamp": {"type": "string", "format": "date-time"}, "extensions": {"type": "object"}}},
            }
        }
    })
}

/// A YAML rendering of a JSON value: block style, every string double-quoted (JSON string
/// escapes are valid YAML), so no scalar can be misread.
fn write_yaml(out: &mut String, value: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let key = serde_json::to_string(key).unwrap_or_default();
                match child {
                    Value::Object(inner) if !inner.is_empty() => {
                        let _ = writeln!(out, "{pad}{key}:");
                        write_yaml(out, child, indent + 2);
                    }
                    Value::Array(items) if !items.is_empty() => {
                        let _ = writeln!(out, "{pad}{key}:");
                        write_yaml(out, child, indent + 2);
                    }
                    scalar => {
                        let _ = writeln!(out, "{pad}{key}: {}", inline(scalar));
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                match item {
                    Value::Object(inner) if !inner.is_empty() => {
                        let mut nested = String::new();
                        write_yaml(&mut nested, item, indent + 2);
                        let trimmed = nested.trim_start();
                        let _ = write!(out, "{pad}- {trimmed}");
                    }
                    Value::Array(inner) if !inner.is_empty() => {
                        let _ = writeln!(out, "{pad}-");
                        write_yaml(out, item, indent + 2);
                    }
                    scalar => {
                        let _ = writeln!(out, "{pad}- {}", inline(scalar));
                    }
                }
            }
        }
        scalar => {
            let _ = writeln!(out, "{pad}{}", inline(scalar));
        }
    }
}

fn inline(value: &Value) -> String {
    match value {
        Value::Object(_) => "{}".to_owned(),
        Value::Array(_) => "[]".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_every_route_and_yaml_renders() {
        let document = build();
        for path in [
            "/tokens",
            "/tokens/validate",
            "/health",
            "/health/ready",
            "/health/live",
            "/health/telemetry",
            "/metrics",
            "/",
        ] {
            assert!(document["paths"].get(path).is_some(), "{path}");
        }
        let mut yaml = String::new();
        write_yaml(&mut yaml, &json!({"a": [{"b": 1, "c": "x"}], "d": {}}), 0);
        assert_eq!(yaml, "\"a\":\n  - \"b\": 1\n    \"c\": \"x\"\n\"d\": {}\n");
    }
}
