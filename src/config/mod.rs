//! Service configuration: every environment variable, `.env` entry and `serve` flag, read and
//! validated here once at start-up.
//!
//! Precedence: flags over the real environment over `.env` in the working directory. A bad
//! value is a `ConfigError` naming the variable, the value and what is accepted (exit 2).
//! No other module reads the environment; they receive the typed structs below. `Debug` of
//! anything secret prints `<redacted>`.
//!
//! `env` reads the raw values and checks each one; this file names every variable, its
//! default and its range, and builds the typed structs.

mod env;
mod telemetry;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub use env::{ConfigError, Env};
use env::{boolean, header_value, invalid, list, millis, number, seconds};
pub use telemetry::{SamplerConfig, TelemetryConfig, TelemetryMode};

/// How the service talks to Kong's Admin API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KongMode {
    ApiGateway,
    Konnect,
}

impl KongMode {
    pub fn as_str(self) -> &'static str {
        match self {
            KongMode::ApiGateway => "API_GATEWAY",
            KongMode::Konnect => "KONNECT",
        }
    }
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// So a secret can be a flag value (`--admin-token`) without ever being printed.
impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(text.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub workers: usize,
    pub max_body_bytes: u64,
    pub max_header_length: usize,
    pub cors_origin: String,
    pub cors_allow_headers: String,
    pub cors_allow_methods: String,
    pub cors_max_age_seconds: u64,
    pub shutdown_grace: Duration,
    pub connections: ConnectionConfig,
}

/// Deadlines and bounds of client connections (SPEC 3.1).
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// From the first byte of a request to the end of its head.
    pub header_timeout: Duration,
    /// Between two requests on a keep-alive connection.
    pub keepalive_timeout: Duration,
    /// For the rest of a (small) body once the head arrived.
    pub body_timeout: Duration,
    /// For the rest of a response the client is slow to take.
    pub write_timeout: Duration,
    /// `MAX_CONNECTIONS`; `None` derives the cap from the fd limit at start.
    pub max_connections: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct JwtConfig {
    pub key_claim_name: String,
    pub expiration_minutes: u64,
    pub issuer: String,
    /// One entry is serialized as a string, several as an array.
    pub audience: Vec<String>,
    pub unique_name_prefix: String,
}

#[derive(Clone, Debug)]
pub struct KongConfig {
    pub mode: KongMode,
    pub admin_url: String,
    pub admin_token: Option<Secret>,
    pub timeout: Duration,
    pub auto_provision: bool,
    pub secret_creation_max_retries: u32,
    /// `KONG_MAX_WAITING_WORKERS`: request workers that may wait on Kong at once (leaders and
    /// followers of single-flight lookups together). Default: workers − cores, at least 1, so
    /// as many workers as cores stay free for cache hits and health.
    pub max_waiting_workers: usize,
}

#[derive(Clone, Debug)]
pub struct CacheConfig {
    pub max_entries: usize,
    /// Zero disables caching: every request asks Kong.
    pub fresh_ttl: Duration,
    pub stale_tolerance: Duration,
    pub negative_ttl: Duration,
}

