//! Patched for auth-service (src/vendor/README.md): how a response reaches the client without
//! a worker ever waiting on the client's socket.
//!
//! A worker renders the whole response into the connection's reusable buffer and sends it with
//! one non-blocking `send`. What the socket does not take at once (a client that stopped
//! reading) goes to the flusher, one thread for the whole server that finishes such writes as
//! the sockets drain and closes a connection whose client did not take its response within
//! `write_timeout`. Owns the send path only: it never reads a socket.

use std::io::{self, Write};
use std::mem;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::Conn;
use crate::limits::{Closed, Counters};
use crate::sys;

/// The `Write` end a request answers through. Nothing leaves before it is dropped (a
/// response is written whole, then sent).
pub(crate) struct ConnWriter {
    conn: Arc<Conn>,
    buf: Vec<u8>,
    close: bool,
    sent: bool,
}

impl ConnWriter {
    /// `buf` is the connection's response buffer (`Conn::begin_response`); `close`: the request
    /// asked for the connection to end after this response.
    pub(crate) fn new(conn: Arc<Conn>, buf: Vec<u8>, close: bool) -> ConnWriter {
        ConnWriter {
            conn,
            buf,
            close,
            sent: false,
        }
    }

    /// True when the connection ends after this response.
    pub(crate) fn closes(&self) -> bool {
        self.close
    }

    /// The connection ends after this response (the response said `Connection: close`).
    pub(crate) fn close_after(&mut self) {
        self.close = true;
    }

    fn send(&mut self) {
        if mem::replace(&mut self.sent, true) {
            return;
        }
        let buf = mem::take(&mut self.buf);
        let mut offset = 0;
        while offset < buf.len() {
            match sys::send_now(&self.conn.socket, &buf[offset..]) {
                Ok(0) => break,
                Ok(sent) => offset += sent,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    let deadline = Instant::now() + self.conn.context.limits.write_timeout;
                    self.conn.context.flusher.take_over(Pending {
                        conn: Arc::clone(&self.conn),
                        buf,
                        offset,
                        close: self.close,
                        deadline,
                    });
                    return;
                }
                Err(_) => return self.conn.settle(buf, Settled::Failed),
            }
        }
        self.conn.settle(buf, Settled::Sent { close: self.close });
    }
}

impl Write for ConnWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Nothing is sent before the writer is dropped: a flush in the middle of a response
    /// would make a worker wait for the part before it.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ConnWriter {
    fn drop(&mut self) {
        self.send();
    }
}

/// How a response ended.
pub(crate) enum Settled {
    /// All of it was sent; with `close` the connection ends now.
    Sent { close: bool },
    /// The client went away, or did not take it in time.
    Failed,
}

/// A response the client's socket did not take at once.
struct Pending {
    conn: Arc<Conn>,
    buf: Vec<u8>,
    offset: usize,
    close: bool,
    deadline: Instant,
}

/// The one thread that finishes slow writes.
pub(crate) struct Flusher {
    incoming: Mutex<Vec<Pending>>,
    wake: UnixStream,
    closing: AtomicBool,
}

/// How long the flusher sleeps with nothing to do before it looks at `closing` again.
const IDLE_WAIT: Duration = Duration::from_secs(1);

impl Flusher {
    pub(crate) fn start(counters: Arc<Counters>) -> io::Result<Arc<Flusher>> {
        let (wake, woken) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        woken.set_nonblocking(true)?;
        let flusher = Arc::new(Flusher {
            incoming: Mutex::new(Vec::new()),
            wake,
            closing: AtomicBool::new(false),
        });
        let inside = Arc::clone(&flusher);
        thread::Builder::new()
            .name("http-flush".into())
            .spawn(move || inside.run(&woken, &counters))?;
        Ok(flusher)
    }

    /// Ends the thread once the writes it holds are done or timed out.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        let _ = (&self.wake).write(&[1]);
    }

    fn take_over(&self, pending: Pending) {
        lock(&self.incoming).push(pending);
        // A full wake pipe already holds a wake-up; nothing is lost.
        let _ = (&self.wake).write(&[1]);
    }

    fn run(&self, woken: &UnixStream, counters: &Counters) {
        let mut active: Vec<Pending> = Vec::new();
        let mut watched = Vec::new();
        loop {
            active.append(&mut lock(&self.incoming));
            if active.is_empty() && self.closing.load(Ordering::SeqCst) {
                return;
            }
            let now = Instant::now();
            let mut index = 0;
            while index < active.len() {
                if active[index].deadline <= now {
                    let timed_out = active.swap_remove(index);
                    counters.closed(Closed::WriteTimeout);
                    timed_out.conn.settle(timed_out.buf, Settled::Failed);
                } else {
                    index += 1;
                }
            }
            let wait = active
                .iter()
                .map(|pending| pending.deadline.saturating_duration_since(now))
                .min()
                .unwrap_or(IDLE_WAIT)
                .min(IDLE_WAIT);
            watched.clear();
            watched.push(sys::watch(woken.as_raw_fd(), false));
            watched.extend(
                active
                    .iter()
                    .map(|pending| sys::watch(pending.conn.socket.as_raw_fd(), true)),
            );
            if sys::poll(&mut watched, wait).is_err() {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
            if sys::ready(&watched[0]) {
                let mut drain = [0u8; 64];
                let mut reader: &UnixStream = woken;
                while let Ok(n) = io::Read::read(&mut reader, &mut drain) {
                    if n == 0 {
                        break;
                    }
                }
            }
            // Backwards, so `swap_remove` only moves entries already looked at.
            for index in (0..active.len()).rev() {
                if !sys::ready(&watched[index + 1]) {
                    continue;
                }
                let pending = &mut active[index];
                let outcome = loop {
                    if pending.offset == pending.buf.len() {
                        break Some(Settled::Sent {
                            close: pending.close,
                        });
                    }
                    match sys::send_now(&pending.conn.socket, &pending.buf[pending.offset..]) {
                        Ok(0) => break Some(Settled::Failed),
                        Ok(sent) => pending.offset += sent,
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => break None,
                        Err(_) => break Some(Settled::Failed),
                    }
                };
                if let Some(outcome) = outcome {
                    let done = active.swap_remove(index);
                    done.conn.settle(done.buf, outcome);
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a failed or closing response does to the socket.
pub(crate) fn shut(conn: &Conn, outcome: &Settled) {
    match outcome {
        // FIN after the response: the client sees the end of the connection.
        Settled::Sent { close: true } => {
            let _ = conn.socket.shutdown(Shutdown::Write);
        }
        Settled::Sent { close: false } => {}
        // Also wakes the connection thread out of its read.
        Settled::Failed => {
            let _ = conn.socket.shutdown(Shutdown::Both);
        }
    }
}
