//! `App`: the state every request handler shares, built once at start-up and passed down as
//! `Arc<App>`. No globals: whatever a handler needs is a field here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::config::ServiceConfig;
use crate::jwt::Issuer;
use crate::kong::CredentialStore;
use crate::metrics::Metrics;
use crate::profiling::{Profiler, ProfilerSettings};

pub struct App {
    pub config: ServiceConfig,
    pub issuer: Issuer,
    pub store: CredentialStore,
    pub metrics: Arc<Metrics>,
    /// The process's one profiler: `/debug/*`, exit profiles and the SLA monitor all go
    /// through it.
    pub profiler: Arc<Profiler>,
    pub started: Instant,
    draining: AtomicBool,
}

impl App {
    pub fn new(config: ServiceConfig) -> App {
        let metrics = Arc::new(Metrics::default());
        let store = CredentialStore::new(
            &config.kong,
            &config.cache,
            &config.breaker,
            config.health_kong_cache,
            config.server.workers,
            Arc::clone(&metrics),
        );
        let profiler = Profiler::new(ProfilerSettings {
            cpu_hz: config.profiling.cpu_hz,
            manual_dir: config.profiling.output_dir.clone(),
            ..ProfilerSettings::default()
        });
        App {
            issuer: Issuer::new(&config.jwt),
            profiler,
            store,
            metrics,
            started: Instant::now(),
            draining: AtomicBool::new(false),
            config,
        }
    }

    /// True once shutdown began: readiness answers 503 and responses close their connection.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}
