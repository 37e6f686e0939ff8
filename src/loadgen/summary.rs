//! A run's results per endpoint, checked against the SLA thresholds and the error-rate limit,
//! rendered as a terminal table and as the JSON summary.
//!
//! Pure: takes an `Outcome` and the thresholds, returns values and strings; `cmd/` writes
//! them. Thresholds apply to exact routes only (`/health/live` and unknown routes have none).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::SlaThreshold;
use crate::loadgen::Outcome;
use crate::loadgen::stats::LatencyMs;

/// k6's usual `http_req_failed: rate<0.01`.
pub const MAX_ERROR_RATE: f64 = 0.01;

#[derive(Debug, Serialize)]
pub struct Summary {
    pub duration_seconds: f64,
    pub peak_vus: u32,
    pub requests: u64,
    pub successes: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub rps: f64,
    pub endpoints: Vec<EndpointSummary>,
    /// Every crossed threshold, e.g. `/tokens p95 312.0ms > 100ms`.
    pub failures: Vec<String>,
    pub passed: bool,
}

#[derive(Debug, Serialize)]
pub struct EndpointSummary {
    pub route: &'static str,
    pub requests: u64,
    pub successes: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub rps: f64,
    /// Replies by status code (as strings, for JSON object keys).
    pub statuses: BTreeMap<String, u64>,
    pub transport_errors: u64,
    pub latency_ms: LatencyMs,
    pub threshold_p95_ms: Option<f64>,
    pub threshold_p99_ms: Option<f64>,
    pub passed: bool,
}

