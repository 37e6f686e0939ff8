//! One outbound response as handlers build it: status, headers and body.
//!
//! Header names are `&'static str` and values are `Cow`, so fixed headers cost no allocation.
//! The server adds `X-Request-Id` and CORS headers to every response; handlers must not.

use std::borrow::Cow;

#[derive(Debug)]
pub enum Body {
    Empty,
    Static(&'static [u8]),
    Bytes(Vec<u8>),
}

impl Body {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Body::Empty => &[],
            Body::Static(bytes) => bytes,
            Body::Bytes(bytes) => bytes,
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    pub body: Body,
}

pub const JSON: &str = "application/json";
pub const PROBLEM_JSON: &str = "application/problem+json";

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// A JSON body that the caller already serialized.
    pub fn json_bytes(status: u16, body: Vec<u8>) -> Response {
        Response::new(status)
            .with_header("Content-Type", JSON)
            .with_body(Body::Bytes(body))
    }

    /// Serializes `value` with serde_json; a value that cannot be serialized is a bug, so the
    /// response degrades to a bare 500 rather than panicking the worker.
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response::json_bytes(status, body),
            Err(_) => Response::new(500),
        }
    }

    pub fn text(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response::new(status)
            .with_header("Content-Type", content_type)
            .with_body(Body::Bytes(body.into()))
    }

    pub fn with_header(
        mut self,
        name: &'static str,
        value: impl Into<Cow<'static, str>>,
    ) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_body(mut self, body: Body) -> Response {
        self.body = body;
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_ref())
    }
}
