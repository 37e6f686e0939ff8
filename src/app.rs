//! `App`: the state every request handler shares, built once at start-up and passed down as
//! `Arc<App>`. No globals: whatever a handler needs is a field here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crossbeam_channel::Receiver;

use crate::config::ServiceConfig;
use crate::jwt::Issuer;
use crate::kong::CredentialStore;
use crate::metrics::{ConnectionStats, Metrics};
use crate::monitor::{Sample, SampleSender, SlaState};
use crate::profiling::{Profiler, ProfilerSettings};
use crate::telemetry::Telemetry;

pub struct App {
    pub config: ServiceConfig,
    pub issuer: Issuer,
    pub store: CredentialStore,
    pub metrics: Arc<Metrics>,
    /// The process's one profiler: `/debug/*`, exit profiles and the SLA monitor all go
    /// through it.
    pub profiler: Arc<Profiler>,
    /// The workers' end of the SLA monitor's channel. It is the last sender: dropping the
    /// `App` after the workers are joined is what lets the monitor see `Disconnected`.
    pub samples: SampleSender,
    /// What the SLA monitor publishes for `/health` and `/metrics`.
    pub sla: Arc<SlaState>,
    /// OpenTelemetry export; inert until `Telemetry::start`, and in console mode.
    pub telemetry: Telemetry,
    /// The monitor's end, until `monitor::start` takes it.
    sample_receiver: Mutex<Option<Receiver<Sample>>>,
    pub started: Instant,
    draining: AtomicBool,
    /// The connection layer's counters, readable once the server started.
    connection_stats: OnceLock<ConnectionStatsFn>,
}

type ConnectionStatsFn = Box<dyn Fn() -> ConnectionStats + Send + Sync>;

impl App {
    /// Fails only when a thread of the Kong store cannot be started.
    pub fn new(config: ServiceConfig) -> std::io::Result<App> {
        let metrics = Arc::new(Metrics::default());
        let store = CredentialStore::new(
            &config.kong,
            &config.cache,
            &config.breaker,
            config.health_kong_cache,
            config.server.workers,
            Arc::clone(&metrics),
        )?;
        let profiler = Profiler::new(ProfilerSettings {
            cpu_hz: config.profiling.cpu_hz,
            manual_dir: config.profiling.output_dir.clone(),
            ..ProfilerSettings::default()
        });
        let (samples, sample_receiver) = crate::monitor::sample::channel(&config.sla.thresholds);
        Ok(App {
            issuer: Issuer::new(&config.jwt),
            profiler,
            samples,
            sla: Arc::new(SlaState::new(&config.sla)),
            telemetry: Telemetry::new(&config.telemetry),
            sample_receiver: Mutex::new(Some(sample_receiver)),
            store,
            metrics,
            started: Instant::now(),
            draining: AtomicBool::new(false),
            connection_stats: OnceLock::new(),
            config,
        })
    }

    /// True once shutdown began: readiness answers 503 and responses close their connection.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Hands the sample receiver to the monitor thread (once).
    pub fn take_sample_receiver(&self) -> Option<Receiver<Sample>> {
        self.sample_receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Set once by `server::start`.
    pub fn set_connection_stats(&self, read: ConnectionStatsFn) {
        let _ = self.connection_stats.set(read);
    }

    /// Zeros before the server started.
    pub fn connection_stats(&self) -> ConnectionStats {
        self.connection_stats
            .get()
            .map(|read| read())
            .unwrap_or_default()
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}
