//! The router: one `match` from (method, path) to a handler, deciding 404, 405 with `Allow`,
//! OPTIONS preflights, and the body `Content-Type` check that comes before all of them.
//!
//! No I/O, no clock, no locks: handlers do the work. The route label it returns is what
//! metrics and the SLA monitor key on, so it never contains anything from the request.

use serde_json::Value;

use crate::app::App;
use crate::handlers;
use crate::http::problem::{ErrorCode, Problem};
use crate::http::{Method, Request, Response};
use crate::metrics::RouteLabel;

/// Routes known to the router, with the methods each accepts.
fn resolve(path: &str, debug_routes: bool) -> Option<(RouteLabel, &'static str)> {
    let path = match path.len() {
        1 => path,
        _ => path.strip_suffix('/').unwrap_or(path),
    };
    let found = match path {
        "/tokens" => (RouteLabel::Tokens, "GET, HEAD, POST, OPTIONS"),
        "/tokens/validate" => (RouteLabel::TokensValidate, "GET, HEAD, POST, OPTIONS"),
        "/health" => (RouteLabel::Health, "GET, HEAD, OPTIONS"),
        "/health/ready" => (RouteLabel::HealthReady, "GET, HEAD, OPTIONS"),
        "/health/live" => (RouteLabel::HealthLive, "GET, HEAD, OPTIONS"),
        "/health/telemetry" => (RouteLabel::HealthTelemetry, "GET, HEAD, OPTIONS"),
        "/metrics" => (RouteLabel::Metrics, "GET, HEAD, OPTIONS"),
        "/" => (RouteLabel::OpenApi, "GET, HEAD, OPTIONS"),
        _ if debug_routes && (path == "/debug" || path.starts_with("/debug/")) => {
            (RouteLabel::Debug, "GET, HEAD, POST, DELETE, OPTIONS")
        }
        _ => return None,
    };
    Some(found)
}

/// Dispatches `request`; the label names the matched route for metrics.
pub fn route(app: &App, request: &Request<'_>) -> (RouteLabel, Response) {
    let resolved = resolve(request.path, app.config.profiling.debug_routes);
    let label = resolved.map_or(RouteLabel::Unmatched, |(label, _)| label);
    // Before routing, as the old service did: a client sending an unusable body learns that
    // first, whatever path or method it used.
    if let Some(problem) = unsupported_body(request) {
        return (label, problem.into_response(request));
    }
    let Some((label, allow)) = resolved else {
        return (
            RouteLabel::Unmatched,
            Problem::not_found(request).into_response(request),
        );
    };
    if request.method == Method::Options {
        let response = Response::new(204).with_header("Allow", allow).with_header(
            "Access-Control-Max-Age",
            app.config.server.cors_max_age_seconds.to_string(),
        );
        return (label, response);
    }
    let response = match (label, request.method) {
        (RouteLabel::Tokens, Method::Get | Method::Head | Method::Post) => {
            handlers::tokens::issue(app, request)
        }
        (RouteLabel::TokensValidate, Method::Get | Method::Head | Method::Post) => {
            handlers::tokens::validate(app, request)
        }
        (RouteLabel::Health, Method::Get | Method::Head) => handlers::health::health(app, request),
        (RouteLabel::HealthReady, Method::Get | Method::Head) => {
            handlers::health::ready(app, request)
        }
        (RouteLabel::HealthLive, Method::Get | Method::Head) => handlers::health::live(),
        (RouteLabel::HealthTelemetry, Method::Get | Method::Head) => {
            handlers::telemetry::health(app, request)
        }
        (RouteLabel::Metrics, Method::Get | Method::Head) => {
            handlers::metrics::metrics(app, request)
        }
        (RouteLabel::OpenApi, Method::Get | Method::Head) => handlers::openapi::document(request),
        (RouteLabel::Debug, _) => handlers::debug_routes(app, request),
        _ => Problem::method_not_allowed(request, allow),
    };
    (label, response)
}

/// The media types a request body may have (any parameters, such as `charset`, allowed).
pub const ACCEPTED_BODY_TYPES: [&str; 2] =
    ["application/json", "application/x-www-form-urlencoded"];

/// AUTH_007 when the request carries a body whose `Content-Type` is missing or not one of
/// [`ACCEPTED_BODY_TYPES`]; `None` for requests without a body.
fn unsupported_body(request: &Request<'_>) -> Option<Problem> {
    if !request.has_body {
        return None;
    }
    let provided = request.header("content-type");
    let media_type = provided
        .and_then(|value| value.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if ACCEPTED_BODY_TYPES
        .iter()
        .any(|accepted| media_type.eq_ignore_ascii_case(accepted))
    {
        return None;
    }
    let detail = match provided {
        Some(value) => format!(
            "Content-Type '{value}' is not supported; send application/json or application/x-www-form-urlencoded"
        ),
        None => "A request body needs a Content-Type of application/json or application/x-www-form-urlencoded".to_owned(),
    };
    Some(
        Problem::auth(ErrorCode::InvalidRequestFormat, detail)
            .with_extension("reason", "Invalid or unsupported Content-Type")
            .with_extension("provided", provided.map_or(Value::Null, Value::from))
            .with_extension("accepted", ACCEPTED_BODY_TYPES.to_vec()),
    )
}
