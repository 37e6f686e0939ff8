//! The OTLP exporters' HTTP client: a blocking `ureq::Agent` behind `opentelemetry-http`'s
//! `HttpClient` trait, one per signal, counting every export in that signal's `SignalStats`.
//!
//! The trait is async, but its only callers are the SDK's batch span processor and periodic
//! metric reader, each on its own dedicated thread, which drive the export future with a
//! plain `block_on`. So the request runs to completion inside `send_bytes` and the future it
//! returns is already ready: no runtime, no reactor, no extra thread. Must never be called
//! from a request worker (nothing there exports).
//!
//! The configured headers are set here, over whatever the exporter added, so
//! `OTEL_EXPORTER_OTLP_HEADERS` as validated by `config` is what is sent.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use ureq::Agent;

use crate::config::Secret;
use crate::telemetry::stats::SignalStats;

/// Collectors answer with a small (often empty) `Export*ServiceResponse`.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

pub struct UreqClient {
    agent: Agent,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    stats: Arc<SignalStats>,
}

impl fmt::Debug for UreqClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UreqClient")
            .field("endpoint", &self.stats.endpoint)
            .finish_non_exhaustive()
    }
}

impl UreqClient {
    /// `timeout` bounds one export request from connecting to the last byte of the answer.
    pub fn new(timeout: Duration, headers: &[(String, Secret)], stats: Arc<SignalStats>) -> Self {
        let agent: Agent = Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            .user_agent(concat!("auth-service/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        // `config` only accepts token names and printable values, so none is dropped here.
        let headers = headers
            .iter()
            .filter_map(|(name, value)| {
                Some((
                    http::HeaderName::from_bytes(name.as_bytes()).ok()?,
                    http::HeaderValue::from_str(value.expose()).ok()?,
                ))
            })
            .collect();
        UreqClient {
            agent,
            headers,
            stats,
        }
    }

    fn send_blocking(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        lower_this_threads_priority();
        let (mut parts, body) = request.into_parts();
        for (name, value) in &self.headers {
            parts.headers.insert(name.clone(), value.clone());
        }
        let outcome = self
            .agent
            .run(Request::from_parts(parts, body.as_ref()))
            .map(|mut response| {
                let status = response.status();
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_RESPONSE_BYTES)
                    .read_to_vec()
                    .unwrap_or_default();
                (status, body)
            });
        match outcome {
            Ok((status, body)) => {
                if status.is_success() {
                    self.stats.record_success();
                } else {
                    self.stats
                        .record_failure(format!("collector answered status {}", status.as_u16()));
                }
                let mut response = Response::new(Bytes::from(body));
                *response.status_mut() = status;
                Ok(response)
            }
            Err(err) => {
                self.stats.record_failure(err.to_string());
                Err(Box::new(err))
            }
        }
    }
}

/// The SDK's export threads run at the lowest priority (nice 19), set on their first export:
/// they take idle CPU, and under saturation they fall behind and drop spans (counted) instead
/// of taking CPU from requests. Only the SDK's threads call `send_blocking`.
fn lower_this_threads_priority() {
    thread_local! {
        static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if !LOWERED.replace(true) {
        crate::process::lower_current_thread_priority();
    }
}

/// Written out instead of `#[async_trait]` (what the trait is declared with) so no macro
/// crate is needed; the body runs before the future is returned, see the module header.
impl HttpClient for UreqClient {
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(std::future::ready(self.send_blocking(request)))
    }
}
