//! Our own HTTP value types: what every handler sees instead of tiny_http's.
//!
//! Owns `Request` (borrowed views of one inbound request), `Response` (status, headers, body)
//! and the problem+json error layout. Must not name tiny_http types, read sockets, or sleep:
//! `server::adapter` is the only place that converts between these and the wire.

pub mod problem;
pub mod request;
pub mod response;
pub mod router;

pub use request::{Method, Request};
pub use response::{Body, Response};
