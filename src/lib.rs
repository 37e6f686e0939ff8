//! auth-service: issues and validates short-lived JWTs for Kong consumers, and profiles itself.
//!
//! (The full codemap is written once the modules below exist.)

pub mod cmd;
pub mod handlers;
pub mod http;
pub mod ids;
pub mod kong_sim;
pub mod profiling;
pub mod timefmt;
