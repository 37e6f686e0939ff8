use std::io::Error as IoError;
use std::io::{self, Cursor, Read, Write};

use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use crate::conn::head::{Framing, Head};
use crate::conn::writer::ConnWriter;
use crate::{HTTPVersion, Header, Method, Response};

/// Represents an HTTP request made by a client.
///
/// A `Request` object is what is produced by the server, and is your what
/// your code must analyse and answer.
///
/// This object implements the `Send` trait, therefore you can dispatch your requests to
/// worker threads.
///
/// # Pipelining
///
/// Patched for auth-service: a client may send several requests in a row, but a connection
/// has one request in the workers' hands at a time; the next is read meanwhile and queued
/// once the previous response has left. Responses stay in order, and a client that stops
/// reading holds one worker for one response at most.
///
/// # Automatic cleanup
///
/// If a `Request` object is destroyed without `into_writer` or `respond` being called,
/// an empty response with a 500 status code (internal server error) will automatically be
/// sent back to the client.
/// This means that if your code fails during the handling of a request, this "internal server
/// error" response will automatically be sent during the stack unwinding.
///
/// # Testing
///
/// If you want to build fake requests to test your server, use [`TestRequest`](crate::test::TestRequest).
pub struct Request {
    // where to read the body from
    data_reader: Cursor<Vec<u8>>,

    // if this writer is empty, then the request has been answered
    response_writer: Option<Writer>,

    remote_addr: Option<SocketAddr>,

    method: Method,

    path: String,

    http_version: HTTPVersion,

    headers: Vec<Header>,

    body_length: Option<usize>,

    /// Patched for auth-service: the head framed a body (a length over 0, or chunked).
    has_body: bool,

    /// Patched for auth-service: when the first byte of this request was read.
    received_at: Instant,
}

/// Patched for auth-service (src/vendor/README.md): where a response goes. A served
/// connection's writer never blocks (see `conn::writer`); a `TestRequest` writes nowhere.
enum Writer {
    Connection(ConnWriter),
    Sink(io::Sink),
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Writer::Connection(writer) => writer.write(buf),
            Writer::Sink(sink) => sink.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Writer::Connection(writer) => writer.write_all(buf),
            Writer::Sink(sink) => sink.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Patched for auth-service: a request read by a connection thread, whose small body (if
/// any) was read with it. The head passed every framing check.
pub(crate) fn from_connection(
    head: Head,
    body: Vec<u8>,
    remote_addr: Option<SocketAddr>,
    writer: ConnWriter,
    received_at: Instant,
) -> Request {
    let body_length = match head.framing {
        Framing::Length(length) => Some(std::convert::TryFrom::try_from(length).unwrap_or(usize::MAX)),
        _ => None,
    };
    let has_body = match head.framing {
        Framing::Length(length) => length > 0,
        Framing::Chunked => true,
        Framing::None => false,
    };
    Request {
        data_reader: Cursor::new(body),
        response_writer: Some(Writer::Connection(writer)),
        remote_addr,
        method: head.method,
        path: head.path,
        http_version: head.version,
        headers: head.headers,
        body_length,
        has_body,
        received_at,
    }
}

/// A request that answers into nothing (`TestRequest`).
pub(crate) fn detached(
    method: Method,
    path: String,
    version: HTTPVersion,
    headers: Vec<Header>,
    remote_addr: Option<SocketAddr>,
    body: Vec<u8>,
) -> Request {
    Request {
        body_length: Some(body.len()),
        has_body: !body.is_empty(),
        data_reader: Cursor::new(body),
        response_writer: Some(Writer::Sink(io::sink())),
        remote_addr,
        method,
        path,
        http_version: version,
        headers,
        received_at: Instant::now(),
    }
}

impl Request {
    /// Always false: this fork serves plain HTTP only (TLS ends at Kong).
    #[inline]
    pub fn secure(&self) -> bool {
        false
    }

    /// Returns the method requested by the client (eg. `GET`, `POST`, etc.).
    #[inline]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Returns the resource requested by the client.
    #[inline]
    pub fn url(&self) -> &str {
        &self.path
    }

    /// Returns a list of all headers sent by the client.
    #[inline]
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Returns the HTTP version of the request.
    #[inline]
    pub fn http_version(&self) -> &HTTPVersion {
        &self.http_version
    }

    /// Returns the declared length of the body in bytes (`None` when chunked or absent).
    ///
    /// Patched for auth-service: a body over the server's `body_read_max` is declared but not
    /// read (`as_reader` is then empty), and the connection closes after the response.
    #[inline]
    pub fn body_length(&self) -> Option<usize> {
        self.body_length
    }

    /// Patched for auth-service: whether the head framed a body (`Content-Length` over 0 or
    /// `Transfer-Encoding: chunked`), as the connection layer parsed it, read or not.
    #[inline]
    pub fn has_body(&self) -> bool {
        self.has_body
    }

    /// Patched for auth-service: when the connection thread read the first byte of this
    /// request. The time from here to the response includes the wait in the queue for a
    /// worker (and, for a pipelined request, for the response before it).
    #[inline]
    pub fn received_at(&self) -> Instant {
        self.received_at
    }

    /// Returns the address of the client that sent this request.
    #[inline]
    pub fn remote_addr(&self) -> Option<&SocketAddr> {
        self.remote_addr.as_ref()
    }

    /// The body, read with the head (`100 Continue` was sent then, if asked for).
    #[inline]
    pub fn as_reader(&mut self) -> &mut dyn Read {
        &mut self.data_reader
    }

    /// Turns the `Request` into a writer of the raw response. Nothing is sent before the
    /// writer is dropped.
    #[inline]
    pub fn into_writer(mut self) -> Box<dyn Write + Send + 'static> {
        Box::new(self.extract_writer_impl())
    }

    fn extract_writer_impl(&mut self) -> Writer {
        self.response_writer
            .take()
            .expect("a request is answered once")
    }

    /// Sends a response to this request.
    #[inline]
    pub fn respond<R>(mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        self.respond_impl(response)
    }

    fn respond_impl<R>(&mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let mut writer = self.extract_writer_impl();
        // Patched for auth-service: either side may end the connection after this response,
        // and the response says so.
        let mut response = response;
        if let Writer::Connection(writer) = &mut writer {
            if response.closes_connection() {
                writer.close_after();
            } else if writer.closes() {
                response = response.with_connection_close();
            }
        }

        let do_not_send_body = self.method == Method::Head;

        let printed = response.raw_print(
            &mut writer,
            self.http_version.clone(),
            &self.headers,
            do_not_send_body,
        );
        // Dropping the writer sends the response.
        drop(writer);
        printed
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> Result<(), fmt::Error> {
        write!(
            formatter,
            "Request({} {} from {:?})",
            self.method, self.path, self.remote_addr
        )
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.response_writer.is_some() {
            let response = Response::empty(500);
            let _ = self.respond_impl(response); // ignoring any potential error
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn must_be_send() {
        #![allow(dead_code)]
        fn f<T: Send>(_: &T) {}
        fn bar(rq: &Request) {
            f(rq);
        }
    }
}
