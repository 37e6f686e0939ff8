//! The only file that names tiny_http's request and response types: it turns one
//! `tiny_http::Request` into our `Request`, runs the router inside `catch_unwind`, and writes our
//! `Response` back with the headers every response carries (request id, CORS).
//!
//! It also enforces the transport limits before routing (413 for a declared body over
//! `MAX_REQUEST_BODY_SIZE`, 431 for oversized headers), and measures the request for metrics.

use std::borrow::Cow;
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use tiny_http::StatusCode;

use crate::app::App;
use crate::config::ServerConfig;
use crate::http::problem::{ErrorCode, Problem};
use crate::http::{Body, Method, Request, Response, router};
use crate::ids;
use crate::metrics::RouteLabel;

/// A single header value longer than this, or all headers together over `MAX_HEADER_BYTES`,
/// gets 431.
const MAX_HEADER_VALUE_BYTES: usize = 8 * 1024;
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Answers one request. `taken_at` is when the worker took it off the queue: the service time
/// (`http_request_duration_seconds`) runs from there to the response being handed to the
/// socket; the latency the SLA monitor sees, what a client feels, runs from the request's
/// first byte being read, so the wait in the queue counts.
/// `cors_lines` are this server's CORS header lines, rendered once by `cors_header_lines`.
pub fn serve(app: &App, cors_lines: &[u8], raw: tiny_http::Request, taken_at: Instant) {
    let received_at = raw.received_at();
    let method = Method::parse(raw.method().as_str());
    let declared_body = raw.body_length().unwrap_or(0) as u64;
    // One pass over the headers: the size limits, the inbound request id, and our borrowed view.
    let mut header_bytes = 0usize;
    let mut oversized_header = false;
    let mut inbound_id = None;
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(raw.headers().len());
    for header in raw.headers() {
        let (name, value) = (header.field.as_str().as_str(), header.value.as_str());
        header_bytes += name.len() + value.len() + 4;
        oversized_header |= value.len() > MAX_HEADER_VALUE_BYTES;
        if inbound_id.is_none() && name.eq_ignore_ascii_case("x-request-id") {
            inbound_id = Some(value);
        }
        headers.push((name, value));
    }
    let generated;
    let request_id: &str = match inbound_id.filter(|id| is_acceptable_request_id(id)) {
        Some(id) => id,
        None => {
            generated = ids::uuid_v4();
            generated.as_str()
        }
    };
    let request = Request::new(method, raw.url(), headers, request_id).with_body(raw.has_body());
    // The server span, current on this thread until dropped; in
    // console mode one branch and nothing else.
    let trace = app.telemetry.start_request(&request, received_at);

    let mut close_connection = app.is_draining();
    let (route, response) = if declared_body > app.config.server.max_body_bytes {
        // The body is not read: the connection is closed after this answer instead.
        close_connection = true;
        let problem = Problem::plain(
            413,
            "Payload Too Large",
            format!(
                "request body of {declared_body} bytes exceeds MAX_REQUEST_BODY_SIZE ({} bytes)",
                app.config.server.max_body_bytes
            ),
        );
        (RouteLabel::Unmatched, problem.into_response(&request))
    } else if oversized_header || header_bytes > MAX_HEADER_BYTES {
        close_connection = true;
        let problem = Problem::plain(
            431,
            "Request Header Fields Too Large",
            "request headers exceed the size limit",
        );
        (RouteLabel::Unmatched, problem.into_response(&request))
    } else {
        match catch_unwind(AssertUnwindSafe(|| router::route(app, &request))) {
            Ok(routed) => routed,
            Err(_) => {
                app.metrics
                    .panics
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                log::error!(
                    "handler panicked on {} {} (request {request_id})",
                    method.as_str(),
                    request.path
                );
                let problem =
                    Problem::auth(ErrorCode::InternalError, "an unexpected error occurred");
                (RouteLabel::Unmatched, problem.into_response(&request))
            }
        }
    };
    let status = response.status;
    let trace_id = trace.map(|trace| {
        let id = log::log_enabled!(log::Level::Debug).then(|| trace.trace_id());
        trace.finish(route, status);
        id
    });
    let outgoing = to_tiny(cors_lines, response, request_id, close_connection);
    // Only when debug logging is on do we pay for copies that outlive the borrow of `raw`.
    let log_context = log::log_enabled!(log::Level::Debug)
        .then(|| (request.path.to_owned(), request_id.to_owned()));
    drop(request);
    // Recorded before the response leaves: a client that reads `/metrics` right after its
    // answer must find its request counted. Sending is one non-blocking `send` (the fork's
    // writer never waits on a client), so the interval ends where the bytes are handed over.
    let answered_at = Instant::now();
    let elapsed = answered_at.saturating_duration_since(taken_at);
    app.metrics.record_request(route, method, status, elapsed);
    app.metrics
        .record_queue_wait(route, taken_at.saturating_duration_since(received_at));
    // The side path: a non-blocking `try_send`; a full channel drops the sample and counts it.
    // What a client feels: from its request being read, queue wait included.
    app.samples.record(
        route,
        answered_at.saturating_duration_since(received_at),
        status,
    );
    if let Err(err) = raw.respond(outgoing) {
        log::debug!("client went away before the response was written: {err}");
    }
    if let Some((path, request_id)) = log_context {
        let trace = match trace_id.flatten() {
            Some(id) => format!(", trace {id}"),
            None => String::new(),
        };
        log::debug!(
            "{} {path} -> {status} in {:.3}ms (request {request_id}{trace})",
            method.as_str(),
            elapsed.as_secs_f64() * 1000.0
        );
    }
}

