//! A Kong Admin API simulator, faithful to `KONG.md` section 1: consumers and JWT credentials
//! with Kong's paths, status codes, error bodies, pagination and headers, also under Konnect's
//! `/core-entities` prefix. Run standalone by `auth-service kong-sim` or embedded in-process by
//! `serve --kong-sim`; both go through `start`.
//!
//! This file owns the public API and the server loop: a fixed pool of worker threads over one
//! `Arc<tiny_http::Server>`, the admin-token gate, injected latency and failures, and the
//! simulator-only `/_sim/stats` and `/_sim/reset-stats` hooks (request counts per route
//! template and the last `traceparent` headers received, exempt from token, latency and
//! failures). It is the only place in `kong_sim` that
//! names tiny_http types. The store mutex is never held while sleeping; a panicking handler
//! answers 500 and the worker carries on. Secrets are never logged.
//!
//! Module map: `routes` (request → response), `store` (tables and their rules), `schema`
//! (entity validation and DAO error bodies), `seed` (initial data), `codec` (wire encodings).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::config::Secret;
use crate::ids;
use crate::timefmt;

pub mod codec;
pub mod routes;
pub mod schema;
pub mod seed;
pub mod store;

use routes::{Ambient, NodeInfo, Resource, SimRequest, SimResponse};
use store::Store;

/// Worker threads per simulator: enough for a service's worker pool hitting it concurrently
/// while `--latency-ms` holds some of them asleep.
const WORKERS: usize = 8;

/// How to run a simulator.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub host: String,
    /// 0 picks a free port; `KongSim::url` tells which.
    pub port: u16,
    /// Default-seed consumers (ignored with `seed_file`).
    pub consumers: usize,
    /// When set, Admin API requests need `Kong-Admin-Token: T` or `Authorization: Bearer T`.
    pub admin_token: Option<Secret>,
    /// Sleep before answering each Admin API request.
    pub latency_ms: u64,
    /// Fraction (0.0–1.0) of Admin API requests answered with 503.
    pub fail_rate: f64,
    pub seed_file: Option<PathBuf>,
}

impl SimOptions {
    /// For in-process use: 127.0.0.1 on a free port, 10 consumers, no token, latency or failures.
    pub fn embedded() -> SimOptions {
        SimOptions {
            host: "127.0.0.1".to_owned(),
            port: 0,
            consumers: 10,
            admin_token: None,
            latency_ms: 0,
            fail_rate: 0.0,
            seed_file: None,
        }
    }
}

/// A seeded consumer and its first credential; `key` and `secret` are empty for a consumer
/// without one (the anonymous consumer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeededConsumer {
    pub id: String,
    pub username: String,
    pub key: String,
    pub secret: String,
}

/// Why a simulator could not start.
#[derive(Debug)]
pub enum SimError {
    /// An option outside its accepted range; `flag` is the CLI spelling.
    BadOption {
        flag: &'static str,
        problem: String,
    },
    SeedRead {
        file: String,
        source: std::io::Error,
    },
    SeedInvalid {
        file: String,
        problem: String,
    },
    SeedBadId {
        file: String,
        id: String,
    },
    Bind {
        address: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    Spawn(std::io::Error),
}

impl SimError {
    /// Whether the error is the user's configuration (exit 2) rather than a runtime failure.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SimError::BadOption { .. }
                | SimError::SeedRead { .. }
                | SimError::SeedInvalid { .. }
                | SimError::SeedBadId { .. }
        )
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::BadOption { flag, problem } => write!(f, "{flag}: {problem}"),
            SimError::SeedRead { file, .. } => write!(f, "cannot read seed file {file}"),
            SimError::SeedInvalid { file, problem } => {
                write!(f, "seed file {file} is invalid: {problem}")
            }
            SimError::SeedBadId { file, id } => {
                write!(f, "seed file {file}: id {id:?} is not a uuid")
            }
            SimError::Bind { address, .. } => write!(f, "cannot listen on {address}"),
            SimError::Spawn(_) => write!(f, "cannot start simulator threads"),
        }
    }
}

