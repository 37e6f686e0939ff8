//! The `serve` lifetime: bind, start the fixed worker pool, and shut down in order.
//!
//! Shutdown order (SPEC 10): draining turns `/health/ready` to 503 and makes every response
//! close its connection; workers keep serving what is queued until the queue is quiet or
//! `SHUTDOWN_GRACE_SECONDS` ran out; the workers are joined; dropping the last `Server` closes
//! the listener. The caller then writes profiles and exits.

mod adapter;
mod pool;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::App;

#[derive(Debug)]
pub enum ServeError {
    Bind { addr: String, cause: String },
    Spawn(std::io::Error),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Bind { addr, cause } => write!(f, "cannot listen on {addr}: {cause}"),
            ServeError::Spawn(err) => write!(f, "cannot start a worker thread: {err}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    app: Arc<App>,
    server: Arc<tiny_http::Server>,
    pool: pool::Pool,
}

/// Binds `host:port` and starts `workers` threads. Start-up never waits for Kong.
pub fn start(app: Arc<App>) -> Result<Running, ServeError> {
    let bind = format!("{}:{}", app.config.server.host, app.config.server.port);
    let server = tiny_http::Server::http(&bind).map_err(|err| ServeError::Bind {
        addr: bind.clone(),
        cause: err.to_string(),
    })?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| ServeError::Bind {
            addr: bind.clone(),
            cause: "not an IP listener".into(),
        })?;
    let server = Arc::new(server);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool =
        pool::spawn(&app, &server, app.config.server.workers, cores).map_err(ServeError::Spawn)?;
    Ok(Running {
        addr,
        app,
        server,
        pool,
    })
}

/// What shutdown managed to do.
pub struct Stopped {
    /// Workers still busy when the grace period ended (their requests were abandoned).
    pub abandoned_workers: usize,
}

impl Running {
    /// Drains and stops; returns once every worker exited or the grace period ran out.
    pub fn shutdown(self) -> Stopped {
        let grace = self.app.config.server.shutdown_grace;
        let deadline = Instant::now() + grace;
        self.app.start_draining();
        self.pool.begin_drain(deadline);
        let mut abandoned = 0;
        for worker in self.pool.workers {
            while !worker.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if worker.is_finished() {
                let _ = worker.join();
            } else {
                abandoned += 1;
            }
        }
        // Closes the listener once the workers' handles are gone too.
        drop(self.server);
        if abandoned > 0 {
            log::warn!(
                "{abandoned} workers were still busy after SHUTDOWN_GRACE_SECONDS ({grace:?})"
            );
        }
        Stopped {
            abandoned_workers: abandoned,
        }
    }
}
