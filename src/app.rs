//! `App`: the state every request handler shares, built once at start-up and passed down as
//! `Arc<App>`. No globals: whatever a handler needs is a field here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::config::ServiceConfig;
use crate::jwt::Issuer;
use crate::kong::CredentialStore;
use crate::metrics::Metrics;

pub struct App {
    pub config: ServiceConfig,
    pub issuer: Issuer,
    pub store: CredentialStore,
    pub metrics: Arc<Metrics>,
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
        App {
            issuer: Issuer::new(&config.jwt),
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
