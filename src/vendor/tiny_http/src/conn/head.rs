//! Patched for auth-service (src/vendor/README.md): reading and checking one request head,
//! strictly (RFC 9112): the request line, the header lines, and the message framing.
//!
//! Pure parsing over a `BufRead`: the deadlines live in the reader it is given, the answers
//! to a refused head in the connection loop. Anything ambiguous is refused, never guessed:
//! a guess is how one request is smuggled inside another.

use std::io::{self, BufRead};

use ascii::AsciiString;

use crate::common::{HTTPVersion, Header, HeaderField, Method};
use crate::limits::Limits;

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// A request head that passed every check.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) version: HTTPVersion,
    pub(crate) headers: Vec<Header>,
    pub(crate) framing: Framing,
    pub(crate) expects_continue: bool,
    /// The client ends the connection after this request (`Connection: close`, HTTP/1.0).
    pub(crate) close: bool,
}

/// Why no request could be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// The client closed, or the socket failed: nothing to answer.
    Gone,
    /// The deadline passed before the head was complete: 408.
    Timeout,
    /// Answer this status and close.
    Refuse(u16),
    /// Close without an answer (an HTTP/0.9 request has no status line to answer with).
    Drop,
}

impl From<io::Error> for HeadError {
    fn from(err: io::Error) -> HeadError {
        match err.kind() {
            io::ErrorKind::TimedOut => HeadError::Timeout,
            _ => HeadError::Gone,
        }
    }
}

/// Empty lines tolerated before a request line (RFC 9112 section 2.2).
const LEADING_EMPTY_LINES: usize = 4;

/// Reads one request head. `line` is the connection's reusable line buffer.
pub(crate) fn read<R: BufRead>(
    reader: &mut R,
    line: &mut Vec<u8>,
    limits: &Limits,
) -> Result<Head, HeadError> {
    let mut budget = limits.max_head_bytes;
    let mut request_line = read_line(reader, line, limits.max_line_bytes, &mut budget)?;
    let mut skipped = 0;
    while request_line.is_empty() && skipped < LEADING_EMPTY_LINES {
        skipped += 1;
        request_line = read_line(reader, line, limits.max_line_bytes, &mut budget)?;
    }
    let (method, path, version) = parse_request_line(request_line)?;
    let mut headers = Vec::with_capacity(8);
    loop {
        let text = read_line(reader, line, limits.max_line_bytes, &mut budget)?;
        if text.is_empty() {
            break;
        }
        if headers.len() == limits.max_headers {
            return Err(HeadError::Refuse(431));
        }
        headers.push(parse_header_line(text)?);
    }
    // A connection that once sent a long line does not keep its buffer.
    if line.capacity() > 8 * 1024 {
        *line = Vec::new();
    }
    let framing = framing(&version, &headers)?;
    Ok(Head {
        method,
        path,
        version,
        headers,
        framing: framing.framing,
        expects_continue: framing.expects_continue,
        close: framing.close,
    })
}

/// One line ended by CRLF, without it. A bare LF stays in the line, where the header checks
/// refuse it as a control character.
fn read_line<'a, R: BufRead>(
    reader: &mut R,
    line: &'a mut Vec<u8>,
    max_line: usize,
    budget: &mut usize,
) -> Result<&'a str, HeadError> {
    line.clear();
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Err(HeadError::Gone);
        }
        let (taken, complete) = match available.iter().position(|&byte| byte == b'\n') {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        line.extend_from_slice(&available[..taken]);
        reader.consume(taken);
        if line.len() > max_line || line.len() > *budget {
            return Err(HeadError::Refuse(431));
        }
        if complete && line.ends_with(b"\r\n") {
            *budget -= line.len();
            line.truncate(line.len() - 2);
            return std::str::from_utf8(line)
                .ok()
                .filter(|text| text.is_ascii())
                .ok_or(HeadError::Refuse(400));
        }
    }
}

