//! The Kong Admin API client: one keep-alive `ureq::Agent` for the process, the URL and header
//! style of each `KONG_MODE`, per-attempt timeouts, one retry on connection errors, and the
//! mapping of Kong's answers to `Fetched` or a `KongError`.
//!
//! Owns every outbound HTTP call to Kong. It must not cache, decide about the breaker, or log
//! the admin token or credential secrets (the `Debug` of `Credential` redacts the secret).

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use ureq::Agent;

use crate::config::{KongConfig, KongMode};
use crate::ids;
use crate::kong::types::{JwtCredential, JwtList};
use crate::metrics::{KongOperation, KongResult, Metrics};
use crate::telemetry::KongSpan;

/// Bodies we accept from Kong; a credential list is a few hundred bytes.
const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// A usable HS256 credential of one consumer.
#[derive(Clone)]
pub struct Credential {
    pub key: String,
    pub secret: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What Kong said about a consumer, when it answered sensibly.
#[derive(Debug)]
pub enum Fetched {
    Credential(Credential),
    /// The consumer does not exist, or has no usable credential; the reason is for logs and
    /// the problem detail.
    NotFound(&'static str),
}

/// Kong could not answer: these count against the breaker and end in stale-or-503.
#[derive(Debug)]
pub enum KongError {
    Timeout,
    Connect(String),
    /// Kong rejected our admin token (401/403).
    Unauthorized(u16),
    Status(u16),
    Body(String),
}

impl fmt::Display for KongError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KongError::Timeout => f.write_str("kong timed out"),
            KongError::Connect(cause) => write!(f, "cannot reach kong: {cause}"),
            KongError::Unauthorized(status) => {
                write!(f, "kong rejected the admin token (status {status})")
            }
            KongError::Status(status) => write!(f, "kong answered status {status}"),
            KongError::Body(cause) => write!(f, "kong sent an unreadable body: {cause}"),
        }
    }
}

impl std::error::Error for KongError {}

impl KongError {
    /// Kong's status, when it answered at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            KongError::Unauthorized(status) | KongError::Status(status) => Some(*status),
            _ => None,
        }
    }
}

pub struct KongClient {
    agent: Agent,
    config: KongConfig,
    /// `Kong-Admin-Token` or `Authorization`, by mode.
    auth_header: Option<(&'static str, String)>,
}

impl KongClient {
    pub fn new(config: &KongConfig, pool_size: usize) -> KongClient {
        let agent: Agent = Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .max_idle_connections(pool_size)
            .max_idle_connections_per_host(pool_size)
            .user_agent(concat!("auth-service/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let auth_header = config.admin_token.as_ref().map(|token| match config.mode {
            KongMode::ApiGateway => ("Kong-Admin-Token", token.0.clone()),
            KongMode::Konnect => ("Authorization", format!("Bearer {}", token.0)),
        });
        KongClient {
            agent,
            config: config.clone(),
            auth_header,
        }
    }

    pub fn admin_url(&self) -> &str {
        &self.config.admin_url
    }

    pub fn mode(&self) -> KongMode {
        self.config.mode
    }

    fn credentials_url(&self, consumer_id: &str) -> String {
        let prefix = match self.config.mode {
            KongMode::ApiGateway => "",
            KongMode::Konnect => "/core-entities",
        };
        let mut url =
            String::with_capacity(self.config.admin_url.len() + consumer_id.len() * 3 + 32);
        url.push_str(&self.config.admin_url);
        url.push_str(prefix);
        url.push_str("/consumers/");
        percent_encode_segment(consumer_id, &mut url);
        url.push_str("/jwt");
        url
    }

    fn health_url(&self) -> String {
        match self.config.mode {
            KongMode::ApiGateway => format!("{}/status", self.config.admin_url),
            KongMode::Konnect => self.config.admin_url.clone(),
        }
    }

    /// Looks up the consumer's HS256 credential, creating one when it has none and
    /// auto-provisioning is on.
    pub fn fetch_credential(
        &self,
        consumer_id: &str,
        metrics: &Metrics,
    ) -> Result<Fetched, KongError> {
        let url = self.credentials_url(consumer_id);
        let started = Instant::now();
        // A client span and `traceparent` when the request is traced.
        let span = KongSpan::start(KongOperation::GetCredentials);
        let outcome = self.get_json::<JwtList>(&url, &span);
        match &outcome {
            Ok(found) => span.end(Some(if found.is_some() { 200 } else { 404 }), None),
            Err(err) => span.end(err.status(), Some(err)),
        }
        let fetched = match outcome {
            Ok(Some(list)) => match choose_credential(list.data, consumer_id) {
                Some(credential) => Ok(Fetched::Credential(credential)),
                None if self.config.auto_provision => {
                    metrics.record_kong(
                        KongOperation::GetCredentials,
                        KongResult::Success,
                        started.elapsed(),
                    );
                    return self.provision(&url, metrics);
                }
                None => Ok(Fetched::NotFound("consumer has no usable HS256 credential")),
            },
            Ok(None) => Ok(Fetched::NotFound("consumer does not exist in kong")),
            Err(err) => Err(err),
        };
        let result = match &fetched {
            Ok(Fetched::Credential(_)) => KongResult::Success,
            Ok(Fetched::NotFound(_)) => KongResult::NotFound,
            Err(_) => KongResult::Failure,
        };
        metrics.record_kong(KongOperation::GetCredentials, result, started.elapsed());
        fetched
    }