#[derive(Clone, Debug)]
pub struct BreakerConfig {
    pub enabled: bool,
    pub rolling_window: Duration,
    pub rolling_buckets: u32,
    pub volume_threshold: u32,
    pub error_threshold_percent: u32,
    pub reset_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct ProfilingConfig {
    /// `/debug/*` routes exist (non-production environment and `PROFILING_ENABLED` not false).
    pub debug_routes: bool,
    pub cpu_hz: i32,
    pub output_dir: PathBuf,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SlaThreshold {
    pub route: String,
    /// Milliseconds; fractions are allowed (`0.5` is 500 µs).
    pub p95_ms: f64,
    pub p99_ms: f64,
}

#[derive(Clone, Debug)]
pub struct SlaConfig {
    pub continuous_profiling: bool,
    pub auto_trigger: bool,
    pub buffer_size: usize,
    pub thresholds: Vec<SlaThreshold>,
    pub duration: Duration,
    pub output_dir: PathBuf,
    pub throttle: Duration,
    pub max_concurrent: usize,
    pub max_storage_bytes: u64,
    pub max_overhead_percent: f64,
}

/// Everything `serve` needs, validated.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub environment: String,
    pub log_level: String,
    pub server: ServerConfig,
    pub jwt: JwtConfig,
    pub kong: KongConfig,
    pub cache: CacheConfig,
    pub breaker: BreakerConfig,
    pub health_kong_cache: Duration,
    pub profiling: ProfilingConfig,
    pub sla: SlaConfig,
    pub telemetry: TelemetryConfig,
}

/// The `serve` flags that override the environment.
#[derive(Clone, Debug, Default)]
pub struct ServeOverrides {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub workers: Option<usize>,
    /// The embedded simulator's URL: with `--kong-sim` it replaces `KONG_ADMIN_URL`, and the
    /// JWT authority and audience get example defaults.
    pub kong_sim_url: Option<String>,
}

pub const DEFAULT_SLA_THRESHOLDS: &str = "/tokens=100:200,/tokens/validate=50:100,/health=400:500";
const EXAMPLE_AUTHORITY: &str = "https://auth.example.com";
const EXAMPLE_AUDIENCE: &str = "kong-api";

impl ServiceConfig {
    pub fn load(env: &Env, overrides: &ServeOverrides) -> Result<ServiceConfig, ConfigError> {
        let environment = env
            .get("APP_ENV")
            .or_else(|| env.get("NODE_ENV"))
            .unwrap_or("development")
            .to_ascii_lowercase();
        let known_environments = ["local", "development", "test", "staging", "production"];
        if !known_environments.contains(&environment.as_str()) {
            return Err(invalid(
                if env.get("APP_ENV").is_some() {
                    "APP_ENV"
                } else {
                    "NODE_ENV"
                },
                &environment,
                "one of local, development, test, staging, production",
            ));
        }
        let log_level = env.get("LOG_LEVEL").unwrap_or("info").to_ascii_lowercase();
        if !["error", "warn", "info", "debug", "trace", "off"].contains(&log_level.as_str()) {
            return Err(invalid(
                "LOG_LEVEL",
                &log_level,
                "one of error, warn, info, debug, trace, off",
            ));
        }

        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let port = match overrides.port {
            Some(port) => port,
            None => number(env, "PORT", 3000u16, 0, u16::MAX)?,
        };
        let server = ServerConfig {
            host: overrides
                .host
                .clone()
                .unwrap_or_else(|| "0.0.0.0".to_owned()),
            port,
            workers: match overrides.workers {
                Some(0) => return Err(invalid("--workers", "0", "an integer from 1 to 1024")),
                Some(workers) if workers > 1024 => {
                    return Err(invalid(
                        "--workers",
                        &workers.to_string(),
                        "an integer from 1 to 1024",
                    ));
                }
                Some(workers) => workers,
                None => (4 * cores).max(8),
            },
            max_body_bytes: number(env, "MAX_REQUEST_BODY_SIZE", 1_048_576u64, 1, 1 << 30)?,
            max_header_length: number(env, "KONG_MAX_HEADER_LENGTH", 256usize, 1, 8192)?,
            cors_origin: header_value(env, "API_CORS_ORIGIN", "*")?,
            cors_allow_headers: header_value(
                env,
                "API_CORS_ALLOW_HEADERS",
                "Content-Type, Authorization, X-Consumer-ID, X-Consumer-Username, X-Anonymous-Consumer, X-Request-Id",
            )?,
            cors_allow_methods: header_value(
                env,
                "API_CORS_ALLOW_METHODS",
                "GET, POST, DELETE, OPTIONS",
            )?,
            cors_max_age_seconds: number(env, "API_CORS_MAX_AGE", 86_400u64, 0, 31_536_000)?,
            shutdown_grace: seconds(env, "SHUTDOWN_GRACE_SECONDS", 10, 0, 3600)?,
            connections: ConnectionConfig {
                header_timeout: millis(env, "HTTP_HEADER_TIMEOUT_MS", 10_000, 100, 600_000)?,
                keepalive_timeout: millis(
                    env,
                    "HTTP_KEEPALIVE_TIMEOUT_MS",
                    75_000,
                    100,
                    3_600_000,
                )?,
                body_timeout: millis(env, "HTTP_BODY_TIMEOUT_MS", 10_000, 100, 600_000)?,
                write_timeout: millis(env, "HTTP_WRITE_TIMEOUT_MS", 10_000, 100, 600_000)?,
                max_connections: match env.get("MAX_CONNECTIONS") {
                    None => None,
                    Some(_) => Some(number(env, "MAX_CONNECTIONS", 0usize, 1, 1_000_000)?),
                },
            },
        };

        let embedded = overrides.kong_sim_url.is_some();
        let authority = match env.get("KONG_JWT_AUTHORITY") {
            Some(value) => value.to_owned(),
            None if embedded => EXAMPLE_AUTHORITY.to_owned(),
            None => {
                return Err(ConfigError::Missing {
                    variable: "KONG_JWT_AUTHORITY",
                    why: "the token issuer, e.g. https://auth.example.com; or run with --kong-sim",
                });
            }
        };
        let audience = match env.get("KONG_JWT_AUDIENCE") {
            Some(value) => list(value),
            None if embedded => vec![EXAMPLE_AUDIENCE.to_owned()],
            None => {
                return Err(ConfigError::Missing {
                    variable: "KONG_JWT_AUDIENCE",
                    why: "the token audience, one value or a comma-separated list; or run with --kong-sim",
                });
            }
        };
        if audience.is_empty() {
            return Err(invalid(
                "KONG_JWT_AUDIENCE",
                "",
                "one or more comma-separated values",
            ));
        }
        let issuer = match env.get("KONG_JWT_ISSUER") {
            Some(value) => list(value).into_iter().next().unwrap_or(authority),
            None => authority,
        };
        let key_claim_name = env
            .get("KONG_JWT_KEY_CLAIM_NAME")
            .unwrap_or("key")
            .to_owned();
        // The key claim sits beside the standard claims, so it cannot be one of them; that
        // includes Kong's default `iss`, which our tokens use for the issuer.
        let reserved = [
            "sub",
            "jti",
            "iat",
            "nbf",
            "exp",
            "iss",
            "aud",
            "name",
            "unique_name",
        ];
        if reserved.contains(&key_claim_name.as_str()) {
            return Err(invalid(
                "KONG_JWT_KEY_CLAIM_NAME",
                &key_claim_name,
                "a claim name other than sub, jti, iat, nbf, exp, iss, aud, name, unique_name",
            ));
        }
        let jwt = JwtConfig {
            key_claim_name,
            expiration_minutes: number(env, "JWT_EXPIRATION_MINUTES", 15u64, 1, 60)?,
            issuer,
            audience,
            unique_name_prefix: env
                .get("JWT_UNIQUE_NAME_PREFIX")
                .unwrap_or("pvhcorp.com#")
                .to_owned(),
        };

        let mode = match env.get("KONG_MODE").unwrap_or("API_GATEWAY") {
            mode if mode.eq_ignore_ascii_case("API_GATEWAY") => KongMode::ApiGateway,
            mode if mode.eq_ignore_ascii_case("KONNECT") => KongMode::Konnect,
            other => return Err(invalid("KONG_MODE", other, "API_GATEWAY or KONNECT")),
        };
        let admin_url = match &overrides.kong_sim_url {
            Some(url) => url.clone(),
            None => env
                .get("KONG_ADMIN_URL")
                .unwrap_or("http://localhost:8001")
                .to_owned(),
        };
        if !(admin_url.starts_with("http://") || admin_url.starts_with("https://"))
            || admin_url.len() <= "https://".len()
        {
            return Err(invalid(
                "KONG_ADMIN_URL",
                &admin_url,
                "an http:// or https:// URL",
            ));
        }
        let kong = KongConfig {
            mode,
            admin_url: admin_url.trim_end_matches('/').to_owned(),
            admin_token: if embedded {
                None
            } else {
                env.get("KONG_ADMIN_TOKEN")
                    .map(|token| Secret(token.to_owned()))
            },
            timeout: millis(env, "KONG_TIMEOUT_MS", 3000, 1, 600_000)?,
            auto_provision: boolean(env, "KONG_AUTO_PROVISION", true)?,
            secret_creation_max_retries: number(
                env,
                "KONG_SECRET_CREATION_MAX_RETRIES",
                3u32,
                0,
                20,
            )?,
            max_waiting_workers: number(
                env,
                "KONG_MAX_WAITING_WORKERS",
                server.workers.saturating_sub(cores).max(1),
                1,
                1024,
            )?,
        };

        let cache = CacheConfig {
            max_entries: number(env, "CACHE_MAX_MEMORY_ENTRIES", 1000usize, 1, 10_000_000)?,
            fresh_ttl: seconds(env, "CACHING_TTL_SECONDS", 300, 0, 86_400)?,
            stale_tolerance: Duration::from_secs(
                60 * number(env, "STALE_DATA_TOLERANCE_MINUTES", 30u64, 0, 10_080)?,
            ),
            negative_ttl: seconds(env, "NEGATIVE_CACHE_TTL_SECONDS", 5, 0, 3600)?,
        };

        let breaker = BreakerConfig {
            enabled: boolean(env, "CIRCUIT_BREAKER_ENABLED", true)?,
            rolling_window: millis(
                env,
                "CIRCUIT_BREAKER_ROLLING_COUNT_TIMEOUT",
                10_000,
                100,
                3_600_000,
            )?,
            rolling_buckets: number(env, "CIRCUIT_BREAKER_ROLLING_COUNT_BUCKETS", 10u32, 1, 1000)?,
            volume_threshold: number(env, "CIRCUIT_BREAKER_VOLUME_THRESHOLD", 3u32, 1, 1_000_000)?,
            error_threshold_percent: number(env, "CIRCUIT_BREAKER_ERROR_THRESHOLD", 50u32, 1, 100)?,
            reset_timeout: millis(env, "CIRCUIT_BREAKER_RESET_TIMEOUT", 60_000, 1, 86_400_000)?,
        };

        let debug_allowed = environment != "production";
        let profiling = ProfilingConfig {
            debug_routes: debug_allowed && boolean(env, "PROFILING_ENABLED", true)?,
            cpu_hz: number(env, "PROFILING_CPU_HZ", 99i32, 1, 1000)?,
            output_dir: PathBuf::from(env.get("PROFILING_OUTPUT_DIR").unwrap_or("profiles/manual")),
        };

        let thresholds_text = env.get("SLA_THRESHOLDS").unwrap_or(DEFAULT_SLA_THRESHOLDS);
        let thresholds = parse_sla_thresholds(thresholds_text)
            .map_err(|accepted| invalid("SLA_THRESHOLDS", thresholds_text, &accepted))?;
        let max_storage_gb: f64 = number(
            env,
            "CONTINUOUS_PROFILING_MAX_STORAGE_GB",
            1.0f64,
            0.0,
            1024.0,
        )?;
        let sla = SlaConfig {
            continuous_profiling: boolean(env, "CONTINUOUS_PROFILING_ENABLED", false)?,
            auto_trigger: boolean(env, "CONTINUOUS_PROFILING_AUTO_TRIGGER_ON_SLA", true)?,
            buffer_size: number(
                env,
                "CONTINUOUS_PROFILING_BUFFER_SIZE",
                100usize,
                10,
                100_000,
            )?,
            thresholds,
            duration: seconds(env, "CONTINUOUS_PROFILING_DURATION_SECONDS", 30, 1, 600)?,
            output_dir: PathBuf::from(
                env.get("CONTINUOUS_PROFILING_OUTPUT_DIR")
                    .unwrap_or("profiles/auto"),
            ),
            throttle: Duration::from_secs_f64(
                60.0 * number(
                    env,
                    "CONTINUOUS_PROFILING_THROTTLE_MINUTES",
                    60.0f64,
                    0.0,
                    10_080.0,
                )?,
            ),
            max_concurrent: number(env, "CONTINUOUS_PROFILING_MAX_CONCURRENT", 1usize, 1, 16)?,
            max_storage_bytes: (max_storage_gb * 1024.0 * 1024.0 * 1024.0) as u64,
            max_overhead_percent: number(
                env,
                "CONTINUOUS_PROFILING_MAX_OVERHEAD_PERCENT",
                2.0f64,
                0.0,
                100.0,
            )?,
        };

        Ok(ServiceConfig {
            environment,
            log_level,
            server,
            jwt,
            kong,
            cache,
            breaker,
            health_kong_cache: millis(env, "HEALTH_KONG_CACHE_MS", 2000, 0, 600_000)?,
            profiling,
            sla,
            telemetry: TelemetryConfig::load(env)?,
        })
    }
}

/// `"/tokens=100:200,/health=400:500"` → thresholds; the error says what is accepted.
pub fn parse_sla_thresholds(text: &str) -> Result<Vec<SlaThreshold>, String> {
    const ACCEPTED: &str = "comma-separated ROUTE=P95:P99 in ms (fractions allowed, at least 0.01) with P95 <= P99, e.g. /tokens=100:200 or /tokens=0.5:1.5";
    let mut thresholds: Vec<SlaThreshold> = Vec::new();
    for entry in text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let parsed = entry.split_once('=').and_then(|(route, limits)| {
            let (p95, p99) = limits.split_once(':')?;
            let p95: f64 = p95.trim().parse().ok()?;
            let p99: f64 = p99.trim().parse().ok()?;
            let route = route.trim();
            let valid = route.starts_with('/') && p99.is_finite() && p95 >= 0.01 && p95 <= p99;
            valid.then(|| SlaThreshold {
                route: route.to_owned(),
                p95_ms: p95,
                p99_ms: p99,
            })
        });
        match parsed {
            Some(threshold) if !thresholds.iter().any(|t| t.route == threshold.route) => {
                thresholds.push(threshold)
            }
            _ => return Err(ACCEPTED.to_owned()),
        }
    }
    Ok(thresholds)
}
