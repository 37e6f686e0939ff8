//! placeholder
use crate::http::{Request, Response};
use crate::profiling::Profiler;
pub fn handle(_profiler: &Profiler, _request: &Request<'_>) -> Response {
    Response::new(404)
}