    /// `POST .../consumers/{id}/jwt` with a fresh random key and secret; a 409 (key taken)
    /// retries with a new key.
    fn provision(&self, url: &str, metrics: &Metrics) -> Result<Fetched, KongError> {
        let attempts = self.config.secret_creation_max_retries + 1;
        for _ in 0..attempts {
            let credential = Credential {
                key: ids::alphanumeric(32),
                secret: ids::alphanumeric(32),
            };
            let body = serde_json::json!({
                "key": credential.key,
                "secret": credential.secret,
                "algorithm": "HS256",
            })
            .to_string();
            let started = Instant::now();
            let span = KongSpan::start(KongOperation::CreateCredential);
            let status = self.with_retry(|| {
                let mut request = self.agent.post(url).content_type("application/json");
                if let Some((name, value)) = &self.auth_header {
                    request = request.header(*name, value);
                }
                for (name, value) in span.headers() {
                    request = request.header(name, value);
                }
                request
                    .send(body.as_bytes())
                    .map(|response| response.status().as_u16())
            });
            match &status {
                Ok(code) => span.end(Some(*code), None),
                Err(err) => span.end(None, Some(err)),
            }
            let (result, outcome) = match status {
                Ok(200 | 201) => {
                    log::info!(
                        "provisioned a jwt credential (key {}) for a kong consumer",
                        credential.key
                    );
                    (
                        KongResult::Success,
                        Some(Ok(Fetched::Credential(credential))),
                    )
                }
                Ok(409) => (KongResult::Conflict, None),
                Ok(404) => (
                    KongResult::NotFound,
                    Some(Ok(Fetched::NotFound("consumer does not exist in kong"))),
                ),
                Ok(405) => (
                    KongResult::NotFound,
                    Some(Ok(Fetched::NotFound("credential provisioning unsupported"))),
                ),
                Ok(status) => (KongResult::Failure, Some(Err(status_error(status)))),
                Err(err) => (KongResult::Failure, Some(Err(err))),
            };
            metrics.record_kong(KongOperation::CreateCredential, result, started.elapsed());
            if let Some(outcome) = outcome {
                return outcome;
            }
        }
        Err(KongError::Status(409))
    }

    /// `GET /status` (or the Konnect base URL): is Kong answering with our token?
    pub fn health(&self, metrics: &Metrics) -> Result<Duration, KongError> {
        let started = Instant::now();
        let url = self.health_url();
        let outcome = self.with_retry(|| {
            let mut request = self.agent.get(&url);
            if let Some((name, value)) = &self.auth_header {
                request = request.header(*name, value);
            }
            request.call().map(|response| response.status().as_u16())
        });
        let elapsed = started.elapsed();
        let outcome = match outcome {
            Ok(status) if (200..300).contains(&status) => Ok(elapsed),
            Ok(status) => Err(status_error(status)),
            Err(err) => Err(err),
        };
        let result = if outcome.is_ok() {
            KongResult::Success
        } else {
            KongResult::Failure
        };
        metrics.record_kong(KongOperation::HealthCheck, result, elapsed);
        outcome
    }

    /// GETs `url`: `Ok(None)` on 404, the parsed body on 2xx, an error otherwise.
    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        span: &KongSpan,
    ) -> Result<Option<T>, KongError> {
        let response = self.with_retry(|| {
            let mut request = self.agent.get(url);
            if let Some((name, value)) = &self.auth_header {
                request = request.header(*name, value);
            }
            for (name, value) in span.headers() {
                request = request.header(name, value);
            }
            let mut response = request.call()?;
            let status = response.status().as_u16();
            let body = if (200..300).contains(&status) {
                response
                    .body_mut()
                    .with_config()
                    .limit(MAX_BODY_BYTES)
                    .read_to_vec()?
            } else {
                Vec::new()
            };
            Ok((status, body))
        })?;
        match response {
            (404, _) => Ok(None),
            (status, body) if (200..300).contains(&status) => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|err| KongError::Body(err.to_string())),
            (status, _) => Err(status_error(status)),
        }
    }

    /// Runs `call` and, when it failed to connect, once more.
    fn with_retry<T>(
        &self,
        mut call: impl FnMut() -> Result<T, ureq::Error>,
    ) -> Result<T, KongError> {
        match call() {
            Ok(value) => Ok(value),
            Err(err) if is_connection_error(&err) => {
                log::debug!("kong connection failed, retrying once: {err}");
                call().map_err(map_transport_error)
            }
            Err(err) => Err(map_transport_error(err)),
        }
    }
}

