//! The fixed worker pool: N threads over one `Arc<tiny_http::Server>`, each taking requests off
//! its queue and answering them through the adapter.
//!
//! Workers never exit on their own except at shutdown; a panicking handler is contained by the
//! adapter, so one bad request cannot shrink the pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::app::App;
use crate::server::adapter;

/// In drain mode a worker leaves after this long without a request.
const DRAIN_QUIET: Duration = Duration::from_millis(150);

/// The drain deadline as milliseconds after `epoch`, shared by all workers; 0 = serving.
struct Drain {
    epoch: Instant,
    deadline_ms: AtomicU64,
}

pub struct Pool {
    drain: Arc<Drain>,
    pub workers: Vec<JoinHandle<()>>,
}

pub fn spawn(
    app: &Arc<App>,
    server: &Arc<tiny_http::Server>,
    count: usize,
) -> std::io::Result<Pool> {
    let drain = Arc::new(Drain {
        epoch: Instant::now(),
        deadline_ms: AtomicU64::new(0),
    });
    let workers = (0..count)
        .map(|index| {
            let app = Arc::clone(app);
            let server = Arc::clone(server);
            let drain = Arc::clone(&drain);
            thread::Builder::new()
                .name(format!("worker-{index}"))
                .spawn(move || work(&app, &server, &drain))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok(Pool { drain, workers })
}

impl Pool {
    /// Switches the workers to drain mode and wakes those blocked on an empty queue.
    pub fn begin_drain(&self, server: &tiny_http::Server, deadline: Instant) {
        let ms = deadline
            .saturating_duration_since(self.drain.epoch)
            .as_millis()
            .max(1) as u64;
        self.drain.deadline_ms.store(ms, Ordering::SeqCst);
        // Unblock tokens queue behind requests already waiting, so those are still served.
        for _ in 0..self.workers.len() {
            server.unblock();
        }
    }
}

fn work(app: &App, server: &tiny_http::Server, drain: &Drain) {
    loop {
        let deadline_ms = drain.deadline_ms.load(Ordering::SeqCst);
        let request = if deadline_ms == 0 {
            match server.recv() {
                Ok(request) => request,
                // An unblock token, or an accept error: re-check the drain flag either way.
                Err(_) => continue,
            }
        } else {
            if Instant::now() >= drain.epoch + Duration::from_millis(deadline_ms) {
                return;
            }
            match server.recv_timeout(DRAIN_QUIET) {
                Ok(Some(request)) => request,
                Ok(None) => return,
                Err(_) => continue,
            }
        };
        adapter::serve(app, request, Instant::now());
    }
}
