//! RFC 9457 problem+json bodies and the AUTH_00N error catalogue of SPEC 2.1.
//!
//! The one place that maps an error to a status, title and `type`; handlers pick an
//! `ErrorCode` and a detail and never format problem bodies themselves.

use serde_json::{Map, Value};

use crate::http::request::Request;
use crate::http::response::{Body, PROBLEM_JSON, Response};
use crate::timefmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    MissingConsumerHeaders,
    ConsumerNotFound,
    JwtCreationFailed,
    KongUnavailable,
    CircuitBreakerOpen,
    RateLimitExceeded,
    InvalidRequestFormat,
    InternalError,
    AnonymousConsumer,
    TokenExpired,
    InvalidToken,
    MissingAuthorization,
}

impl ErrorCode {
    pub fn code(self) -> &'static str {
        match self {
            ErrorCode::MissingConsumerHeaders => "AUTH_001",
            ErrorCode::ConsumerNotFound => "AUTH_002",
            ErrorCode::JwtCreationFailed => "AUTH_003",
            ErrorCode::KongUnavailable => "AUTH_004",
            ErrorCode::CircuitBreakerOpen => "AUTH_005",
            ErrorCode::RateLimitExceeded => "AUTH_006",
            ErrorCode::InvalidRequestFormat => "AUTH_007",
            ErrorCode::InternalError => "AUTH_008",
            ErrorCode::AnonymousConsumer => "AUTH_009",
            ErrorCode::TokenExpired => "AUTH_010",
            ErrorCode::InvalidToken => "AUTH_011",
            ErrorCode::MissingAuthorization => "AUTH_012",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            ErrorCode::MissingConsumerHeaders
            | ErrorCode::ConsumerNotFound
            | ErrorCode::AnonymousConsumer
            | ErrorCode::TokenExpired => 401,
            ErrorCode::JwtCreationFailed | ErrorCode::InternalError => 500,
            ErrorCode::KongUnavailable | ErrorCode::CircuitBreakerOpen => 503,
            ErrorCode::RateLimitExceeded => 429,
            ErrorCode::InvalidRequestFormat
            | ErrorCode::InvalidToken
            | ErrorCode::MissingAuthorization => 400,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ErrorCode::MissingConsumerHeaders => "Missing Consumer Headers",
            ErrorCode::ConsumerNotFound => "Consumer Not Found",
            ErrorCode::JwtCreationFailed => "JWT Creation Failed",
            ErrorCode::KongUnavailable => "Kong API Unavailable",
            ErrorCode::CircuitBreakerOpen => "Circuit Breaker Open",
            ErrorCode::RateLimitExceeded => "Rate Limit Exceeded",
            ErrorCode::InvalidRequestFormat => "Invalid Request Format",
            ErrorCode::InternalError => "Internal Server Error",
            ErrorCode::AnonymousConsumer => "Anonymous Consumer",
            ErrorCode::TokenExpired => "Token Expired",
            ErrorCode::InvalidToken => "Invalid Token",
            ErrorCode::MissingAuthorization => "Missing Authorization",
        }
    }

    fn type_uri(self) -> String {
        format!(
            "urn:problem-type:auth-service/{}",
            self.code().to_ascii_lowercase().replace('_', "-")
        )
    }
}

/// A problem to report: an AUTH code with its detail, or a plain HTTP status (404, 405, 409, …).
#[derive(Debug)]
pub struct Problem {
    pub code: Option<ErrorCode>,
    pub status: u16,
    pub title: &'static str,
    pub detail: String,
    pub extensions: Option<Map<String, Value>>,
    pub retry_after_seconds: Option<u64>,
}

impl Problem {
    pub fn auth(code: ErrorCode, detail: impl Into<String>) -> Problem {
        Problem {
            code: Some(code),
            status: code.status(),
            title: code.title(),
            detail: detail.into(),
            extensions: None,
            retry_after_seconds: None,
        }
    }

    /// A problem without an AUTH code (`type: about:blank`), for 404, 405, 409, 413 and friends.
    pub fn plain(status: u16, title: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            code: None,
            status,
            title,
            detail: detail.into(),
            extensions: None,
            retry_after_seconds: None,
        }
    }

    pub fn with_extension(mut self, key: &str, value: impl Into<Value>) -> Problem {
        self.extensions
            .get_or_insert_with(Map::new)
            .insert(key.to_owned(), value.into());
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Problem {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// The problem+json response for `request`.
    pub fn into_response(self, request: &Request<'_>) -> Response {
        self.into_response_for(request.path, request.request_id)
    }

    /// 404 in the old service's shape: the detail names the path, and `extensions.requestId`
    /// repeats the top-level `requestId`.
    pub fn not_found(request: &Request<'_>) -> Problem {
        let detail = format!("The requested resource '{}' was not found", request.path);
        Problem::plain(404, "Not Found", detail).with_extension("requestId", request.request_id)
    }

    /// 405 in the old service's shape: the detail ends with the `Allow` list, which
    /// `extensions.allowedMethods` repeats as an array. The response carries `Allow` too.
    pub fn method_not_allowed(request: &Request<'_>, allow: &str) -> Response {
        let detail = format!(
            "The requested method is not allowed for this endpoint. Allowed methods: {allow}"
        );
        let methods: Vec<&str> = allow.split(", ").collect();
        Problem::plain(405, "Method Not Allowed", detail)
            .with_extension("allowedMethods", methods)
            .into_response(request)
            .with_header("Allow", allow.to_owned())
    }

    pub fn into_response_for(self, instance: &str, request_id: &str) -> Response {
        let mut body = Map::new();
        let type_uri = match self.code {
            Some(code) => code.type_uri(),
            None => "about:blank".to_owned(),
        };
        body.insert("type".into(), type_uri.into());
        body.insert("title".into(), self.title.into());
        body.insert("status".into(), self.status.into());
        body.insert("detail".into(), self.detail.into());
        body.insert("instance".into(), instance.into());
        if let Some(code) = self.code {
            // The code on the request's span, if it is traced.
            crate::telemetry::note(crate::telemetry::Note::ErrorCode(code.code()));
            body.insert("code".into(), code.code().into());
        }
        body.insert("requestId".into(), request_id.into());
        body.insert("timestamp".into(), timefmt::now_iso8601().into());
        if let Some(extensions) = self.extensions {
            body.insert("extensions".into(), Value::Object(extensions));
        }
        let bytes = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
        let mut response = Response::new(self.status)
            .with_header("Content-Type", PROBLEM_JSON)
            .with_body(Body::Bytes(bytes));
        if let Some(seconds) = self.retry_after_seconds {
            response = response.with_header("Retry-After", seconds.to_string());
        }
        response
    }
}
