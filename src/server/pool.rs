//! The fixed worker pool: N threads over one `Arc<tiny_http::Server>`, each taking requests off
//! its queue and answering them through the adapter.
//!
//! Only as many workers as cores take requests at a time (`blocking::Turns`); the others are
//! the reserve for workers that block on Kong, which hand over their turn first. A reserve
//! worker still looks at the queue once per poll interval, so a turn holder stuck somewhere
//! unforeseen (a client that stopped reading) delays requests but never stalls them.
//! Besides them, `OPS_WORKERS` threads take only the urgent lane (health, metrics, debug), so
//! those routes are answered even when every worker waits on Kong or the queue is long.
//! Workers never exit on their own except at shutdown; a panicking handler is contained by the
//! adapter, so one bad request cannot shrink the pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::app::App;
use crate::blocking::Turns;
use crate::server::adapter;

/// How long a worker waits on an empty queue before re-checking for shutdown. In drain mode
/// one such quiet wait ends the worker.
const POLL: Duration = Duration::from_millis(100);

/// Threads that serve the urgent lane only: two, so a timed `/debug/pprof/profile` holding
/// one still leaves health answered.
pub const OPS_WORKERS: usize = 2;

/// What a worker takes off the queue.
#[derive(Clone, Copy)]
enum Role {
    /// Urgent requests first, then the rest, while it holds a turn.
    Any,
    /// Urgent requests only, without a turn.
    Ops,
}

/// The drain deadline as milliseconds after `epoch`, shared by all workers; 0 = serving.
struct Drain {
    epoch: Instant,
    deadline_ms: AtomicU64,
}

pub struct Pool {
    drain: Arc<Drain>,
    pub workers: Vec<JoinHandle<()>>,
}

/// `count` workers, of which at most `takers` take requests at a time.
pub fn spawn(
    app: &Arc<App>,
    server: &Arc<tiny_http::Server>,
    count: usize,
    takers: usize,
) -> std::io::Result<Pool> {
    let drain = Arc::new(Drain {
        epoch: Instant::now(),
        deadline_ms: AtomicU64::new(0),
    });
    let turns = Turns::new(takers.min(count));
    let cors_lines: Arc<[u8]> = adapter::cors_header_lines(&app.config.server).into();
    let roles = (0..count)
        .map(|index| (format!("worker-{index}"), Role::Any))
        .chain((0..OPS_WORKERS).map(|index| (format!("ops-{index}"), Role::Ops)));
    let workers = roles
        .map(|(name, role)| {
            let app = Arc::clone(app);
            let server = Arc::clone(server);
            let drain = Arc::clone(&drain);
            let turns = Arc::clone(&turns);
            let cors_lines = Arc::clone(&cors_lines);
            thread::Builder::new()
                .name(name)
                .spawn(move || work(&app, &server, &drain, &turns, &cors_lines, role))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok(Pool { drain, workers })
}

impl Pool {
    /// Switches the workers to drain mode: each keeps answering queued requests and leaves
    /// after one quiet poll or at `deadline`.
    ///
    /// Workers poll rather than wait for tiny_http's `unblock()` tokens: a token is consumed by
    /// whichever wait sees it first, so with a drain phase in between some workers could miss
    /// theirs and block forever.
    pub fn begin_drain(&self, deadline: Instant) {
        let ms = deadline
            .saturating_duration_since(self.drain.epoch)
            .as_millis()
            .max(1) as u64;
        self.drain.deadline_ms.store(ms, Ordering::SeqCst);
    }
}

fn work(
    app: &App,
    server: &tiny_http::Server,
    drain: &Drain,
    turns: &Arc<Turns>,
    cors_lines: &[u8],
    role: Role,
) {
    loop {
        // Draining, every worker helps empty the queue.
        let draining = drain.deadline_ms.load(Ordering::SeqCst) != 0;
        let polled = match role {
            Role::Ops => Ok(server.recv_urgent_timeout(POLL)),
            Role::Any if draining || turns.take(POLL) => server.recv_timeout(POLL),
            Role::Any => server.try_recv(),
        };
        let deadline_ms = drain.deadline_ms.load(Ordering::SeqCst);
        match polled {
            Ok(Some(request)) => adapter::serve(app, cors_lines, request, Instant::now()),
            Ok(None) if deadline_ms != 0 => return,
            // An idle poll or an accept error: nothing to answer.
            Ok(None) | Err(_) => {}
        }
        if deadline_ms != 0 && Instant::now() >= drain.epoch + Duration::from_millis(deadline_ms) {
            return;
        }
    }
}