impl std::error::Error for SimError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SimError::SeedRead { source, .. } => Some(source),
            SimError::Bind { source, .. } => Some(source.as_ref()),
            SimError::Spawn(source) => Some(source),
            _ => None,
        }
    }
}

/// A running simulator. Dropping it shuts it down too; `shutdown` makes that explicit.
pub struct KongSim {
    server: Arc<tiny_http::Server>,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    url: String,
    seeded: Vec<SeededConsumer>,
}

impl KongSim {
    /// `http://IP:PORT`, connectable (a wildcard listen address reads as loopback).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The seeded consumers in seed order (default seed: test consumers, then `anonymous`).
    pub fn consumers(&self) -> Vec<SeededConsumer> {
        self.seeded.clone()
    }

    /// Stops serving: queued requests are still answered, then every worker is joined.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // unblock() releases one waiting recv() per call, after the requests already queued.
        for _ in &self.workers {
            self.server.unblock();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Drop for KongSim {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Validates `options`, seeds the store, binds and starts the workers.
pub fn start(options: SimOptions) -> Result<KongSim, SimError> {
    if !options.fail_rate.is_finite() || !(0.0..=1.0).contains(&options.fail_rate) {
        return Err(SimError::BadOption {
            flag: "--fail-rate",
            problem: format!(
                "{} is not a fraction between 0 and 1 (0.1 fails one request in ten)",
                options.fail_rate
            ),
        });
    }
    let now = timefmt::unix_now() as i64;
    let (store, seeded) = match &options.seed_file {
        Some(path) => seed::from_file(path, now)?,
        None => seed::default_seed(options.consumers, now),
    };
    let address = format!("{}:{}", options.host, options.port);
    let server = sim_server(&options.host, options.port).map_err(|source| SimError::Bind {
        address: address.clone(),
        source,
    })?;
    let bound = server.server_addr().to_ip().ok_or_else(|| SimError::Bind {
        address: address.clone(),
        source: "not an ip listener".into(),
    })?;
    let url = format!("http://{}", connectable(bound));
    let shared = Arc::new(Shared {
        store: Mutex::new(store),
        stats: Mutex::new(BTreeMap::new()),
        traceparents: Mutex::new(VecDeque::new()),
        total: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
        node: NodeInfo {
            node_id: ids::uuid_v4().to_string(),
            hostname: hostname(),
            pid: std::process::id(),
            listen: bound.to_string(),
        },
        admin_token: options.admin_token.clone(),
        latency: Duration::from_millis(options.latency_ms),
        fail_rate: options.fail_rate,
    });
    let server = Arc::new(server);
    let mut sim = KongSim {
        server: Arc::clone(&server),
        shared: Arc::clone(&shared),
        workers: Vec::with_capacity(WORKERS),
        url,
        seeded,
    };
    for index in 0..WORKERS {
        let server = Arc::clone(&server);
        let shared = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name(format!("kong-sim-{index}"))
            .spawn(move || work(&server, &shared))
            .map_err(SimError::Spawn)?;
        sim.workers.push(worker);
    }
    log::debug!(
        "kong-sim listening on {} ({} consumers, {} credentials)",
        sim.url,
        shared.lock_store().consumer_count(),
        shared.lock_store().credential_count()
    );
    Ok(sim)
}

const TRACEPARENTS_KEPT: usize = 32;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// State shared by the workers. `store` and `stats` are separate locks so counting never
/// waits on a write.
struct Shared {
    store: Mutex<Store>,
    stats: Mutex<BTreeMap<String, u64>>,
    /// The last `TRACEPARENTS_KEPT` `traceparent` values, oldest first, so a test can check
    /// that trace context reaches Kong.
    traceparents: Mutex<VecDeque<String>>,
    total: AtomicU64,
    stopping: AtomicBool,
    node: NodeInfo,
    admin_token: Option<Secret>,
    latency: Duration,
    fail_rate: f64,
}

impl Shared {
    // A panic while holding a lock leaves the data as consistent as the store's single-step
    // writes make it; keep serving rather than failing every later request.
    fn lock_store(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_stats(&self) -> MutexGuard<'_, BTreeMap<String, u64>> {
        self.stats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Gates (count, latency, failure, token) then the Admin API itself.
    fn answer(&self, request: &SimRequest) -> SimResponse {
        let target = routes::classify(&request.url);
        if let Some(target) = &target
            && matches!(
                target.resource,
                Resource::SimStats | Resource::SimResetStats
            )
        {
            return self.sim_hook(request, target.resource);
        }
        let template = target
            .as_ref()
            .map_or_else(|| "(unknown)".to_owned(), |target| target.template());
        *self
            .lock_stats()
            .entry(format!("{} {template}", request.method))
            .or_default() += 1;
        if let Some(traceparent) = request.header("traceparent") {
            let mut kept = lock(&self.traceparents);
            if kept.len() == TRACEPARENTS_KEPT {
                kept.pop_front();
            }
            kept.push_back(traceparent.to_owned());
        }
        let total_requests = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.latency.is_zero() {
            std::thread::sleep(self.latency);
        }
        if self.fail_rate > 0.0 && random_fraction() < self.fail_rate {
            log::debug!(
                "kong-sim: injected failure for {} {template}",
                request.method
            );
            return SimResponse::message(503, "An unexpected error occurred");
        }
        if !self.authorized(request) {
            let konnect = target.as_ref().is_some_and(|target| target.konnect);
            return if konnect {
                SimResponse::json(401, &json!({"message": "Unauthorized", "status": 401}))
            } else {
                SimResponse::message(401, "Invalid RBAC credentials")
            };
        }
        let Some(target) = target else {
            return SimResponse::not_found();
        };
        let ambient = Ambient {
            node: &self.node,
            now: timefmt::unix_now() as i64,
            total_requests,
        };
        let response = routes::respond(&mut self.lock_store(), &ambient, request, &target);
        log::debug!(
            "kong-sim: {} {template} -> {}",
            request.method,
            response.status
        );
        response
    }

    fn authorized(&self, request: &SimRequest) -> bool {
        let Some(token) = &self.admin_token else {
            return true;
        };
        let bearer = request
            .header("authorization")
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        request.header("kong-admin-token") == Some(token.expose()) || bearer == Some(token.expose())
    }

    fn sim_hook(&self, request: &SimRequest, resource: Resource) -> SimResponse {
        match (resource, request.method.as_str()) {
            (Resource::SimStats, "GET" | "HEAD") => {
                let requests = self.lock_stats().clone();
                let total: u64 = requests.values().sum();
                let traceparents: Vec<String> = lock(&self.traceparents).iter().cloned().collect();
                SimResponse::json(
                    200,
                    &json!({"requests": requests, "total": total, "traceparents": traceparents}),
                )
            }
            (Resource::SimResetStats, "POST") => {
                self.lock_stats().clear();
                lock(&self.traceparents).clear();
                SimResponse::empty(204)
            }
            _ => SimResponse::method_not_allowed(),
        }
    }
}

/// The simulator's listener: the connection layer's defaults, except that Admin API bodies
/// (credentials, consumers) are read up to 1 MiB, as Kong's own body limit allows.
fn sim_server(
    host: &str,
    port: u16,
) -> Result<tiny_http::Server, Box<dyn std::error::Error + Send + Sync>> {
    tiny_http::Server::new(tiny_http::ServerConfig {
        addr: tiny_http::ConfigListenAddr::from_socket_addrs((host, port))?,
        limits: tiny_http::Limits {
            body_read_max: 1024 * 1024,
            max_connections: 4096,
            ..tiny_http::Limits::default()
        },
        urgent: None,
    })
}

/// One worker: answer requests until `stop` sets the flag and unblocks it.
fn work(server: &tiny_http::Server, shared: &Shared) {
    loop {
        match server.recv() {
            Ok(request) => serve_one(shared, request),
            Err(err) => {
                if shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
                log::debug!("kong-sim: accept failed: {err}");
            }
        }
    }
}

fn serve_one(shared: &Shared, mut request: tiny_http::Request) {
    let started = Instant::now();
    let mut body = Vec::new();
    let read = request
        .as_reader()
        .take(routes::MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body);
    let sim_request = SimRequest {
        method: request.method().as_str().to_owned(),
        url: request.url().to_owned(),
        headers: request
            .headers()
            .iter()
            .map(|header| (header.field.to_string(), header.value.to_string()))
            .collect(),
        body,
    };
    let response = if read.is_err() {
        SimResponse::message(400, "Bad request")
    } else if sim_request.body.len() > routes::MAX_BODY_BYTES {
        SimResponse::message(413, "Request size limit exceeded")
    } else {
        catch_unwind(AssertUnwindSafe(|| shared.answer(&sim_request))).unwrap_or_else(|_| {
            log::error!("kong-sim: handler panicked on {}", sim_request.method);
            SimResponse::message(500, "An unexpected error occurred")
        })
    };
    let origin = sim_request.header("origin").unwrap_or("*").to_owned();
    let latency_ms = started.elapsed().as_millis().to_string();
    let mut reply = tiny_http::Response::from_data(response.body)
        .with_status_code(response.status)
        // Kong always sends Content-Length; tiny_http would chunk bodies over 32 KiB.
        .with_chunked_threshold(usize::MAX);
    let extra = [
        ("Server", format!("kong/{}", routes::KONG_VERSION)),
        ("X-Kong-Admin-Latency", latency_ms),
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Credentials", "true".to_owned()),
    ];
    let headers = response
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .chain(extra.iter().map(|(name, value)| (*name, value.as_str())));
    for (name, value) in headers {
        if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            reply.add_header(header);
        }
    }
    if let Err(err) = request.respond(reply) {
        log::debug!("kong-sim: client went away: {err}");
    }
}

/// A uniform fraction in [0, 1) from the OS generator (53 bits, an f64's mantissa).
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    ids::fill_random(&mut bytes);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// A wildcard listen address cannot be dialled; loopback of the same family can.
fn connectable(bound: SocketAddr) -> SocketAddr {
    match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), bound.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), bound.port())
        }
        _ => bound,
    }
}

