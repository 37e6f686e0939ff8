//! Request handlers: one function per endpoint, from our `Request` to our `Response`.
//!
//! Handlers must not see tiny_http types, spawn threads, sleep, or hold a lock across I/O; the
//! only blocking they do is the Kong lookup inside `CredentialStore`.

pub mod debug;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod tokens;

use crate::app::App;
use crate::http::{Request, Response};

/// Everything under `/debug/` (the router already hid it in production).
pub fn debug_routes(app: &App, request: &Request<'_>) -> Response {
    debug::handle(&app.profiler, request)
}
