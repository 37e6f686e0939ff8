//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]

use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::io::Write;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use conn::writer::Flusher;
use conn::{Conn, Context};
use limits::Counters;
use util::{Lanes, MessagesQueue};

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use limits::{Closed, Limits, Stats};
pub use request::Request;
pub use response::{Response, ResponseBox};
pub use test::TestRequest;

mod common;
mod conn;
mod connection;
mod limits;
mod request;
mod response;
mod sys;
mod test;
mod util;

/// The main class of this library.
///
/// Destroying this object stops the accept loop and closes the listening socket. Requests
/// that have already been returned by the `recv()` function will not close and the
/// responses will be transferred to the client.
pub struct Server {
    // should be false as long as the server exists
    close: Arc<AtomicBool>,

    context: Arc<Context>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,
}

// this trait is to make sure that Server implements Share and Send
#[doc(hidden)]
trait MustBeShareDummy: Sync + Send {}
#[doc(hidden)]
impl MustBeShareDummy for Server {}

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// Patched for auth-service: deadlines and bounds of every connection.
    pub limits: Limits,

    /// Patched for auth-service: requests whose path this accepts go to the urgent lane
    /// (`recv_urgent_timeout`, and before all others in `recv`).
    pub urgent: Option<fn(&str) -> bool>,
}

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            limits: Limits::default(),
            urgent: None,
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener(listener, config.limits, config.urgent)
    }

    /// Builds a new server using the specified TCP listener.
    ///
    /// Patched for auth-service: the accept loop ends only when the server is dropped. An
    /// `accept` that fails for lack of descriptors or memory (EMFILE, ENFILE, ENOMEM, ENOBUFS)
    /// backs off and retries; any other failure is counted and the loop goes on. Upstream
    /// ended the loop on the first error, after which every connection was refused while the
    /// process stayed alive.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
        limits: Limits,
        urgent: Option<fn(&str) -> bool>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = listener.into();
        let close_trigger = Arc::new(AtomicBool::new(false));
        let local_addr = listener.local_addr()?;
        log::debug!("Server listening on {}", local_addr);

        let counters = Arc::new(Counters::default());
        let context = Arc::new(Context {
            flusher: Flusher::start(Arc::clone(&counters))?,
            limits,
            counters,
            queue: MessagesQueue::with_capacity(8),
            urgent,
        });

        let inside_close_trigger = Arc::clone(&close_trigger);
        let inside_context = Arc::clone(&context);
        thread::Builder::new()
            .name("http-accept".into())
            .spawn(move || accept_loop(&listener, &inside_context, &inside_close_trigger))?;

        Ok(Server {
            context,
            close: close_trigger,
            listening_addr: local_addr,
        })
    }

    /// Returns an iterator for all the incoming requests.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Returns the number of clients currently connected to the server.
    pub fn num_connections(&self) -> usize {
        self.context.counters.open.load(Relaxed)
    }

    /// Patched for auth-service: the connection layer's counters.
    pub fn stats(&self) -> Stats {
        self.context.counters.snapshot()
    }

    /// Patched for auth-service: the limits this server enforces.
    pub fn limits(&self) -> &Limits {
        &self.context.limits
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    pub fn recv(&self) -> IoResult<Request> {
        match self.context.queue.pop() {
            Some(rq) => Ok(rq),
            None => Err(IoError::new(IoErrorKind::Other, "thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        Ok(self.context.queue.pop_timeout(timeout, Lanes::All))
    }

    /// Patched for auth-service: an urgent request only, waiting at most `timeout`.
    pub fn recv_urgent_timeout(&self, timeout: Duration) -> Option<Request> {
        self.context.queue.pop_timeout(timeout, Lanes::Urgent)
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        Ok(self.context.queue.try_pop(Lanes::All))
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.context.queue.unblock();
    }
}

/// The answer to a connection past `max_connections`: written without waiting (a new
/// socket's buffer is empty), then closed, with no thread ever started for it.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n";

/// Backoff after an `accept` failure for lack of resources: doubles up to the maximum.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// At most one log line per this period for repeated accept or thread failures.
const LOG_EVERY: Duration = Duration::from_secs(5);

fn accept_loop(listener: &Listener, context: &Arc<Context>, close: &AtomicBool) {
    let tasks_pool = util::TaskPool::new();
    let counters = &context.counters;
    let mut backoff = Duration::ZERO;
    let mut last_log: Option<Instant> = None;
    let mut should_log = move || {
        let now = Instant::now();
        let due = last_log.map_or(true, |at| now.duration_since(at) >= LOG_EVERY);
        if due {
            last_log = Some(now);
        }
        due
    };
    log::debug!("Running accept thread");
    while !close.load(SeqCst) {
        let (socket, addr) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(err) => {
                counters.accept_errors.fetch_add(1, Relaxed);
                let exhausted = matches!(
                    err.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS)
                );
                if exhausted {
                    backoff = (backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                }
                if should_log() {
                    log::error!("accepting a connection failed: {err}; retrying in {backoff:?}");
                }
                thread::sleep(backoff);
                continue;
            }
        };
        backoff = Duration::ZERO;
        if close.load(SeqCst) {
            break;
        }
        counters.accepted.fetch_add(1, Relaxed);
        if counters.open.load(Relaxed) >= context.limits.max_connections {
            counters.closed(Closed::OverCapacity);
            refuse_over_capacity(socket);
            continue;
        }
        let _ = socket.set_nodelay(true);
        let mut conn = Some(Conn::new(socket, Arc::clone(context)));
        let spawned = tasks_pool.spawn(Box::new(move || {
            if let Some(conn) = conn.take() {
                conn::serve(conn, Some(addr));
            }
        }));
        if let Err(err) = spawned {
            // The task and its connection were dropped: the client sees the connection close.
            counters.thread_failures.fetch_add(1, Relaxed);
            if should_log() {
                log::error!("no thread for a new connection: {err}");
            }
            thread::sleep(BACKOFF_MIN);
        }
    }
    log::debug!("Terminating accept thread");
}

fn refuse_over_capacity(mut socket: TcpStream) {
    let _ = socket.set_nonblocking(true);
    let _ = socket.write_all(OVER_CAPACITY);
    let _ = socket.shutdown(Shutdown::Write);
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close.store(true, SeqCst);
        self.context.flusher.close();
        // Connect briefly to ourselves to unblock the accept thread
        let ListenAddr::IP(addr) = &self.listening_addr;
        if let Ok(stream) = TcpStream::connect(addr) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}