/// SPEC 2: an inbound id is echoed when it is 1-128 characters of `[A-Za-z0-9._-]`.
fn is_acceptable_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn to_tiny(
    cors_lines: &[u8],
    response: Response,
    request_id: &str,
    close: bool,
) -> tiny_http::Response<Cursor<Cow<'static, [u8]>>> {
    // One buffer for all our header lines: tiny_http's `Header` costs two allocations each.
    let mut lines = Vec::with_capacity(64 + cors_lines.len() + 48 * response.headers.len());
    for (name, value) in &response.headers {
        if is_header_value(value) {
            push_header_line(&mut lines, name, value);
        } else {
            log::warn!("dropping response header {name}: value is not printable ASCII");
        }
    }
    // Accepted inbound ids are `[A-Za-z0-9._-]`; generated ones are UUIDs.
    push_header_line(&mut lines, "X-Request-Id", request_id);
    lines.extend_from_slice(cors_lines);
    let body: Cow<'static, [u8]> = match response.body {
        Body::Empty => Cow::Borrowed(&[]),
        Body::Static(bytes) => Cow::Borrowed(bytes),
        Body::Bytes(bytes) => Cow::Owned(bytes),
    };
    let length = body.len();
    let outgoing = tiny_http::Response::new(
        StatusCode(response.status),
        Vec::new(),
        Cursor::new(body),
        Some(length),
        None,
    )
    .with_raw_headers(lines);
    if close {
        outgoing.with_connection_close()
    } else {
        outgoing
    }
}

/// The CORS lines of every response, rendered once per server (the config refuses values that
/// are not printable ASCII).
pub fn cors_header_lines(server: &ServerConfig) -> Box<[u8]> {
    let mut lines = Vec::new();
    push_header_line(
        &mut lines,
        "Access-Control-Allow-Origin",
        &server.cors_origin,
    );
    push_header_line(
        &mut lines,
        "Access-Control-Allow-Headers",
        &server.cors_allow_headers,
    );
    push_header_line(
        &mut lines,
        "Access-Control-Allow-Methods",
        &server.cors_allow_methods,
    );
    push_header_line(
        &mut lines,
        "Access-Control-Expose-Headers",
        "X-Request-Id, Retry-After, ETag",
    );
    lines.into_boxed_slice()
}

fn push_header_line(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Printable ASCII and tab: nothing that could end the header line or the header block.
fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_rules() {
        assert!(is_acceptable_request_id("abc-DEF_1.2"));
        assert!(!is_acceptable_request_id(""));
        assert!(!is_acceptable_request_id("has space"));
        assert!(!is_acceptable_request_id(&"x".repeat(129)));
    }

    #[test]
    fn header_values_cannot_break_the_header_block() {
        assert!(is_header_value("W/\"abc\", max-age=60\t1"));
        assert!(!is_header_value("a\r\nSet-Cookie: x=1"));
        assert!(!is_header_value("caf\u{e9}"));
    }
}