fn hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the pointer and length describe `buffer`, which outlives the call.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return "localhost".to_owned();
    }
    let end = buffer
        .iter()
        .position(|byte| *byte == 0)
        .unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn embedded_sim_serves_and_shuts_down() {
        let sim = start(SimOptions::embedded()).unwrap();
        assert!(sim.url().starts_with("http://127.0.0.1:"));
        let consumers = sim.consumers();
        assert_eq!(consumers.len(), 11);
        assert_eq!(consumers[0].key, "test-key-001");
        let address = sim.url().trim_start_matches("http://").to_owned();
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .write_all(b"GET /consumers/test-consumer-001/jwt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.contains("Server: kong/3.9.1"), "{reply}");
        assert!(reply.contains("\"key\":\"test-key-001\""), "{reply}");
        sim.shutdown();
    }

    #[test]
    fn fail_rate_is_validated() {
        for bad in [-0.1, 1.5, f64::NAN] {
            let options = SimOptions {
                fail_rate: bad,
                ..SimOptions::embedded()
            };
            let err = start(options).err().unwrap();
            assert!(err.is_usage());
            assert!(err.to_string().starts_with("--fail-rate"), "{err}");
        }
    }

    #[test]
    fn random_fraction_is_a_fraction() {
        for _ in 0..1000 {
            let value = random_fraction();
            assert!((0.0..1.0).contains(&value));
        }
    }
}
