//! Patched for auth-service (src/vendor/README.md): the life of one client connection, on its
//! own thread, with a deadline on every wait.
//!
//! The connection thread is the only reader of its socket: it waits for a request (at most
//! `idle_timeout`), reads its head (at most `header_timeout` from the first byte) and a small
//! body (at most `body_timeout`), and queues the request for the workers. Workers never read
//! a socket, and they write to it only through `writer::ConnWriter`, which never blocks. One
//! request per connection is in the workers' hands at a time, so a pipelining client that
//! never reads holds one worker for one response, not the whole pool.
//! It must not know what a request means: routing and answers belong to the caller.

pub(crate) mod head;
pub(crate) mod writer;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::limits::{Closed, Counters, Limits};
use crate::request::{self, Request};
use crate::util::MessagesQueue;
use head::{Framing, Head, HeadError};
use writer::{ConnWriter, Flusher, Settled};

/// What every connection of one server shares.
pub(crate) struct Context {
    pub(crate) limits: Limits,
    pub(crate) counters: Arc<Counters>,
    pub(crate) flusher: Arc<Flusher>,
    pub(crate) queue: Arc<MessagesQueue<Request>>,
    /// Paths whose requests go to the urgent lane of the queue.
    pub(crate) urgent: Option<fn(&str) -> bool>,
}

/// One client connection: its socket (one descriptor, read by the connection thread, written
/// through `ConnWriter`) and whether a response is in flight.
pub(crate) struct Conn {
    pub(crate) socket: TcpStream,
    pub(crate) context: Arc<Context>,
    state: Mutex<State>,
    settled: Condvar,
}

struct State {
    in_flight: bool,
    reader_waits: bool,
    ended: bool,
    /// The response buffer, kept between requests.
    spare: Vec<u8>,
}

/// A response buffer that grew past this is not kept for the next response.
const SPARE_MAX: usize = 64 * 1024;
/// After the last response: how long and how much the connection thread reads and discards
/// before closing, so the client reads the response instead of a reset.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

impl Conn {
    /// Counts the connection as open until the last reference to it is gone.
    pub(crate) fn new(socket: TcpStream, context: Arc<Context>) -> Arc<Conn> {
        context
            .counters
            .open
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Arc::new(Conn {
            socket,
            context,
            state: Mutex::new(State {
                in_flight: false,
                reader_waits: false,
                ended: false,
                spare: Vec::new(),
            }),
            settled: Condvar::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }


    /// A response ended (sent, or failed); wakes the connection thread if it waits for that.
    pub(crate) fn settle(&self, mut buf: Vec<u8>, outcome: Settled) {
        writer::shut(self, &outcome);
        let mut state = self.state();
        state.in_flight = false;
        if !matches!(outcome, Settled::Sent { close: false }) {
            state.ended = true;
        }
        if buf.capacity() <= SPARE_MAX {
            buf.clear();
            state.spare = buf;
        }
        let wake = state.reader_waits;
        drop(state);
        if wake {
            self.settled.notify_one();
        }
    }

    /// Waits until no response is in flight; false once the connection has ended.
    fn wait_settled(&self) -> bool {
        !self.settled_state().ended
    }

    /// Waits for the previous response to settle, then starts the next one, under one lock:
    /// its buffer is the connection's spare one. `None` once the connection has ended.
    fn begin_response(&self) -> Option<Vec<u8>> {
        let mut state = self.settled_state();
        if state.ended {
            return None;
        }
        state.in_flight = true;
        Some(std::mem::take(&mut state.spare))
    }

    fn settled_state(&self) -> MutexGuard<'_, State> {
        let mut state = self.state();
        while state.in_flight {
            state.reader_waits = true;
            state = self
                .settled
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state.reader_waits = false;
        }
        state
    }

    fn in_flight(&self) -> bool {
        self.state().in_flight
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.context
            .counters
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The socket's read side with the current deadline applied as `SO_RCVTIMEO`; the option is
/// set only when the wanted timeout changes, so a keep-alive request that arrives in one
/// segment costs no extra system call.
struct SocketReader {
    conn: Arc<Conn>,
    wait: Wait,
    applied: Option<Duration>,
}

#[derive(Clone, Copy)]
enum Wait {
    /// Between requests: each read waits at most this long.
    Idle(Duration),
    /// Inside a request: everything must have arrived by then.
    Until(Instant),
}

impl Read for SocketReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let timeout = match self.wait {
            Wait::Idle(timeout) => timeout,
            Wait::Until(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                left
            }
        };
        if self.applied != Some(timeout) {
            self.conn.socket.set_read_timeout(Some(timeout))?;
            self.applied = Some(timeout);
        }
        match (&self.conn.socket).read(buf) {
            Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                Err(io::ErrorKind::TimedOut.into())
            }
            other => other,
        }
    }
}

