//! The OpenTelemetry variables (SPEC 11), with the old service's names and the OTel
//! specification's meaning: `TELEMETRY_MODE`, `OTEL_EXPORTER_OTLP_*`, `OTEL_SERVICE_*`,
//! `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_BSP_*` and `OTEL_METRIC_EXPORT_INTERVAL`.
//!
//! Owns their defaults, ranges and the endpoint rule (a base endpoint gets `/v1/traces` or
//! `/v1/metrics` appended, a per-signal one is used as is). Does no I/O; `telemetry` builds
//! the exporters from the struct below and never from the environment, so what was validated
//! here is what runs.

use std::fmt;
use std::time::Duration;

use super::env::{invalid, millis, number};
use super::{ConfigError, Env, Secret};

/// The OTel specification's default OTLP/HTTP endpoint.
const DEFAULT_ENDPOINT: &str = "http://localhost:4318";

/// `TELEMETRY_MODE`. `console` is logs only (nothing exported, no thread, no socket);
/// `otlp` and `both` export traces and metrics. Our logs always go to stderr and are not
/// exported, so `both` behaves as `otlp`; it is accepted because the old service's
/// `.env.example` uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TelemetryMode {
    Console,
    Otlp,
    Both,
}

impl TelemetryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TelemetryMode::Console => "console",
            TelemetryMode::Otlp => "otlp",
            TelemetryMode::Both => "both",
        }
    }

    pub fn exports(self) -> bool {
        self != TelemetryMode::Console
    }
}

/// `OTEL_TRACES_SAMPLER` with its argument (a ratio from 0 to 1 for the ratio samplers).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SamplerConfig {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}

impl SamplerConfig {
    pub fn name(self) -> &'static str {
        match self {
            SamplerConfig::AlwaysOn => "always_on",
            SamplerConfig::AlwaysOff => "always_off",
            SamplerConfig::TraceIdRatio(_) => "traceidratio",
            SamplerConfig::ParentBasedAlwaysOn => "parentbased_always_on",
            SamplerConfig::ParentBasedAlwaysOff => "parentbased_always_off",
            SamplerConfig::ParentBasedTraceIdRatio(_) => "parentbased_traceidratio",
        }
    }
}

#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    pub mode: TelemetryMode,
    /// Full URLs, the signal path included.
    pub traces_endpoint: String,
    pub metrics_endpoint: String,
    /// `OTEL_EXPORTER_OTLP_HEADERS`; values are often API keys, so they are secrets.
    pub headers: Vec<(String, Secret)>,
    /// Per export request, connect and response included.
    pub timeout: Duration,
    pub service_name: String,
    pub service_version: String,
    pub sampler: SamplerConfig,
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
    pub schedule_delay: Duration,
    pub metric_interval: Duration,
}

impl TelemetryConfig {
    pub fn load(env: &Env) -> Result<TelemetryConfig, ConfigError> {
        let base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT");
        let traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let metrics = env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
        let any_endpoint = base.is_some() || traces.is_some() || metrics.is_some();
        let mode = match env.get("TELEMETRY_MODE") {
            None if any_endpoint => TelemetryMode::Both,
            None => TelemetryMode::Console,
            Some(text) => match text.to_ascii_lowercase().as_str() {
                "console" => TelemetryMode::Console,
                "otlp" => TelemetryMode::Otlp,
                "both" => TelemetryMode::Both,
                _ => return Err(invalid("TELEMETRY_MODE", text, "console, otlp or both")),
            },
        };
        if let Some(base) = base {
            check_url("OTEL_EXPORTER_OTLP_ENDPOINT", base)?;
        }
        let base = base.unwrap_or(DEFAULT_ENDPOINT);
        let signal_endpoint = |variable: &str, given: Option<&str>, path: &str| match given {
            Some(url) => check_url(variable, url).map(|()| url.to_owned()),
            None => Ok(format!("{}{path}", base.trim_end_matches('/'))),
        };
        let traces_endpoint =
            signal_endpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces, "/v1/traces")?;
        let metrics_endpoint = signal_endpoint(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            metrics,
            "/v1/metrics",
        )?;

