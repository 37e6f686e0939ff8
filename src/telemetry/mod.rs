//! OpenTelemetry over OTLP/HTTP protobuf (SPEC 11): a server span per request that
//! continues the caller's W3C trace, a client span per Kong call that sends `traceparent` on,
//! and the `/metrics` series exported every `OTEL_METRIC_EXPORT_INTERVAL`.
//!
//! Owns the SDK's tracer and meter providers (and so their two export threads), the export
//! statistics behind `/health/telemetry`, and the thread-local request context the Kong
//! client reads (`trace`). Built from `config::TelemetryConfig` only.
//!
//! Must not cost a request anything it can avoid, and never anything when the collector
//! fails:
//! - `TELEMETRY_MODE=console` (the default without an endpoint) builds nothing: no provider,
//!   no thread, no socket; per request the adapter pays one branch on an empty `OnceLock`.
//! - Exporting, a request builds its span and ends it into a bounded queue; export runs on
//!   the SDK's own threads with our blocking `ureq` client (`transport`), one timeout per
//!   request, no retries. A full queue drops the span and counts it (`pipeline::SpanGate`).
//! - Metrics are read from `metrics::Metrics`' atomics when the reader collects
//!   (`instruments`); the request path records nothing for OTLP.
//! - No async runtime: the SDK's batch processor and periodic reader block on the export
//!   future on their own threads, and our client finishes the request before returning it.
//!
//! Files: `pipeline` builds the providers, `transport` is the HTTP client, `instruments` the
//! metrics, `trace` the spans, `stats` the export counts.

mod instruments;
mod pipeline;
pub mod stats;
mod trace;
mod transport;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{Value, json};

use crate::app::App;
use crate::config::{TelemetryConfig, TelemetryMode};
use crate::http::Request;
pub use pipeline::PipelineError;
use stats::{Signal, SignalStats};
pub use trace::{KongSpan, Note, RequestTrace, note};

pub struct Telemetry {
    config: TelemetryConfig,
    traces: Arc<SignalStats>,
    metrics: Arc<SignalStats>,
    /// Set once by `start` when the mode exports; empty in console mode.
    active: OnceLock<Active>,
}

struct Active {
    tracing: Arc<trace::Tracing>,
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
}

/// What `POST /debug/metrics/export` reports.
pub struct FlushReport {
    /// Export requests made during the flush (both signals).
    pub exports: u64,
    pub spans: u64,
    pub duration: std::time::Duration,
    /// `None` when both flushes succeeded.
    pub error: Option<String>,
}

impl Telemetry {
    /// Starts nothing; `start` does, once the `App` exists.
    pub fn new(config: &TelemetryConfig) -> Telemetry {
        Telemetry {
            traces: Arc::new(SignalStats::new(Signal::Traces, &config.traces_endpoint)),
            metrics: Arc::new(SignalStats::new(Signal::Metrics, &config.metrics_endpoint)),
            config: config.clone(),
            active: OnceLock::new(),
        }
    }

    /// Builds the pipelines and registers the metric instruments (exporting modes only).
    /// `app` is the `App` that owns this `Telemetry`.
    pub fn start(&self, app: &Arc<App>) -> Result<(), PipelineError> {
        if !self.config.mode.exports() || self.active.get().is_some() {
            return Ok(());
        }
        let (tracer_provider, tracer) = pipeline::tracer_provider(&self.config, &self.traces)?;
        let meter_provider = pipeline::meter_provider(&self.config, &self.metrics)?;
        instruments::register(&meter_provider.meter("auth-service"), app);
        let _ = self.active.set(Active {
            tracing: Arc::new(trace::Tracing::new(tracer)),
            tracer_provider,
            meter_provider,
        });
        log::info!(
            "telemetry: {} mode, traces to {}, metrics to {} every {} ms, sampler {}",
            self.config.mode,
            self.config.traces_endpoint,
            self.config.metrics_endpoint,
            self.config.metric_interval.as_millis(),
            self.config.sampler.name()
        );
        Ok(())
    }

    /// The request's server span, when exporting; `None` (one branch) in console mode. The
    /// span is the thread's current trace context until the returned guard is dropped.
    #[inline]
    pub fn start_request(
        &self,
        request: &Request<'_>,
        received_at: Instant,
    ) -> Option<RequestTrace> {
        let active = self.active.get()?;
        Some(active.tracing.start_request(request, received_at))
    }

