//! The `serve` lifetime: bind, start the fixed worker pool, and shut down in order.
//!
//! Shutdown order (SPEC 10): draining turns `/health/ready` to 503 and makes every response
//! close its connection; workers keep serving what is queued until the queue is quiet or
//! `SHUTDOWN_GRACE_SECONDS` ran out; the workers are joined; dropping the last `Server` closes
//! the listener. The caller then writes profiles and exits.
//!
//! Connections (SPEC 3.1): the fd soft limit is raised to the hard limit, the connection cap
//! is derived from it unless `MAX_CONNECTIONS` sets it, and every socket wait gets the
//! configured deadline; the vendored tiny_http enforces them (`src/vendor/README.md`).

mod adapter;
mod pool;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::app::App;
use crate::config::ServerConfig;
use crate::metrics::ConnectionStats;

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
    let limits = limits(&app.config.server, crate::process::raise_fd_limit());
    let listen = tiny_http::ConfigListenAddr::from_socket_addrs(bind.as_str()).map_err(|err| {
        ServeError::Bind {
            addr: bind.clone(),
            cause: err.to_string(),
        }
    })?;
    let server = tiny_http::Server::new(tiny_http::ServerConfig {
        addr: listen,
        limits,
        urgent: Some(is_urgent),
    })
    .map_err(|err| ServeError::Bind {
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
    // Weak: the App outlives the listener, which must close at shutdown.
    let weak: Weak<tiny_http::Server> = Arc::downgrade(&server);
    app.set_connection_stats(Box::new(move || {
        weak.upgrade()
            .map(|server| connection_stats(&server))
            .unwrap_or_default()
    }));
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

/// Room left for other descriptors besides client connections: Kong connections (one per
/// worker at most, twice for the retry), profile files, logs, the listener.
const FD_RESERVE: u64 = 128;
/// The default cap is never below this, whatever the fd limit says.
const MIN_DEFAULT_CONNECTIONS: u64 = 1024;

/// The connection layer's limits from the config; `fd_limit` is the soft limit in force.
fn limits(server: &ServerConfig, fd_limit: u64) -> tiny_http::Limits {
    let connections = &server.connections;
    let max_connections = connections.max_connections.unwrap_or_else(|| {
        default_max_connections(
            fd_limit,
            server.workers,
            crate::process::kernel_thread_limit(),
        )
    });
    log::info!(
        "connections: at most {max_connections} (fd limit {fd_limit}); timeouts: head {:?}, keep-alive {:?}, body {:?}, write {:?}",
        connections.header_timeout,
        connections.keepalive_timeout,
        connections.body_timeout,
        connections.write_timeout,
    );
    if connections.keepalive_timeout <= Duration::from_secs(60) {
        log::warn!(
            "HTTP_KEEPALIVE_TIMEOUT_MS is not above Kong's 60 s upstream_keepalive_idle_timeout: Kong may send a request on a connection this service is closing"
        );
    }
    tiny_http::Limits {
        header_timeout: connections.header_timeout,
        idle_timeout: connections.keepalive_timeout,
        body_timeout: connections.body_timeout,
        write_timeout: connections.write_timeout,
        max_connections,
        ..tiny_http::Limits::default()
    }
}

/// The fd limit less `FD_RESERVE` and two descriptors per worker, at most half the kernel's
/// thread limit (each connection has a thread), and at least `MIN_DEFAULT_CONNECTIONS`.
fn default_max_connections(fd_limit: u64, workers: usize, thread_limit: Option<u64>) -> usize {
    let by_fds = fd_limit.saturating_sub(FD_RESERVE + 2 * workers as u64);
    let by_threads = thread_limit.map_or(u64::MAX, |limit| limit / 2);
    by_fds.min(by_threads).max(MIN_DEFAULT_CONNECTIONS) as usize
}

/// Health, metrics and debug routes take the urgent lane: never behind Kong or a full pool.
fn is_urgent(target: &str) -> bool {
    let path = target.split('?').next().unwrap_or(target);
    matches!(
        path,
        "/health" | "/health/live" | "/health/ready" | "/health/telemetry" | "/metrics"
    ) || path.starts_with("/debug/")
}

fn connection_stats(server: &tiny_http::Server) -> ConnectionStats {
    let stats = server.stats();
    ConnectionStats {
        open: stats.open as u64,
        max: server.limits().max_connections as u64,
        accepted: stats.accepted,
        accept_errors: stats.accept_errors,
        thread_failures: stats.thread_failures,
        closed: tiny_http::Closed::ALL.map(|why| (why.label(), stats.closed(why))),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_follows_the_fd_and_thread_limits() {
        assert_eq!(default_max_connections(20_000, 8, Some(32_768)), 16_384);
        assert_eq!(default_max_connections(20_000, 8, None), 20_000 - 128 - 16);
        assert_eq!(default_max_connections(1024, 8, Some(32_768)), 1024);
    }

    #[test]
    fn operational_routes_are_urgent() {
        for path in [
            "/health",
            "/health/live?x=1",
            "/health/ready",
            "/health/telemetry",
            "/metrics?format=prometheus",
            "/debug/pprof/",
        ] {
            assert!(is_urgent(path), "{path}");
        }
        for path in ["/tokens", "/tokens/validate", "/", "/healthz", "/debug"] {
            assert!(!is_urgent(path), "{path}");
        }
    }
}