pub fn summarize(outcome: &Outcome, thresholds: &[SlaThreshold]) -> Summary {
    let seconds = outcome.elapsed.as_secs_f64().max(1e-9);
    let mut failures = Vec::new();
    let endpoints: Vec<EndpointSummary> = outcome
        .endpoints
        .iter()
        .map(|(endpoint, stats)| {
            let route = endpoint.route();
            let latency = LatencyMs::of(&stats.latency);
            let threshold = thresholds.iter().find(|t| t.route == route);
            let requests = stats.requests();
            let errors = stats.errors();
            let error_rate = rate(errors, requests);
            let before = failures.len();
            if let Some(t) = threshold {
                for (name, measured, limit) in [
                    ("p95", latency.p95, t.p95_ms),
                    ("p99", latency.p99, t.p99_ms),
                ] {
                    if measured > limit {
                        failures.push(format!("{route} {name} {measured:.1}ms > {limit}ms"));
                    }
                }
            }
            if error_rate >= MAX_ERROR_RATE {
                failures.push(format!(
                    "{route} error rate {:.2}% >= {:.0}% ({errors} of {requests})",
                    error_rate * 100.0,
                    MAX_ERROR_RATE * 100.0
                ));
            }
            EndpointSummary {
                route,
                requests,
                successes: stats.successes(),
                errors,
                error_rate,
                rps: requests as f64 / seconds,
                statuses: stats
                    .sorted_statuses()
                    .into_iter()
                    .map(|(status, count)| (status.to_string(), count))
                    .collect(),
                transport_errors: stats.transport_errors,
                latency_ms: latency,
                threshold_p95_ms: threshold.map(|t| t.p95_ms),
                threshold_p99_ms: threshold.map(|t| t.p99_ms),
                passed: failures.len() == before,
            }
        })
        .collect();
    let requests: u64 = endpoints.iter().map(|e| e.requests).sum();
    let successes: u64 = endpoints.iter().map(|e| e.successes).sum();
    let errors = requests - successes;
    let error_rate = rate(errors, requests);
    if error_rate >= MAX_ERROR_RATE && endpoints.len() > 1 {
        failures.push(format!(
            "total error rate {:.2}% >= {:.0}%",
            error_rate * 100.0,
            MAX_ERROR_RATE * 100.0
        ));
    }
    if requests == 0 {
        failures.push("no request was sent".to_owned());
    }
    Summary {
        duration_seconds: outcome.elapsed.as_secs_f64(),
        peak_vus: outcome.peak_vus,
        requests,
        successes,
        errors,
        error_rate,
        rps: requests as f64 / seconds,
        endpoints,
        passed: failures.is_empty(),
        failures,
    }
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The results table with one status line per endpoint and the threshold verdicts.
pub fn render(summary: &Summary) -> String {
    let header = [
        "endpoint",
        "requests",
        "rps",
        "errors",
        "p50",
        "p90",
        "p95",
        "p99",
        "max",
        "sla p95/p99",
        "result",
    ];
    let ms = |value: f64| format!("{value:.2}ms");
    let mut rows: Vec<Vec<String>> = summary
        .endpoints
        .iter()
        .map(|e| {
            let l = &e.latency_ms;
            vec![
                e.route.to_owned(),
                e.requests.to_string(),
                format!("{:.1}", e.rps),
                format!("{} ({:.2}%)", e.errors, e.error_rate * 100.0),
                ms(l.p50),
                ms(l.p90),
                ms(l.p95),
                ms(l.p99),
                ms(l.max),
                match (e.threshold_p95_ms, e.threshold_p99_ms) {
                    (Some(p95), Some(p99)) => format!("{p95}/{p99}ms"),
                    _ => "-".to_owned(),
                },
                if e.passed { "pass" } else { "FAIL" }.to_owned(),
            ]
        })
        .collect();
    rows.push(vec![
        "total".to_owned(),
        summary.requests.to_string(),
        format!("{:.1}", summary.rps),
        format!("{} ({:.2}%)", summary.errors, summary.error_rate * 100.0),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        if summary.passed { "pass" } else { "FAIL" }.to_owned(),
    ]);
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (c, cell) in cells.iter().enumerate() {
            // The endpoint column reads left to right; the numbers line up on the right.
            if c == 0 {
                out.push_str(&format!("{cell:<w$}", w = widths[c]));
            } else {
                out.push_str(&format!("  {cell:>w$}", w = widths[c]));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(&header.map(str::to_owned));
    out.push_str(&line(
        &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
    ));
    for row in &rows {
        out.push_str(&line(row));
    }
    out.push('\n');
    for e in &summary.endpoints {
        let mut statuses: Vec<String> =
            e.statuses.iter().map(|(s, n)| format!("{s}={n}")).collect();
        if e.transport_errors > 0 {
            statuses.push(format!("transport={}", e.transport_errors));
        }
        out.push_str(&format!(
            "{}: {} ok, statuses {}\n",
            e.route,
            e.successes,
            statuses.join(" ")
        ));
    }
    out.push_str(&format!(
        "duration {:.1}s, peak {} VUs\n",
        summary.duration_seconds, summary.peak_vus
    ));
    if summary.failures.is_empty() {
        out.push_str("thresholds: all passed\n");
    } else {
        out.push_str("thresholds crossed:\n");
        for failure in &summary.failures {
            out.push_str(&format!("  - {failure}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::parse_sla_thresholds;
    use crate::loadgen::scenario::Endpoint;
    use crate::loadgen::stats::EndpointStats;

    fn outcome(tokens_ms: u64, health_errors: u64) -> Outcome {
        let mut tokens = EndpointStats::default();
        let mut live = EndpointStats::default();
        for _ in 0..100 {
            tokens.record(200, tokens_ms * 1000);
            live.record(200, 10);
        }
        for _ in 0..health_errors {
            live.record(503, 10);
        }
        Outcome {
            elapsed: Duration::from_secs(2),
            endpoints: vec![(Endpoint::Tokens, tokens), (Endpoint::Live, live)],
            peak_vus: 2,
            per_second: vec![10, 100, 90, 110],
        }
    }

    #[test]
    fn variation_leaves_out_the_first_second() {
        let run = outcome(5, 0);
        let cv = run.rps_variation_percent().expect("three steady seconds");
        assert!((cv - 10.0).abs() < 1e-9, "{cv}");
        let short = Outcome {
            per_second: vec![1, 2, 3],
            ..outcome(5, 0)
        };
        assert_eq!(short.rps_variation_percent(), None);
    }

    #[test]
    fn thresholds_are_checked_per_route() {
        let thresholds = parse_sla_thresholds(crate::config::DEFAULT_SLA_THRESHOLDS).unwrap();
        let fast = summarize(&outcome(5, 0), &thresholds);
        assert!(fast.passed, "{:?}", fast.failures);
        assert_eq!(fast.endpoints[0].threshold_p95_ms, Some(100.0));
        assert_eq!(
            fast.endpoints[1].threshold_p95_ms, None,
            "/health/live has none"
        );
        assert_eq!(fast.rps, 100.0);
        let slow = summarize(&outcome(300, 0), &thresholds);
        assert!(!slow.passed);
        assert_eq!(slow.failures.len(), 2, "{:?}", slow.failures);
        assert!(slow.failures[0].starts_with("/tokens p95 300.0ms > 100ms"));
        let failing = summarize(&outcome(5, 5), &thresholds);
        assert!(!failing.passed);
        assert!(failing.failures[0].starts_with("/health/live error rate 4.76%"));
        let text = render(&failing);
        assert!(
            text.contains("/health/live: 100 ok, statuses 200=100 503=5"),
            "{text}"
        );
        assert!(text.contains("FAIL"));
    }
}