    pub fn mode(&self) -> TelemetryMode {
        self.config.mode
    }

    pub fn is_exporting(&self) -> bool {
        self.active.get().is_some()
    }

    /// Exports what is queued and one metrics collection now, waiting for both.
    pub fn flush(&self) -> FlushReport {
        let started = Instant::now();
        let (exports, spans) = (self.export_count(), self.spans_exported());
        let error = match self.active.get() {
            None => None,
            Some(active) => {
                let traces = active.tracer_provider.force_flush();
                let metrics = active.meter_provider.force_flush();
                match (traces, metrics) {
                    (Ok(()), Ok(())) => None,
                    (Err(err), _) => Some(format!("traces: {err}")),
                    (_, Err(err)) => Some(format!("metrics: {err}")),
                }
            }
        };
        FlushReport {
            exports: self.export_count() - exports,
            spans: self.spans_exported() - spans,
            duration: started.elapsed(),
            error,
        }
    }

    /// Flushes and stops both pipelines and joins their threads; called before the `App`
    /// is dropped, so no metric callback outlives it.
    pub fn shutdown(&self) {
        if let Some(active) = self.active.get() {
            if let Err(err) = active.tracer_provider.shutdown() {
                log::warn!("telemetry: span pipeline shutdown: {err}");
            }
            if let Err(err) = active.meter_provider.shutdown() {
                log::warn!("telemetry: metric pipeline shutdown: {err}");
            }
        }
    }

    /// `disabled` in console mode; `degraded` while a signal's latest export failed or
    /// spans were dropped within the last `stats::RECENT_DROP`; else `healthy`.
    pub fn status(&self) -> &'static str {
        if !self.is_exporting() {
            return "disabled";
        }
        let failing = [&self.traces, &self.metrics]
            .iter()
            .any(|stats| stats.status() == "failing");
        if failing || self.traces.dropped_recently() {
            "degraded"
        } else {
            "healthy"
        }
    }

    /// The body of `/health/telemetry` and `/metrics?view=telemetry|exports`.
    pub fn status_json(&self) -> Value {
        let exporting = self.is_exporting();
        let signal = |stats: &SignalStats| {
            let mut value = stats.json();
            if !exporting {
                value["status"] = Value::from("disabled");
            }
            value
        };
        let traces = self.traces.snapshot();
        let mut traces_json = signal(&self.traces);
        traces_json["spansExported"] = Value::from(traces.items_exported);
        traces_json["spansDropped"] =
            Value::from(traces.items_dropped + traces.items_dropped_backoff);
        traces_json["spansDroppedQueueFull"] = Value::from(traces.items_dropped);
        traces_json["spansDroppedBackoff"] = Value::from(traces.items_dropped_backoff);
        traces_json["backingOff"] = Value::from(self.traces.backing_off());
        traces_json["maxQueueSize"] = Value::from(self.config.max_queue_size);
        traces_json["maxExportBatchSize"] = Value::from(self.config.max_export_batch_size);
        traces_json["scheduleDelayMs"] = Value::from(self.config.schedule_delay.as_millis() as u64);
        traces_json["sampler"] = Value::from(self.config.sampler.name());
        let mut metrics_json = signal(&self.metrics);
        metrics_json["intervalMs"] = Value::from(self.config.metric_interval.as_millis() as u64);
        json!({
            "status": self.status(),
            "mode": self.config.mode.as_str(),
            "exporting": exporting,
            "protocol": "http/protobuf",
            "serviceName": self.config.service_name,
            "serviceVersion": self.config.service_version,
            "timeoutMs": self.config.timeout.as_millis() as u64,
            "traces": traces_json,
            "metrics": metrics_json,
        })
    }

    /// The `otel_*` series for `/metrics` (zeros in console mode).
    pub fn render_prometheus(&self, out: &mut String) {
        stats::render_prometheus(out, &self.traces.snapshot(), &self.metrics.snapshot());
    }

    fn export_count(&self) -> u64 {
        self.traces.snapshot().exports + self.metrics.snapshot().exports
    }

    fn spans_exported(&self) -> u64 {
        self.traces.snapshot().items_exported
    }
}
