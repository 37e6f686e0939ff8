//! The router: one `match` from (method, path) to a handler, deciding 404, 405 with `Allow`,
//! and OPTIONS preflights here.
//!
//! No I/O, no clock, no locks: handlers do the work. The route label it returns is what
//! metrics and the SLA monitor key on, so it never contains anything from the request.

use crate::app::App;
use crate::handlers;
use crate::http::problem::Problem;
use crate::http::{Method, Request, Response};
use crate::metrics::RouteLabel;

/// Routes known to the router, with the methods each accepts.
fn resolve(path: &str, debug_routes: bool) -> Option<(RouteLabel, &'static str)> {
    let path = match path.len() {
        1 => path,
        _ => path.strip_suffix('/').unwrap_or(path),
    };
    let found = match path {
        "/tokens" => (RouteLabel::Tokens, "GET, POST, OPTIONS"),
        "/tokens/validate" => (RouteLabel::TokensValidate, "GET, POST, OPTIONS"),
        "/health" => (RouteLabel::Health, "GET, HEAD, OPTIONS"),
        "/health/ready" => (RouteLabel::HealthReady, "GET, HEAD, OPTIONS"),
        "/health/live" => (RouteLabel::HealthLive, "GET, HEAD, OPTIONS"),
        "/health/telemetry" => (RouteLabel::HealthTelemetry, "GET, HEAD, OPTIONS"),
        "/metrics" => (RouteLabel::Metrics, "GET, HEAD, OPTIONS"),
        "/" => (RouteLabel::OpenApi, "GET, HEAD, OPTIONS"),
        _ if debug_routes && (path == "/debug" || path.starts_with("/debug/")) => {
            (RouteLabel::Debug, "GET, POST, DELETE, OPTIONS")
        }
        _ => return None,
    };
    Some(found)
}

/// Dispatches `request`; the label names the matched route for metrics.
pub fn route(app: &App, request: &Request<'_>) -> (RouteLabel, Response) {
    let Some((label, allow)) = resolve(request.path, app.config.profiling.debug_routes) else {
        let response = Problem::plain(404, "Not Found", format!("no route for {}", request.path))
            .into_response(request);
        return (RouteLabel::Unmatched, response);
    };
    if request.method == Method::Options {
        let response = Response::new(204).with_header("Allow", allow).with_header(
            "Access-Control-Max-Age",
            app.config.server.cors_max_age_seconds.to_string(),
        );
        return (label, response);
    }
    let response = match (label, request.method) {
        (RouteLabel::Tokens, Method::Get | Method::Post) => handlers::tokens::issue(app, request),
        (RouteLabel::TokensValidate, Method::Get | Method::Post) => {
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
        _ => Problem::plain(
            405,
            "Method Not Allowed",
            format!(
                "{} is not allowed on {}",
                request.method.as_str(),
                request.path
            ),
        )
        .into_response(request)
        .with_header("Allow", allow),
    };
    (label, response)
}
