//! A minimal keep-alive HTTP/1.1 client over `std::net::TcpStream`, built for load generation.
//!
//! Owns one connection and one reusable read buffer per `Conn`. Requests are pre-rendered
//! bytes (see `render_get`), so the hot path allocates nothing: write the bytes, read into the
//! buffer, parse the status line and the framing headers, and hand back a borrowed body.
//! Reconnects after `Connection: close`, a transport error or an unparsable reply. Plain
//! `http://` only. Must not know about endpoints, consumers or statistics.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::ops::Range;
use std::time::Duration;

/// How long one request may wait for its reply before it counts as a transport error.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Large enough for every reply of the service except profile downloads, which grow it.
const INITIAL_BUFFER: usize = 16 * 1024;
/// A reply larger than this is refused rather than exhausting memory (profile artifacts are
/// a few MiB).
const MAX_REPLY: usize = 512 * 1024 * 1024;
const MAX_HEAD: usize = 64 * 1024;

/// Where requests go: the resolved address plus what the `Host` header and paths need.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    /// `host:port` as written in the URL, for the `Host` header.
    pub authority: String,
    /// Path prefix from the URL without a trailing slash (usually empty).
    pub base_path: String,
}

impl Target {
    /// Parses and resolves `http://host[:port][/prefix]`.
    pub fn parse(url: &str) -> Result<Target, ClientError> {
        let bad = |why: &str| ClientError::Url(format!("{url}: {why}"));
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        if authority.is_empty() || path.contains(['?', '#']) {
            return Err(bad("expected http://HOST[:PORT][/PATH]"));
        }
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'))
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|err| ClientError::Url(format!("{url}: cannot resolve: {err}")))?
            .next()
            .ok_or_else(|| bad("host resolves to no address"))?;
        Ok(Target {
            addr,
            authority: authority.to_owned(),
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// `GET` request bytes for `path` (relative to the base path) with extra headers.
    pub fn render_get(&self, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
        self.render("GET", path, headers)
    }

    /// Request bytes with an empty body (every route of the service takes its input from the
    /// path, query and headers).
    pub fn render(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut out = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: auth-service-load\r\nAccept: */*\r\n",
            self.base_path, self.authority
        );
        for (name, value) in headers {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
            out.push_str("\r\n");
        }
        if method != "GET" {
            out.push_str("Content-Length: 0\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// Why a request got no HTTP reply.
#[derive(Debug)]
pub enum ClientError {
    Url(String),
    Connect(io::Error),
    Io(io::Error),
    /// The peer closed the connection before a complete reply.
    Closed,
    Malformed(&'static str),
    TooLarge,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Url(why) => write!(f, "bad url {why}"),
            ClientError::Connect(_) => f.write_str("cannot connect"),
            ClientError::Io(_) => f.write_str("connection failed"),
            ClientError::Closed => f.write_str("connection closed before a complete reply"),
            ClientError::Malformed(why) => write!(f, "malformed reply: {why}"),
            ClientError::TooLarge => f.write_str("reply too large"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect(err) | ClientError::Io(err) => Some(err),
            _ => None,
        }
    }
}

/// How the body of a reply is located in the read buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Bytes `range` of the buffer.
    Range(Range<usize>),
    /// Chunked: decoded into the connection's separate body buffer.
    Decoded,
}

/// A complete reply's framing, as `parse_response` found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Framing {
    pub status: u16,
    pub body: Body,
    /// Bytes of the buffer the reply used (head, body, chunk trailers).
    pub consumed: usize,
    /// The server will close (or HTTP/1.0 without keep-alive): reconnect for the next request.
    pub close: bool,
}

/// Parses one HTTP/1.x reply at the start of `buf`. `Ok(None)` means more bytes are needed;
/// `eof` says the peer has closed, which completes a body delimited by the connection end.
/// A chunked body is decoded into `decoded` (cleared first).
pub fn parse_response(
    buf: &[u8],
    eof: bool,
    decoded: &mut Vec<u8>,
) -> Result<Option<Framing>, ClientError> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(ClientError::Malformed("header section too long"));
        }
        return Ok(None);
    };
    let head = &buf[..head_end];
    let mut lines = head.split(|&b| b == b'\n').map(trim_cr);
    let status_line = lines.next().unwrap_or_default();
    // "HTTP/1.1 200 OK": version, status, optional reason.
    let mut parts = status_line.splitn(3, |&b| b == b' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with(b"HTTP/1.") {
        return Err(ClientError::Malformed("no HTTP/1.x status line"));
    }
    let status = parts
        .next()
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|code| (100..1000).contains(code))
        .ok_or(ClientError::Malformed("bad status code"))?;
    let mut close = version == b"HTTP/1.0";
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            let parsed = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or(ClientError::Malformed("bad content-length"))?;
            length = Some(parsed);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = contains_token(value, b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            if contains_token(value, b"close") {
                close = true;
            } else if contains_token(value, b"keep-alive") {
                close = false;
            }
        }
    }
    let start = head_end + 4;
    // 1xx, 204 and 304 never carry a body.
    if status < 200 || status == 204 || status == 304 {
        return Ok(Some(Framing {
            status,
            body: Body::Range(start..start),
            consumed: start,
            close,
        }));
    }
    if chunked {
        return Ok(parse_chunked(buf, start, decoded)?.map(|consumed| Framing {
            status,
            body: Body::Decoded,
            consumed,
            close,
        }));
    }
    match length {
        Some(length) => {
            if length > MAX_REPLY {
                return Err(ClientError::TooLarge);
            }
            Ok((buf.len() >= start + length).then(|| Framing {
                status,
                body: Body::Range(start..start + length),
                consumed: start + length,
                close,
            }))
        }
        // No framing: the body runs to the end of the connection.
        None => Ok(eof.then_some(Framing {
            status,
            body: Body::Range(start..buf.len()),
            consumed: buf.len(),
            close: true,
        })),
    }
}

/// Walks chunks from `start`; returns the end of the trailer section once all of it is there.
fn parse_chunked(
    buf: &[u8],
    start: usize,
    decoded: &mut Vec<u8>,
) -> Result<Option<usize>, ClientError> {
    decoded.clear();
    let mut at = start;
    loop {
        let Some(line_end) = find(&buf[at..], b"\r\n").map(|i| at + i) else {
            return Ok(None);
        };
        let size_text = &buf[at..line_end];
        // Chunk extensions (";name=value") are allowed and ignored.
        let size_text = trim(size_text.split(|&b| b == b';').next().unwrap_or_default());
        let size = std::str::from_utf8(size_text)
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or(ClientError::Malformed("bad chunk size"))?;
        if size > MAX_REPLY || decoded.len() + size > MAX_REPLY {
            return Err(ClientError::TooLarge);
        }
        at = line_end + 2;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(end) = find(&buf[at..], b"\r\n").map(|i| at + i) else {
                    return Ok(None);
                };
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Ok(Some(at));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        decoded.extend_from_slice(&buf[at..at + size]);
        if &buf[at + size..at + size + 2] != b"\r\n" {
            return Err(ClientError::Malformed("chunk not followed by CRLF"));
        }
        at += size + 2;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace());
    match (start, end) {
        (Some(s), Some(e)) => &bytes[s..=e],
        _ => &[],
    }
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|part| trim(part).eq_ignore_ascii_case(token))
}

/// One keep-alive connection and its buffers; reconnects lazily.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    filled: usize,
    decoded: Vec<u8>,
    last: Option<Framing>,
}

impl Conn {
    pub fn new(target: &Target) -> Conn {
        Conn {
            addr: target.addr,
            stream: None,
            buf: vec![0; INITIAL_BUFFER],
            filled: 0,
            decoded: Vec::new(),
            last: None,
        }
    }

    /// Sends pre-rendered request bytes and reads the complete reply; returns its status.
    /// A reused connection that turns out to be closed by the server is retried once on a
    /// fresh one, as browsers and k6 do; any other failure drops the connection.
    pub fn send(&mut self, request: &[u8]) -> Result<u16, ClientError> {
        let reused = self.stream.is_some();
        match self.exchange(request) {
            Err(ClientError::Closed | ClientError::Io(_)) if reused && self.filled == 0 => {
                self.disconnect();
                self.exchange(request)
            }
            other => other,
        }
    }

    /// The body of the last successful reply.
    pub fn body(&self) -> &[u8] {
        match &self.last {
            Some(Framing {
                body: Body::Range(range),
                ..
            }) => &self.buf[range.clone()],
            Some(Framing {
                body: Body::Decoded,
                ..
            }) => &self.decoded,
            None => &[],
        }
    }

    /// Closes the connection (an idle virtual user should not hold a server connection).
    pub fn disconnect(&mut self) {
        self.stream = None;
        self.filled = 0;
    }

    fn exchange(&mut self, request: &[u8]) -> Result<u16, ClientError> {
        self.last = None;
        self.filled = 0;
        if self.stream.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT)
                .map_err(ClientError::Connect)?;
            // Small request/reply pairs: Nagle would add up to 40 ms to each.
            let _ = stream.set_nodelay(true);
            stream
                .set_read_timeout(Some(READ_TIMEOUT))
                .map_err(ClientError::Connect)?;
            stream
                .set_write_timeout(Some(READ_TIMEOUT))
                .map_err(ClientError::Connect)?;
            self.stream = Some(stream);
        }
        let result = self.write_and_read(request);
        match &result {
            Ok(framing) if !framing.close => {}
            _ => self.stream = None,
        }
        result.map(|framing| {
            let status = framing.status;
            self.last = Some(framing);
            status
        })
    }

    fn write_and_read(&mut self, request: &[u8]) -> Result<Framing, ClientError> {
        let stream = self.stream.as_mut().expect("connected above");
        stream.write_all(request).map_err(ClientError::Io)?;
        loop {
            if self.filled == self.buf.len() {
                if self.buf.len() >= MAX_REPLY {
                    return Err(ClientError::TooLarge);
                }
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let read = match stream.read(&mut self.buf[self.filled..]) {
                Ok(read) => read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(ClientError::Io(err)),
            };
            self.filled += read;
            let eof = read == 0;
            if let Some(framing) = parse_response(&self.buf[..self.filled], eof, &mut self.decoded)?
            {
                return Ok(framing);
            }
            if eof {
                return Err(ClientError::Closed);
            }
        }
    }
}

/// How long `reachable` waits for a connection: a local target that is up accepts at once,
/// and a check must fail well inside a second.
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// Whether something accepts connections at the target, checked before a run so a missing
/// server fails at once instead of after the whole duration.
pub fn reachable(target: &Target) -> Result<(), ClientError> {
    TcpStream::connect_timeout(&target.addr, PROBE_TIMEOUT)
        .map(drop)
        .map_err(ClientError::Connect)
}

/// One request on a fresh connection, for control calls (tokens, debug API, readiness):
/// returns the status and the body.
pub fn fetch(
    target: &Target,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, Vec<u8>), ClientError> {
    let mut conn = Conn::new(target);
    let status = conn.send(&target.render(method, path, headers))?;
    Ok((status, conn.body().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, eof: bool) -> (Option<Framing>, Vec<u8>) {
        let mut decoded = Vec::new();
        let framing = parse_response(text.as_bytes(), eof, &mut decoded).expect("parses");
        (framing, decoded)
    }

    #[test]
    fn content_length_replies() {
        let reply = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello";
        let (framing, _) = parse(reply, false);
        let framing = framing.expect("complete");
        assert_eq!(framing.status, 200);
        assert_eq!(framing.body, Body::Range(reply.len() - 5..reply.len()));
        assert_eq!(framing.consumed, reply.len());
        assert!(!framing.close);
        // Every shorter prefix needs more bytes.
        for cut in 0..reply.len() {
            assert_eq!(parse(&reply[..cut], false).0, None, "prefix {cut}");
        }
        let (framing, _) = parse(
            "HTTP/1.1 503 Busy\r\ncontent-length: 0\r\nConnection: close\r\n\r\n",
            false,
        );
        let framing = framing.expect("complete");
        assert_eq!((framing.status, framing.close), (503, true));
        let (framing, _) = parse("HTTP/1.0 204 No Content\r\n\r\n", false);
        assert_eq!(framing.map(|f| (f.status, f.close)), Some((204, true)));
    }

    #[test]
    fn chunked_replies() {
        let reply = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                     5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\n";
        let (framing, decoded) = parse(reply, false);
        let framing = framing.expect("complete");
        assert_eq!(framing.body, Body::Decoded);
        assert_eq!(framing.consumed, reply.len());
        assert_eq!(decoded, b"hello, world");
        for cut in 0..reply.len() {
            assert_eq!(parse(&reply[..cut], false).0, None, "prefix {cut}");
        }
        let mut decoded = Vec::new();
        let bad = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(parse_response(bad.as_bytes(), false, &mut decoded).is_err());
    }

    #[test]
    fn unframed_body_ends_at_eof_and_garbage_is_refused() {
        let reply = "HTTP/1.1 200 OK\r\n\r\nabc";
        assert_eq!(parse(reply, false).0, None);
        let framing = parse(reply, true).0.expect("complete at eof");
        assert_eq!(framing.body, Body::Range(19..22));
        assert!(framing.close);
        let mut decoded = Vec::new();
        for bad in [
            "SSH-2.0\r\n\r\n",
            "HTTP/1.1 abc OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        ] {
            assert!(
                parse_response(bad.as_bytes(), false, &mut decoded).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn targets_parse() {
        let target = Target::parse("http://127.0.0.1:3000/api/").unwrap();
        assert_eq!(target.addr.port(), 3000);
        assert_eq!(target.authority, "127.0.0.1:3000");
        assert_eq!(target.base_path, "/api");
        let request = String::from_utf8(target.render_get("/health", &[("X-A", "b")])).unwrap();
        assert!(request.starts_with("GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n"));
        assert!(request.ends_with("X-A: b\r\n\r\n"));
        assert_eq!(Target::parse("http://127.0.0.1").unwrap().addr.port(), 80);
        assert!(Target::parse("https://127.0.0.1").is_err());
        assert!(Target::parse("127.0.0.1:80").is_err());
    }
}
