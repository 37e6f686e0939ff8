//! Patched for auth-service (src/vendor/README.md): the deadlines and bounds of the connection
//! layer, and the counters that show them at work.
//!
//! Owns only plain values and atomics; it must not do I/O.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// Every wait on a client socket and every count of connections has a bound.
#[derive(Debug, Clone)]
pub struct Limits {
    /// From the first byte of a request to the end of its head (a slowloris defence).
    pub header_timeout: Duration,
    /// How long a keep-alive connection may sit between requests.
    pub idle_timeout: Duration,
    /// From the end of the head to the end of the (small) body that is read.
    pub body_timeout: Duration,
    /// How long the rest of a response may take once the client stopped reading.
    pub write_timeout: Duration,
    /// Open connections; a new one past this is answered 503 and closed at once.
    pub max_connections: usize,
    /// Bodies up to this size are read before the request is queued (so no worker ever waits
    /// on one); a larger body is not read, and the connection closes after the response.
    pub body_read_max: usize,
    /// The longest request line or header line.
    pub max_line_bytes: usize,
    /// The whole head: request line and every header line.
    pub max_head_bytes: usize,
    /// Header lines in one request.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_connections: 1024,
            body_read_max: 4096,
            max_line_bytes: 64 * 1024,
            max_head_bytes: 64 * 1024,
            max_headers: 128,
        }
    }
}

/// Why a connection ended before its client closed it, or why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// No new request within `idle_timeout`.
    Idle,
    /// The head did not arrive within `header_timeout` (408).
    HeaderTimeout,
    /// The body did not arrive within `body_timeout` (408).
    BodyTimeout,
    /// The client did not take the response within `write_timeout`.
    WriteTimeout,
    /// Bad framing, a bad request line or header (400), too large a head (431), an
    /// unsupported version (505), an unknown expectation (417).
    Malformed,
    /// Refused at accept: `max_connections` were open (503).
    OverCapacity,
}

impl Closed {
    pub const ALL: [Closed; 6] = [
        Closed::Idle,
        Closed::HeaderTimeout,
        Closed::BodyTimeout,
        Closed::WriteTimeout,
        Closed::Malformed,
        Closed::OverCapacity,
    ];

    /// A metric label: `idle`, `header_timeout`, ...
    pub fn label(self) -> &'static str {
        match self {
            Closed::Idle => "idle",
            Closed::HeaderTimeout => "header_timeout",
            Closed::BodyTimeout => "body_timeout",
            Closed::WriteTimeout => "write_timeout",
            Closed::Malformed => "malformed",
            Closed::OverCapacity => "over_capacity",
        }
    }
}

/// Counters of the connection layer; read with `Server::stats`.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) open: AtomicUsize,
    pub(crate) accepted: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
    pub(crate) thread_failures: AtomicU64,
    closed: [AtomicU64; Closed::ALL.len()],
}

impl Counters {
    pub(crate) fn closed(&self, why: Closed) {
        self.closed[why as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            open: self.open.load(Relaxed),
            accepted: self.accepted.load(Relaxed),
            accept_errors: self.accept_errors.load(Relaxed),
            thread_failures: self.thread_failures.load(Relaxed),
            closed: Closed::ALL.map(|why| self.closed[why as usize].load(Relaxed)),
        }
    }
}

/// A snapshot of the connection layer's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections open now.
    pub open: usize,
    /// Connections accepted since start (refused ones included).
    pub accepted: u64,
    /// `accept` failures (EMFILE, ENFILE, ENOMEM and others); the loop backs off and goes on.
    pub accept_errors: u64,
    /// Connections closed because no thread could be started for them.
    pub thread_failures: u64,
    /// Connections ended per reason, indexed by `Closed as usize` (`Closed::ALL` order).
    pub closed: [u64; Closed::ALL.len()],
}

impl Stats {
    pub fn closed(&self, why: Closed) -> u64 {
        self.closed[why as usize]
    }
}