/// `method SP request-target SP HTTP-version`, with single spaces and nothing else.
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), HeadError> {
    let mut parts = line.split(' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(HeadError::Refuse(400));
    };
    let Some(version) = parts.next() else {
        // `GET /`: an HTTP/0.9 simple request.
        return Err(HeadError::Drop);
    };
    if parts.next().is_some() || !is_token(method) || target.is_empty() {
        return Err(HeadError::Refuse(400));
    }
    if target.bytes().any(|b| b.is_ascii_control()) {
        return Err(HeadError::Refuse(400));
    }
    let version = parse_version(version)?;
    let method = method.parse().map_err(|_| HeadError::Refuse(400))?;
    Ok((method, target.to_owned(), version))
}

/// HTTP/1.0 and HTTP/1.1 are served; HTTP/0.9 is dropped; 2 and later (the HTTP/2 preface
/// included) get 505.
fn parse_version(text: &str) -> Result<HTTPVersion, HeadError> {
    let digits = text
        .strip_prefix("HTTP/")
        .and_then(|rest| rest.split_once('.'))
        .filter(|(major, minor)| {
            major.len() == 1
                && minor.len() == 1
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.bytes().all(|b| b.is_ascii_digit())
        });
    let Some((major, minor)) = digits else {
        return Err(HeadError::Refuse(400));
    };
    match (major.as_bytes()[0] - b'0', minor.as_bytes()[0] - b'0') {
        (1, minor @ (0 | 1)) => Ok(HTTPVersion(1, minor)),
        (0, _) => Err(HeadError::Drop),
        _ => Err(HeadError::Refuse(505)),
    }
}

/// `name: value`: no space before the colon, no line folding, no control characters.
fn parse_header_line(line: &str) -> Result<Header, HeadError> {
    let (name, value) = line.split_once(':').ok_or(HeadError::Refuse(400))?;
    if !is_token(name) {
        // Also a line starting with whitespace: obsolete line folding.
        return Err(HeadError::Refuse(400));
    }
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    if value.bytes().any(|b| b != b'\t' && b.is_ascii_control()) {
        return Err(HeadError::Refuse(400));
    }
    let field = HeaderField::from_bytes(name.as_bytes()).map_err(|_| HeadError::Refuse(400))?;
    let value = AsciiString::from_ascii(value.as_bytes()).map_err(|_| HeadError::Refuse(400))?;
    Ok(Header { field, value })
}

/// RFC 9110 `token`: the characters of a method or a header name.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

struct Message {
    framing: Framing,
    expects_continue: bool,
    close: bool,
}

/// RFC 9112 section 6.3 and section 3.2: one way to delimit the body, and one `Host`.
fn framing(version: &HTTPVersion, headers: &[Header]) -> Result<Message, HeadError> {
    let mut hosts = 0;
    let mut length: Option<u64> = None;
    let mut codings: Vec<&str> = Vec::new();
    let mut transfer_encoding = false;
    let mut expects_continue = false;
    let mut close_token = false;
    let mut keep_alive_token = false;
    for header in headers {
        let value = header.value.as_str();
        if header.field.equiv("Host") {
            hosts += 1;
        } else if header.field.equiv("Content-Length") {
            // A list of equal values is one length (RFC 9110 section 8.6); anything else
            // is a conflict.
            for part in value.split(',') {
                let parsed = parse_length(part.trim_matches(|c| c == ' ' || c == '\t'))?;
                if length.is_some_and(|known| known != parsed) {
                    return Err(HeadError::Refuse(400));
                }
                length = Some(parsed);
            }
        } else if header.field.equiv("Transfer-Encoding") {
            transfer_encoding = true;
            codings.extend(
                value
                    .split(',')
                    .map(|coding| coding.trim_matches(|c| c == ' ' || c == '\t'))
                    .filter(|coding| !coding.is_empty()),
            );
        } else if header.field.equiv("Expect") {
            if value.eq_ignore_ascii_case("100-continue") {
                expects_continue = true;
            } else {
                return Err(HeadError::Refuse(417));
            }
        } else if header.field.equiv("Connection") {
            for option in value.split(',') {
                let option = option.trim_matches(|c| c == ' ' || c == '\t');
                // An upgrade is never taken, so the connection cannot go on as HTTP/1.1.
                if option.eq_ignore_ascii_case("close") || option.eq_ignore_ascii_case("upgrade")
                {
                    close_token = true;
                } else if option.eq_ignore_ascii_case("keep-alive") {
                    keep_alive_token = true;
                }
            }
        }
    }
    let http11 = *version == HTTPVersion(1, 1);
    if hosts > 1 || (http11 && hosts == 0) {
        return Err(HeadError::Refuse(400));
    }
    let framing = if transfer_encoding {
        // Only `chunked`, alone: we decode no other coding, and a length beside it is how
        // requests are smuggled.
        let chunked_only = codings.len() == 1 && codings[0].eq_ignore_ascii_case("chunked");
        if length.is_some() || !http11 || !chunked_only {
            return Err(HeadError::Refuse(400));
        }
        Framing::Chunked
    } else {
        match length {
            Some(length) => Framing::Length(length),
            None => Framing::None,
        }
    };
    let close = close_token || (!http11 && !keep_alive_token);
    Ok(Message {
        framing,
        expects_continue,
        close,
    })
}

