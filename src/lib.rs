//! auth-service: issues and validates short-lived JWTs for Kong consumers, and profiles itself.
//!
//! (The full codemap is written once the modules below exist.)
//!
//! Side path: `monitor` — workers `try_send` one sample per request (latency from leaving
//! tiny_http's queue to the response written) to one SLA monitor thread, which keeps rolling
//! p95/p99 per route and starts guarded automatic profiles through `profiling::Profiler`.

pub mod app;
pub mod cmd;
pub mod config;
pub mod handlers;
pub mod http;
pub mod ids;
pub mod jwt;
pub mod kong;
pub mod kong_sim;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod process;
pub mod profiling;
pub mod server;
pub mod timefmt;
pub mod tools;