fn status_error(status: u16) -> KongError {
    match status {
        401 | 403 => KongError::Unauthorized(status),
        status => KongError::Status(status),
    }
}

fn is_connection_error(err: &ureq::Error) -> bool {
    match err {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        ureq::Error::Io(io_err) => matches!(
            io_err.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::NotConnected
        ),
        _ => false,
    }
}

fn map_transport_error(err: ureq::Error) -> KongError {
    match err {
        ureq::Error::Timeout(_) => KongError::Timeout,
        ureq::Error::Io(io_err) if io_err.kind() == io::ErrorKind::TimedOut => KongError::Timeout,
        ureq::Error::BodyExceedsLimit(_) | ureq::Error::Protocol(_) => {
            KongError::Body(err.to_string())
        }
        other => KongError::Connect(other.to_string()),
    }
}

/// The first HS256 (or algorithm-less) credential with a key and a secret that belongs to the
/// consumer we asked for. Kong lists credentials in id order, so "first" is deterministic.
///
/// Ownership can only be checked when we asked by id: Kong resolves a segment that is not
/// UUID-shaped as a username, and the credential then names the consumer's UUID instead.
fn choose_credential(list: Vec<JwtCredential>, consumer_id: &str) -> Option<Credential> {
    let asked_by_id = ids::looks_like_uuid(consumer_id);
    for entry in list {
        if !matches!(entry.algorithm.as_deref(), None | Some("HS256")) {
            continue;
        }
        let owner = entry
            .consumer
            .as_ref()
            .and_then(|consumer| consumer.id.as_deref());
        if asked_by_id && owner.is_some_and(|owner| !owner.eq_ignore_ascii_case(consumer_id)) {
            log::warn!("kong returned a credential of another consumer; ignoring it");
            continue;
        }
        if let (Some(key), Some(secret)) = (entry.key, entry.secret)
            && !key.is_empty()
            && !secret.is_empty()
        {
            return Some(Credential { key, secret });
        }
    }
    None
}

/// Appends `segment` percent-encoded so it stays one path segment: everything but RFC 3986
/// unreserved characters is escaped, including `/`, `?`, `#` and `%`.
pub fn percent_encode_segment(segment: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kong::types::ConsumerRef;

    #[test]
    fn segments_are_escaped() {
        let cases = [
            ("abc-123", "abc-123"),
            ("a/b?c#d", "a%2Fb%3Fc%23d"),
            ("100% sure", "100%25%20sure"),
            ("ü", "%C3%BC"),
            ("..", ".."),
        ];
        for (input, expected) in cases {
            let mut out = String::new();
            percent_encode_segment(input, &mut out);
            assert_eq!(out, expected, "{input}");
        }
    }

    fn entry(owner: Option<&str>, algorithm: Option<&str>, key: &str) -> JwtCredential {
        JwtCredential {
            consumer: Some(ConsumerRef {
                id: owner.map(str::to_owned),
            }),
            key: Some(key.to_owned()),
            secret: Some("s".to_owned()),
            algorithm: algorithm.map(str::to_owned),
        }
    }

    const ID: &str = "00000000-0000-4000-8000-000000000001";
    const OTHER: &str = "00000000-0000-4000-8000-000000000002";

    #[test]
    fn credential_choice() {
        let chosen = choose_credential(
            vec![
                entry(Some(ID), Some("RS256"), "rsa"),
                entry(Some(OTHER), Some("HS256"), "foreign"),
                entry(Some(&ID.to_uppercase()), None, "first-hs"),
                entry(Some(ID), Some("HS256"), "second-hs"),
            ],
            ID,
        );
        assert_eq!(chosen.map(|c| c.key).as_deref(), Some("first-hs"));
        assert!(choose_credential(vec![entry(Some(ID), Some("HS512"), "k")], ID).is_none());
        let by_username = choose_credential(vec![entry(Some(OTHER), Some("HS256"), "k")], "bob");
        assert_eq!(
            by_username.map(|c| c.key).as_deref(),
            Some("k"),
            "asked by username"
        );
    }
}