/// `1*DIGIT`, no sign, no spaces, no overflow.
fn parse_length(text: &str) -> Result<u64, HeadError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeadError::Refuse(400));
    }
    text.parse().map_err(|_| HeadError::Refuse(400))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Head, HeadError> {
        let mut line = Vec::new();
        read(&mut text.as_bytes(), &mut line, &Limits::default())
    }

    #[test]
    fn a_plain_request() {
        let head = head("GET /tokens?x=1 HTTP/1.1\r\nHost: a\r\nX-A:  b \r\n\r\n").unwrap();
        assert_eq!(head.path, "/tokens?x=1");
        assert_eq!(head.headers[1].value.as_str(), "b");
        assert_eq!(head.framing, Framing::None);
        assert!(!head.close);
    }

    #[test]
    fn framing_conflicts_are_refused() {
        let refused = |text: &str| head(text).map(|_| ()).unwrap_err();
        let cases = [
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\nX-B: c\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1 x\r\nHost: a\r\n\r\n",
            "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
        ];
        for case in cases {
            assert_eq!(refused(case), HeadError::Refuse(400), "{case:?}");
        }
        assert_eq!(
            refused("GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n"),
            HeadError::Refuse(417)
        );
    }

    #[test]
    fn versions() {
        assert_eq!(head("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap_err(), HeadError::Refuse(505));
        assert_eq!(head("GET / HTTP/2.0\r\n\r\n").unwrap_err(), HeadError::Refuse(505));
        assert_eq!(head("GET / HTTP/0.9\r\n\r\n").unwrap_err(), HeadError::Drop);
        assert_eq!(head("GET /\r\n\r\n").unwrap_err(), HeadError::Drop);
        assert_eq!(head("GET / HTTP/1.10\r\n\r\n").unwrap_err(), HeadError::Refuse(400));
        let old = head("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(old.close, "HTTP/1.0 closes unless it asks for keep-alive");
        let kept = head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        assert!(!kept.close);
    }

    #[test]
    fn lengths_and_chunked() {
        let same = head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n");
        assert_eq!(same.unwrap().framing, Framing::Length(7));
        let chunked = head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(chunked.unwrap().framing, Framing::Chunked);
    }

    #[test]
    fn limits_on_the_head() {
        let long = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "a".repeat(70_000));
        assert_eq!(head(&long).unwrap_err(), HeadError::Refuse(431));
        let many: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
        let text = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        assert_eq!(head(&text).unwrap_err(), HeadError::Refuse(431));
        assert_eq!(head("GET / HTTP/1.1\r\nHost: a\r\n").unwrap_err(), HeadError::Gone);
    }
}
