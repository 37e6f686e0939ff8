//! Request handlers: one function per endpoint, from our `Request` to our `Response`.
//!
//! Handlers must not see tiny_http types, spawn threads, sleep, or hold a lock across I/O; the
//! only Kong-related blocking they do is inside `CredentialStore`: a credential lookup that must
//! wait on Kong (at most `KONG_MAX_WAITING_WORKERS` workers at once), and, right after start-up
//! only, the wait for the first Kong health probe. Health handlers never call Kong.

pub mod debug;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod telemetry;
pub mod tokens;

use crate::app::App;
use crate::http::{Request, Response};

/// Everything under `/debug/` (the router already hid it in production).
pub fn debug_routes(app: &App, request: &Request<'_>) -> Response {
    // `/debug/metrics/*` are telemetry's, the rest the profiler's.
    if let Some(response) = telemetry::debug(app, request) {
        return response;
    }
    debug::handle(&app.profiler, request)
}