/// Serves one connection until it ends. Runs on the connection's own thread.
pub(crate) fn serve(conn: Arc<Conn>, remote: Option<SocketAddr>) {
    let context = Arc::clone(&conn.context);
    let limits = &context.limits;
    let counters = &context.counters;
    // The connection thread's own writes (100 Continue, a refusal) block at most this long.
    let _ = conn.socket.set_write_timeout(Some(limits.write_timeout));
    let mut reader = BufReader::with_capacity(
        4096,
        SocketReader {
            conn: Arc::clone(&conn),
            wait: Wait::Idle(limits.idle_timeout),
            applied: None,
        },
    );
    let mut line = Vec::new();
    loop {
        reader.get_mut().wait = Wait::Idle(limits.idle_timeout);
        match reader.fill_buf() {
            Ok([]) => break,
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::TimedOut => {
                // The idle time starts when the last response has left.
                if conn.in_flight() {
                    if conn.wait_settled() {
                        continue;
                    }
                    break;
                }
                counters.closed(Closed::Idle);
                break;
            }
            Err(_) => break,
        }
        let received_at = Instant::now();
        reader.get_mut().wait = Wait::Until(received_at + limits.header_timeout);
        let head = match head::read(&mut reader, &mut line, limits) {
            Ok(head) => head,
            Err(HeadError::Gone) => break,
            Err(HeadError::Drop) => {
                counters.closed(Closed::Malformed);
                break;
            }
            Err(HeadError::Timeout) => {
                counters.closed(Closed::HeaderTimeout);
                refuse(&conn, 408);
                break;
            }
            Err(HeadError::Refuse(status)) => {
                counters.closed(Closed::Malformed);
                refuse(&conn, status);
                break;
            }
        };
        reader.get_mut().wait = Wait::Until(Instant::now() + limits.body_timeout);
        let (body, body_unread) = match read_body(&mut reader, &conn, &head, limits) {
            Ok(read) => read,
            Err(HeadError::Timeout) => {
                counters.closed(Closed::BodyTimeout);
                refuse(&conn, 408);
                break;
            }
            Err(HeadError::Refuse(status)) => {
                counters.closed(Closed::Malformed);
                refuse(&conn, status);
                break;
            }
            Err(HeadError::Gone | HeadError::Drop) => break,
        };
        // An unread body leaves the stream out of step: this is the last request.
        let close = head.close || body_unread;
        // One request per connection in the workers' hands at a time.
        let Some(buf) = conn.begin_response() else {
            break;
        };
        let urgent = context.urgent.is_some_and(|is_urgent| is_urgent(&head.path));
        let writer = ConnWriter::new(Arc::clone(&conn), buf, close);
        let request = request::from_connection(head, body, remote, writer, received_at);
        if urgent {
            context.queue.push_urgent(request);
        } else {
            context.queue.push(request);
        }
        if close {
            break;
        }
    }
    linger(&conn, &mut reader);
}

/// The body, when it is small enough to read now; `(body, unread)` where `unread` means a
/// larger body was left unread (the connection then ends after the response).
fn read_body<R: BufRead>(
    reader: &mut R,
    conn: &Conn,
    head: &Head,
    limits: &Limits,
) -> Result<(Vec<u8>, bool), HeadError> {
    let small_enough = match head.framing {
        Framing::None | Framing::Length(0) => return Ok((Vec::new(), false)),
        Framing::Length(length) => length <= limits.body_read_max as u64,
        Framing::Chunked => true,
    };
    if !small_enough {
        return Ok((Vec::new(), true));
    }
    if head.expects_continue {
        if !conn.wait_settled() {
            return Err(HeadError::Gone);
        }
        (&conn.socket).write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let mut body = Vec::new();
    match head.framing {
        Framing::Length(length) => {
            body.resize(length as usize, 0);
            reader.read_exact(&mut body)?;
            Ok((body, false))
        }
        _ => {
            let limit = limits.body_read_max as u64 + 1;
            let decoded = chunked_transfer::Decoder::new(reader)
                .take(limit)
                .read_to_end(&mut body);
            match decoded {
                Ok(_) if body.len() as u64 == limit => Ok((Vec::new(), true)),
                Ok(_) => Ok((body, false)),
                Err(err) if err.kind() == io::ErrorKind::TimedOut => Err(HeadError::Timeout),
                Err(err) if err.kind() == io::ErrorKind::InvalidInput => Err(HeadError::Refuse(400)),
                Err(_) => Err(HeadError::Gone),
            }
        }
    }
}

/// Answers a request that will not be served, once nothing else is being written, and ends
/// the connection.
fn refuse(conn: &Conn, status: u16) {
    if !conn.wait_settled() {
        return;
    }
    let reason = crate::StatusCode(status).default_reason_phrase();
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = (&conn.socket).write_all(answer.as_bytes());
}

/// Ends the connection without losing the last response: once it has left, FIN, then read
/// and discard what the client still sends (bounded), so closing does not reset a
/// connection whose response the client has not read yet.
fn linger(conn: &Conn, reader: &mut BufReader<SocketReader>) {
    conn.wait_settled();
    let _ = conn.socket.shutdown(Shutdown::Write);
    reader.get_mut().wait = Wait::Until(Instant::now() + LINGER_TIME);
    let mut discarded = reader.buffer().len();
    reader.consume(discarded);
    let mut sink = [0u8; 8192];
    while discarded < LINGER_BYTES {
        match reader.get_mut().read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => discarded += n,
        }
    }
}
