//! One inbound request, borrowed from the transport for the duration of the handler.
//!
//! Holds only slices of what the adapter already parsed: building a `Request` costs one small
//! `Vec` for the header list. No I/O and no allocation per header here.

use std::borrow::Cow;

/// The methods the router distinguishes; anything else is `Other` and ends in 405.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other,
}

impl Method {
    pub fn parse(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }
}

/// A request as handlers see it. Header names are matched case-insensitively.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: Method,
    /// The path without the query string, exactly as received (still percent-encoded).
    pub path: &'a str,
    /// The raw query string without the leading `?`; empty when absent.
    pub query: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    /// The id echoed in `X-Request-Id`, chosen by the server before routing.
    pub request_id: &'a str,
    /// The request carries a body, as the transport framed it (length over 0, or chunked).
    pub has_body: bool,
}

impl<'a> Request<'a> {
    /// Splits `url` at the first `?`.
    pub fn new(
        method: Method,
        url: &'a str,
        headers: Vec<(&'a str, &'a str)>,
        request_id: &'a str,
    ) -> Request<'a> {
        let (path, query) = match url.split_once('?') {
            Some((path, query)) => (path, query),
            None => (url, ""),
        };
        Request {
            method,
            path,
            query,
            headers,
            request_id,
            has_body: false,
        }
    }

    /// The same request, carrying a body (or not) as its framing says.
    pub fn with_body(mut self, has_body: bool) -> Request<'a> {
        self.has_body = has_body;
        self
    }

    /// The first value of a header, trimmed of surrounding spaces.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
    }

    /// The first value of a query parameter, percent-decoded (`+` is a space).
    pub fn query_param(&self, name: &str) -> Option<Cow<'a, str>> {
        self.query
            .split('&')
            .filter_map(|pair| match pair.split_once('=') {
                Some((key, value)) => Some((key, value)),
                None if !pair.is_empty() => Some((pair, "")),
                None => None,
            })
            .find(|(key, _)| *key == name)
            .map(|(_, value)| percent_decode(value))
    }
}

/// Decodes `%XX` escapes and `+`; invalid escapes are kept literally, invalid UTF-8 is replaced.
pub fn percent_decode(input: &str) -> Cow<'_, str> {
    if !input.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(input);
    }
    Cow::Owned(String::from_utf8_lossy(&percent_decode_bytes(input, true)).into_owned())
}

/// Percent-decodes `text` to raw bytes; `plus_is_space` for query strings and form bodies.
/// Malformed escapes (`%zz`, a trailing `%`) are kept literally, as nginx's unescape does.
pub fn percent_decode_bytes(text: &str, plus_is_space: bool) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                match (hex_value(bytes[index + 1]), hex_value(bytes[index + 2])) {
                    (Some(high), Some(low)) => {
                        out.push(high << 4 | low);
                        index += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            byte => out.push(byte),
        }
        index += 1;
    }
    out
}

/// The value of one hex digit (either case).
fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        let request = Request::new(
            Method::Get,
            "/x?a=1&b=hello%20w+x&c&d=%zz",
            Vec::new(),
            "id",
        );
        assert_eq!(request.path, "/x");
        assert_eq!(request.query_param("a").as_deref(), Some("1"));
        assert_eq!(request.query_param("b").as_deref(), Some("hello w x"));
        assert_eq!(request.query_param("c").as_deref(), Some(""));
        assert_eq!(request.query_param("d").as_deref(), Some("%zz"));
        assert_eq!(request.query_param("e"), None);
    }

    #[test]
    fn headers_match_case_insensitively() {
        let request = Request::new(Method::Get, "/", vec![("X-Consumer-ID", " abc ")], "id");
        assert_eq!(request.header("x-consumer-id"), Some("abc"));
        assert_eq!(request.header("x-consumer-username"), None);
    }
}
