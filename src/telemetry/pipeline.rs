//! Builds the two SDK pipelines from `TelemetryConfig`, never from the environment: the
//! tracer provider (sampler → `SpanGate` → batch span processor → `CountingExporter` → OTLP
//! span exporter → `UreqClient`) and the meter provider (periodic reader → OTLP metric
//! exporter → `UreqClient`).
//!
//! Every SDK setting that the SDK would also read from an `OTEL_*` variable (endpoint,
//! timeout, batch sizes, delay, interval, sampler, resource) is set here explicitly, so the
//! values `config` validated win. The threads are the SDK's own: one
//! `OpenTelemetry.Traces.BatchProcessor` and one `OpenTelemetry.Metrics.PeriodicReader`.
//!
//! The batch processor's queue is bounded but its drop count is private, so `SpanGate` keeps
//! its own count of spans handed to it and not yet taken by the exporter, and drops (and
//! counts) a span at that bound instead. Export retries are off: one export is one request,
//! a failing collector costs the export thread at most one timeout per batch, and the
//! counts in `/health/telemetry` mean requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{RetryPolicy, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData,
    SpanExporter, SpanProcessor,
};

use crate::config::{SamplerConfig, TelemetryConfig};
use crate::telemetry::stats::SignalStats;
use crate::telemetry::transport::UreqClient;

#[derive(Debug)]
pub enum PipelineError {
    Traces(String),
    Metrics(String),
}

impl std::fmt::Display for PipelineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PipelineError::Traces(why) => write!(f, "cannot build the otlp span exporter: {why}"),
            PipelineError::Metrics(why) => {
                write!(f, "cannot build the otlp metric exporter: {why}")
            }
        }
    }
}

impl std::error::Error for PipelineError {}

pub fn resource(config: &TelemetryConfig) -> Resource {
    Resource::builder_empty()
        .with_service_name(config.service_name.clone())
        .with_attributes([
            KeyValue::new("service.version", config.service_version.clone()),
            KeyValue::new("telemetry.sdk.language", "rust"),
            KeyValue::new("telemetry.sdk.name", "opentelemetry"),
        ])
        .build()
}

pub fn tracer_provider(
    config: &TelemetryConfig,
    stats: &Arc<SignalStats>,
) -> Result<(SdkTracerProvider, SdkTracer), PipelineError> {
    let builder = opentelemetry_otlp::SpanExporter::builder().with_http();
    let exporter = http_export(builder, &config.traces_endpoint, config, stats)
        .build()
        .map_err(|err| PipelineError::Traces(err.to_string()))?;
    let pending = Arc::new(AtomicUsize::new(0));
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(config.max_queue_size)
        .with_max_export_batch_size(config.max_export_batch_size)
        .with_scheduled_delay(config.schedule_delay)
        .build();
    let processor = BatchSpanProcessor::builder(CountingExporter {
        inner: exporter,
        pending: Arc::clone(&pending),
        stats: Arc::clone(stats),
    })
    .with_batch_config(batch)
    .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(SpanGate {
            inner: processor,
            pending,
            capacity: config.max_queue_size,
            stats: Arc::clone(stats),
        })
        .with_sampler(sampler(config.sampler))
        .with_resource(resource(config))
        .build();
    let tracer = provider.tracer("auth-service");
    Ok((provider, tracer))
}

pub fn meter_provider(
    config: &TelemetryConfig,
    stats: &Arc<SignalStats>,
) -> Result<SdkMeterProvider, PipelineError> {
    let builder = opentelemetry_otlp::MetricExporter::builder().with_http();
    let exporter = http_export(builder, &config.metrics_endpoint, config, stats)
        .build()
        .map_err(|err| PipelineError::Metrics(err.to_string()))?;
    let reader = PeriodicReader::builder(exporter)
        .with_interval(config.metric_interval)
        .build();
    Ok(SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource(config))
        .build())
}

/// What both exporters share: our endpoint, timeout and client, and no retries.
fn http_export<B: WithExportConfig + WithHttpConfig>(
    builder: B,
    endpoint: &str,
    config: &TelemetryConfig,
    stats: &Arc<SignalStats>,
) -> B {
    builder
        .with_endpoint(endpoint)
        .with_timeout(config.timeout)
        .with_retry_policy(RetryPolicy::disabled())
        .with_http_client(UreqClient::new(
            config.timeout,
            &config.headers,
            Arc::clone(stats),
        ))
}

fn sampler(config: SamplerConfig) -> Sampler {
    match config {
        SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
        SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
        SamplerConfig::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(ratio),
        SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerConfig::ParentBasedTraceIdRatio(ratio) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
        }
    }
}

/// Bounds the spans between a request ending its span and the exporter taking it, and counts
/// what it drops; see the module header.
#[derive(Debug)]
struct SpanGate {
    inner: BatchSpanProcessor,
    pending: Arc<AtomicUsize>,
    capacity: usize,
    stats: Arc<SignalStats>,
}

impl SpanProcessor for SpanGate {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.pending.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            self.stats.record_dropped(1, false);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP span exporter, releasing the gate's count as batches are taken.
#[derive(Debug)]
struct CountingExporter {
    inner: opentelemetry_otlp::SpanExporter,
    pending: Arc<AtomicUsize>,
    stats: Arc<SignalStats>,
}

impl SpanExporter for CountingExporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.pending.fetch_sub(batch.len(), Ordering::Relaxed);
        let count = batch.len() as u64;
        // Encoding costs about as much as the spans did; a failing collector gets none of it.
        let export = if self.stats.backing_off() {
            self.stats.record_dropped(count, true);
            None
        } else {
            self.stats
                .items_exported
                .fetch_add(count, Ordering::Relaxed);
            Some(self.inner.export(batch))
        };
        async move {
            match export {
                Some(export) => export.await,
                None => Ok(()),
            }
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
