//! Spans of the request path: the server span of one request, the notes the Kong store adds to
//! it (cache outcome, breaker, error code), and a client span with `traceparent` for each Kong
//! Admin API call made for that request.
//!
//! The adapter starts a `RequestTrace` (only when exporting) and keeps it for the duration of
//! the request; while it lives, this worker thread's `CURRENT` holds the span's context. That
//! thread-local is how `kong::client` and `kong::CredentialStore` find the parent without a
//! context parameter threaded through every handler and store call: a request is served on
//! one thread from start to end, Kong calls of a request happen on that thread (single-flight
//! followers wait but call nothing), and the guard clears `CURRENT` when the request ends, so
//! nothing leaks to the next request. Background Kong calls (refresh-ahead, the health probe)
//! run on their own threads, find no context and get no span. Handlers never see a span, and
//! nothing here knows tiny_http.
//!
//! In console mode no `RequestTrace` exists: `note` and `KongSpan::start` cost one
//! thread-local read that finds `None`, and allocate nothing.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, Span as SdkSpan};

use crate::http::Request;
use crate::metrics::{KongOperation, RouteLabel};

thread_local! {
    /// The request this thread is serving, while a `RequestTrace` lives.
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// The server span itself, not a `Context` around it: the SDK's concrete span takes its
/// attributes directly, where a context's span is boxed behind a mutex, and a request sets
/// several attributes after its span started (route, status, cache outcome).
struct Current {
    span: SdkSpan,
    tracing: Arc<Tracing>,
}

/// The tracer and the W3C propagator, shared by every worker.
pub struct Tracing {
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
}

impl Tracing {
    pub fn new(tracer: SdkTracer) -> Tracing {
        Tracing {
            tracer,
            propagator: TraceContextPropagator::new(),
        }
    }

    /// Starts the server span of `request`, continuing its `traceparent`/`tracestate`, at the
    /// moment its first byte was read. The name becomes the route template in `finish`.
    pub fn start_request(
        self: &Arc<Self>,
        request: &Request<'_>,
        received_at: Instant,
    ) -> RequestTrace {
        let parent = self.propagator.extract(&Headers(&request.headers));
        let started = SystemTime::now()
            .checked_sub(received_at.elapsed())
            .unwrap_or_else(SystemTime::now);
        let mut attributes = Vec::with_capacity(7);
        attributes.extend([
            KeyValue::new("http.request.method", request.method.as_str()),
            KeyValue::new("url.path", request.path.to_owned()),
            KeyValue::new("http.request.id", request.request_id.to_owned()),
        ]);
        // The consumer id is who asked; tokens and secrets are never attributes.
        if let Some(consumer) = request.header("x-consumer-id") {
            attributes.push(KeyValue::new("kong.consumer.id", consumer.to_owned()));
        }
        let builder = self
            .tracer
            .span_builder(request.method.as_str())
            .with_kind(SpanKind::Server)
            .with_start_time(started)
            .with_attributes(attributes);
        let span = self.tracer.build_with_context(builder, &parent);
        CURRENT.with(|current| {
            *current.borrow_mut() = Some(Current {
                span,
                tracing: Arc::clone(self),
            })
        });
        RequestTrace {
            _not_send: PhantomData,
        }
    }
}

/// The server span of the request being served, which lives in this thread's `CURRENT`; ends
/// it and clears `CURRENT` when dropped. Not `Send`: it must end on the thread it began on.
pub struct RequestTrace {
    _not_send: PhantomData<*const ()>,
}

impl RequestTrace {
    /// The trace id in hex, for the request's log line.
    pub fn trace_id(&self) -> String {
        CURRENT.with(|current| {
            current
                .borrow()
                .as_ref()
                .map(|current| current.span.span_context().trace_id().to_string())
                .unwrap_or_default()
        })
    }

    pub fn finish(self, route: RouteLabel, status: u16) {
        with_recording_span(|span| {
            if route != RouteLabel::Unmatched {
                span.update_name(route.as_str());
                span.set_attribute(KeyValue::new("http.route", route.as_str()));
            }
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            // OTel HTTP conventions: a server span is an error only for 5xx.
            if status >= 500 {
                span.set_attribute(KeyValue::new("error.type", status.to_string()));
                span.set_status(Status::error(format!("status {status}")));
            }
        });
    }
}

impl Drop for RequestTrace {
    fn drop(&mut self) {
        let current = CURRENT.with(|current| current.borrow_mut().take());
        if let Some(mut current) = current {
            current.span.end();
        }
    }
}

/// What the Kong store and the problem builder tell the request's span.
#[derive(Clone, Copy, Debug)]
pub enum Note {
    CacheHit,
    CacheMiss,
    /// A stale credential was served (Kong failed, the breaker was open, or a refresh was in
    /// flight).
    CacheStale,
    /// The breaker refused the Kong call.
    BreakerOpen,
    /// The AUTH code of the problem answered.
    ErrorCode(&'static str),
}

/// Runs `f` on this thread's request span when there is one and it records (sampled).
fn with_recording_span(f: impl FnOnce(&mut SdkSpan)) {
    CURRENT.with(|current| {
        if let Some(Current { span, .. }) = current.borrow_mut().as_mut()
            && span.is_recording()
        {
            f(span);
        }
    });
}

/// Adds `note` to the current request's span; nothing when there is none (console mode).
pub fn note(note: Note) {
    with_recording_span(|span| match note {
        Note::CacheHit => span.set_attribute(KeyValue::new("kong.cache.result", "hit")),
        Note::CacheMiss => span.set_attribute(KeyValue::new("kong.cache.result", "miss")),
        // Served stale after a miss: the later note wins.
        Note::CacheStale => span.set_attribute(KeyValue::new("kong.cache.result", "stale")),
        Note::BreakerOpen => {
            span.set_attribute(KeyValue::new("kong.circuit_breaker.state", "open"));
            span.add_event("kong.circuit_breaker.rejected", Vec::new());
        }
        Note::ErrorCode(code) => span.set_attribute(KeyValue::new("auth.error.code", code)),
    });
}

/// A client span around one Kong Admin API call made for a traced request.
pub struct KongSpan(Option<Box<KongCall>>);

struct KongCall {
    cx: Context,
    headers: Propagation,
}

impl KongSpan {
    /// A child of the current request's span, or nothing when no request is traced.
    pub fn start(operation: KongOperation) -> KongSpan {
        CURRENT.with(|current| {
            let current = current.borrow();
            let Some(current) = current.as_ref() else {
                return KongSpan(None);
            };
            let (name, method) = match operation {
                KongOperation::GetCredentials => ("GET /consumers/{consumer}/jwt", "GET"),
                KongOperation::CreateCredential => ("POST /consumers/{consumer}/jwt", "POST"),
                KongOperation::HealthCheck => ("GET /status", "GET"),
            };
            let tracer = &current.tracing.tracer;
            let parent =
                Context::new().with_remote_span_context(current.span.span_context().clone());
            // The URL is not an attribute: the admin URL may carry credentials.
            let span = tracer
                .span_builder(name)
                .with_kind(SpanKind::Client)
                .with_attributes([
                    KeyValue::new("http.request.method", method),
                    KeyValue::new("url.template", &name[method.len() + 1..]),
                    KeyValue::new("kong.operation", operation.as_str()),
                ])
                .start_with_context(tracer, &parent);
            let cx = parent.with_span(span);
            let mut headers = Propagation::default();
            current.tracing.propagator.inject_context(&cx, &mut headers);
            KongSpan(Some(Box::new(KongCall { cx, headers })))
        })
    }

    /// `traceparent` (and the caller's `tracestate`, if any) to send to Kong.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().flat_map(|call| {
            let headers = &call.headers;
            [
                Some(("traceparent", headers.traceparent.as_str())),
                headers
                    .tracestate
                    .as_deref()
                    .map(|value| ("tracestate", value)),
            ]
            .into_iter()
            .flatten()
        })
    }

    /// Ends the span with Kong's status, or the error that kept Kong from answering.
    pub fn end(self, status: Option<u16>, error: Option<&dyn fmt::Display>) {
        let Some(call) = self.0 else {
            return;
        };
        let span = call.cx.span();
        if let Some(status) = status {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        if let Some(error) = error {
            span.set_attribute(KeyValue::new(
                "error.type",
                status.map_or_else(|| "kong_unavailable".to_owned(), |s| s.to_string()),
            ));
            span.set_status(Status::error(error.to_string()));
        }
        span.end();
    }
}

/// Our request's header list as the propagator reads it (names are case-insensitive).
struct Headers<'a>(&'a [(&'a str, &'a str)]);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| *value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| *name).collect()
    }
}

/// The W3C headers the propagator writes for a Kong call.
#[derive(Default)]
struct Propagation {
    traceparent: String,
    tracestate: Option<String>,
}

impl Injector for Propagation {
    fn set(&mut self, key: &str, value: String) {
        match key {
            "traceparent" => self.traceparent = value,
            "tracestate" if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}