        // The exporter would read these itself; only what we build is accepted.
        for (variable, accepted) in [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "none"),
        ] {
            if let Some(value) = env.get(variable)
                && !value.eq_ignore_ascii_case(accepted)
            {
                return Err(invalid(variable, value, &format!("{accepted} (or unset)")));
            }
        }
        let headers = match env.get("OTEL_EXPORTER_OTLP_HEADERS") {
            None => Vec::new(),
            Some(text) => parse_headers(text).ok_or_else(|| {
                // The value may hold credentials: name the variable, not the value.
                invalid(
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "<redacted>",
                    "comma-separated key=value pairs (header names, printable values; %XX escapes allowed)",
                )
            })?,
        };

        let sampler_name = env
            .get("OTEL_TRACES_SAMPLER")
            .unwrap_or("parentbased_always_on")
            .to_ascii_lowercase();
        let ratio = || number(env, "OTEL_TRACES_SAMPLER_ARG", 1.0f64, 0.0, 1.0);
        let sampler = match sampler_name.as_str() {
            "always_on" => SamplerConfig::AlwaysOn,
            "always_off" => SamplerConfig::AlwaysOff,
            "traceidratio" => SamplerConfig::TraceIdRatio(ratio()?),
            "parentbased_always_on" => SamplerConfig::ParentBasedAlwaysOn,
            "parentbased_always_off" => SamplerConfig::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => SamplerConfig::ParentBasedTraceIdRatio(ratio()?),
            other => {
                return Err(invalid(
                    "OTEL_TRACES_SAMPLER",
                    other,
                    "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
                ));
            }
        };

        let max_queue_size = number(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048usize, 1, 1_000_000)?;
        // The specification requires a batch no larger than the queue.
        let max_export_batch_size = number(
            env,
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            512usize.min(max_queue_size),
            1,
            max_queue_size,
        )?;

        Ok(TelemetryConfig {
            mode,
            traces_endpoint,
            metrics_endpoint,
            headers,
            timeout: millis(env, "OTEL_EXPORTER_OTLP_TIMEOUT", 10_000, 1, 600_000)?,
            service_name: env
                .get("OTEL_SERVICE_NAME")
                .unwrap_or("authentication-service")
                .to_owned(),
            service_version: env
                .get("OTEL_SERVICE_VERSION")
                .unwrap_or(env!("CARGO_PKG_VERSION"))
                .to_owned(),
            sampler,
            max_queue_size,
            max_export_batch_size,
            schedule_delay: millis(env, "OTEL_BSP_SCHEDULE_DELAY", 5000, 1, 3_600_000)?,
            metric_interval: millis(env, "OTEL_METRIC_EXPORT_INTERVAL", 60_000, 100, 86_400_000)?,
        })
    }
}

fn check_url(variable: &str, url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && url.bytes().all(|b| (b'!'..=b'~').contains(&b)) => Ok(()),
        _ => Err(invalid(variable, url, "an http:// or https:// URL")),
    }
}

/// `k=v,k2=v2` as the OTel specification has it: values percent-decoded, blanks trimmed.
/// `None` when an entry is not a valid header.
fn parse_headers(text: &str) -> Option<Vec<(String, Secret)>> {
    let mut headers = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, value) = entry.split_once('=')?;
        let name = name.trim();
        let value = percent_decode(value.trim())?;
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        let printable = |b: u8| b == b'\t' || (b' '..=b'~').contains(&b);
        if name.is_empty() || !name.bytes().all(token) || !value.bytes().all(printable) {
            return None;
        }
        headers.push((name.to_owned(), Secret(value)));
    }
    Some(headers)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl fmt::Display for TelemetryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<TelemetryConfig, ConfigError> {
        TelemetryConfig::load(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn console_by_default_and_both_once_an_endpoint_is_set() {
        let config = load(&[]).unwrap();
        assert_eq!(config.mode, TelemetryMode::Console);
        assert_eq!(config.traces_endpoint, "http://localhost:4318/v1/traces");
        assert_eq!(config.sampler, SamplerConfig::ParentBasedAlwaysOn);
        assert_eq!(config.service_name, "authentication-service");
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert_eq!(config.metric_interval, Duration::from_secs(60));
        assert_eq!(
            (config.max_queue_size, config.max_export_batch_size),
            (2048, 512)
        );
        let config = load(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]).unwrap();
        assert_eq!(config.mode, TelemetryMode::Both);
        assert_eq!(config.traces_endpoint, "http://collector:4318/v1/traces");
        assert_eq!(config.metrics_endpoint, "http://collector:4318/v1/metrics");
        let config = load(&[
            ("TELEMETRY_MODE", "console"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"),
        ]);
        assert_eq!(config.unwrap().mode, TelemetryMode::Console);
    }

    #[test]
    fn per_signal_endpoints_are_used_as_is() {
        let config = load(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://tempo/otlp/traces",
            ),
        ])
        .unwrap();
        assert_eq!(config.traces_endpoint, "https://tempo/otlp/traces");
        assert_eq!(config.metrics_endpoint, "http://base:4318/v1/metrics");
    }

    #[test]
    fn headers_samplers_and_sizes() {
        let config = load(&[
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%3Db , x-tenant=t1"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ])
        .unwrap();
        let headers: Vec<(&str, &str)> = config
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        assert_eq!(headers, [("api-key", "a=b"), ("x-tenant", "t1")]);
        assert_eq!(config.sampler, SamplerConfig::ParentBasedTraceIdRatio(0.25));
        assert_eq!(config.max_export_batch_size, 100);
        assert!(
            !format!("{config:?}").contains("a=b"),
            "header values are redacted"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases = [
            ("TELEMETRY_MODE", "jaeger"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
            ("OTEL_TRACES_SAMPLER", "jaeger_remote"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "-1"),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "10"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ];
        for (variable, value) in cases {
            let err = load(&[(variable, value)]).unwrap_err().to_string();
            assert!(err.contains(variable), "{variable}: {err}");
        }
        let err = load(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ]);
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("OTEL_TRACES_SAMPLER_ARG")
        );
        let err = load(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "11"),
        ]);
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
        );
        let err = load(&[("OTEL_EXPORTER_OTLP_HEADERS", "k=secret\u{1}")]).unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
