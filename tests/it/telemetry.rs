//! OpenTelemetry over OTLP/HTTP. A small collector in this process decodes what the
//! service sends with the real protobuf types; the Kong simulator reports the `traceparent`
//! it received.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::support::{self, CONSUMER_ID, CONSUMER_NAME};

const WAIT: Duration = Duration::from_secs(20);
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// A minimal OTLP/HTTP receiver answering every export with `status`.
struct Collector {
    url: String,
    connections: Arc<AtomicUsize>,
    spans: Arc<Mutex<Vec<Span>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

impl Collector {
    fn start(status: u16) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind collector");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let collector = Collector {
            url,
            connections: Arc::default(),
            spans: Arc::default(),
            metrics: Arc::default(),
        };
        let (connections, spans, metrics) = (
            Arc::clone(&collector.connections),
            Arc::clone(&collector.spans),
            Arc::clone(&collector.metrics),
        );
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                connections.fetch_add(1, Ordering::SeqCst);
                let (spans, metrics) = (Arc::clone(&spans), Arc::clone(&metrics));
                thread::spawn(move || {
                    let _ = serve_connection(stream, status, &spans, &metrics);
                });
            }
        });
        collector
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// The latest exported value of the counter `name` without labels.
    fn counter(&self, name: &str) -> Option<i64> {
        let exports = self.metrics.lock().unwrap();
        let metric = exports
            .iter()
            .rev()
            .flat_map(|export| &export.resource_metrics)
            .flat_map(|resource| &resource.scope_metrics)
            .flat_map(|scope| &scope.metrics)
            .find(|metric| metric.name == name)?;
        match &metric.data {
            Some(metric::Data::Sum(sum)) => match sum.data_points.first()?.value {
                Some(number_data_point::Value::AsInt(value)) => Some(value),
                _ => None,
            },
            _ => None,
        }
    }
}

/// HTTP/1.1 keep-alive: requests with a `Content-Length` body until the client closes.
fn serve_connection(
    stream: TcpStream,
    status: u16,
    spans: &Mutex<Vec<Span>>,
    metrics: &Mutex<Vec<ExportMetricsServiceRequest>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if status == 200 {
            match path.as_str() {
                "/v1/traces" => {
                    let export = ExportTraceServiceRequest::decode(&body[..]).expect("traces");
                    let mut spans = spans.lock().unwrap();
                    for resource in export.resource_spans {
                        for scope in resource.scope_spans {
                            spans.extend(scope.spans);
                        }
                    }
                }
                "/v1/metrics" => {
                    let export = ExportMetricsServiceRequest::decode(&body[..]).expect("metrics");
                    metrics.lock().unwrap().push(export);
                }
                other => panic!("unexpected export path {other}"),
            }
        }
        write!(
            writer,
            "HTTP/1.1 {status} X\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
        )?;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(text)) => text.clone(),
                Some(any_value::Value::IntValue(n)) => n.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn exporting_env(collector_url: &str) -> Vec<(&str, &str)> {
    vec![
        ("TELEMETRY_MODE", "otlp"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector_url),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
    ]
}

fn issue_token(server_url: &str, extra: &[(&str, &str)]) {
    let mut headers = support::consumer(CONSUMER_ID, CONSUMER_NAME).to_vec();
    headers.extend_from_slice(extra);
    let reply = support::get(&format!("{server_url}/tokens"), &headers);
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn a_token_request_is_one_trace_with_kong_and_its_counter_is_exported() {
    let collector = Collector::start(200);
    let sim = support::kong_sim(&[]);
    let server = support::serve(&sim.url, &exporting_env(&collector.url));
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    issue_token(&server.url, &[("traceparent", &traceparent)]);

    let (server_span, kong_span) = support::eventually(WAIT, "the server and kong spans", || {
        let spans = collector.spans();
        let server_span = spans
            .iter()
            .find(|s| hex(&s.trace_id) == TRACE_ID && s.kind == 2)?
            .clone();
        let kong_span = spans
            .iter()
            .find(|s| s.kind == 3 && s.parent_span_id == server_span.span_id)?
            .clone();
        Some((server_span, kong_span))
    });
    assert_eq!(hex(&server_span.parent_span_id), PARENT_ID);
    assert_eq!(server_span.name, "/tokens");
    let attrs = attributes(&server_span);
    assert_eq!(attrs["http.route"], "/tokens");
    assert_eq!(attrs["http.request.method"], "GET");
    assert_eq!(attrs["http.response.status_code"], "200");
    assert_eq!(attrs["url.path"], "/tokens");
    assert_eq!(attrs["kong.consumer.id"], CONSUMER_ID);
    assert_eq!(attrs["kong.cache.result"], "miss");
    assert!(attrs.contains_key("http.request.id"));
    assert_eq!(hex(&kong_span.trace_id), TRACE_ID);
    assert_eq!(kong_span.name, "GET /consumers/{consumer}/jwt");
    assert_eq!(attributes(&kong_span)["http.response.status_code"], "200");

    // Kong got our span as its parent.
    let stats = support::get(&format!("{}/_sim/stats", sim.url), &[]).json();
    let received: Vec<&str> = stats["traceparents"]
        .as_array()
        .expect("traceparents")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let expected = format!("00-{TRACE_ID}-{}-01", hex(&kong_span.span_id));
    assert!(received.contains(&expected.as_str()), "{received:?}");

    let issued = support::eventually(WAIT, "jwt_tokens_issued_total = 1 exported", || {
        collector
            .counter("jwt_tokens_issued_total")
            .filter(|value| *value == 1)
    });
    assert_eq!(issued, 1);

    // The collector has the body before the exporter has read the answer and counted it.
    let health = support::eventually(WAIT, "both exports counted as successes", || {
        let health = support::get(&format!("{}/health/telemetry", server.url), &[]).json();
        let counted = |signal: &str| health[signal]["successes"].as_u64().unwrap_or(0) >= 1;
        (counted("traces") && counted("metrics")).then_some(health)
    });
    assert_eq!(health["mode"], "otlp");
    assert_eq!(health["exporting"], true);
    assert_eq!(
        health["traces"]["endpoint"],
        format!("{}/v1/traces", collector.url)
    );
    assert!(
        health["traces"]["successes"].as_u64().unwrap() >= 1,
        "{health}"
    );
    assert!(
        health["metrics"]["successes"].as_u64().unwrap() >= 1,
        "{health}"
    );
    let view = support::get(&format!("{}/metrics?view=exports", server.url), &[]).json();
    assert_eq!(view["mode"], "otlp");

    let flush = support::request(
        "POST",
        &format!("{}/debug/metrics/export", server.url),
        &[],
        None,
    );
    assert_eq!(flush.status, 200, "{}", flush.body);
    assert!(
        flush.json()["exports"].as_u64().unwrap() >= 1,
        "{}",
        flush.body
    );
}

#[test]
fn a_failing_or_missing_collector_costs_requests_nothing_and_is_counted() {
    let refusing = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let failing = Collector::start(500);
    let sim = support::kong_sim(&[]);
    for endpoint in [refusing.as_str(), failing.url.as_str()] {
        let server = support::serve(&sim.url, &exporting_env(endpoint));
        for _ in 0..5 {
            issue_token(&server.url, &[]);
        }
        support::eventually(WAIT, "failed exports of both signals", || {
            let health = support::get(&format!("{}/health/telemetry", server.url), &[]).json();
            let failures = |signal: &str| health[signal]["failures"].as_u64().unwrap_or(0);
            (failures("traces") >= 1 && failures("metrics") >= 1).then_some(())
        });
        let health = support::get(&format!("{}/health/telemetry", server.url), &[]).json();
        assert_eq!(health["status"], "degraded", "{health}");
        assert!(health["traces"]["lastError"].is_string(), "{health}");
        assert!(
            support::metric(
                &server.url,
                "otel_exports_total{signal=\"traces\",result=\"failure\"}"
            ) >= 1
        );
        support::metric(
            &server.url,
            "otel_spans_dropped_total{reason=\"queue_full\"}",
        );
        issue_token(&server.url, &[]);
    }
}

#[test]
fn console_mode_starts_no_exporter_and_connects_nowhere() {
    let collector = Collector::start(200);
    let sim = support::kong_sim(&[]);
    let server = support::serve(
        &sim.url,
        &[
            ("TELEMETRY_MODE", "console"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.url),
            ("OTEL_METRIC_EXPORT_INTERVAL", "100"),
        ],
    );
    issue_token(
        &server.url,
        &[("traceparent", &format!("00-{TRACE_ID}-{PARENT_ID}-01"))],
    );
    let health = support::get(&format!("{}/health/telemetry", server.url), &[]).json();
    assert_eq!(health["mode"], "console");
    assert_eq!(health["status"], "disabled");
    assert_eq!(health["exporting"], false);
    let flush = support::request(
        "POST",
        &format!("{}/debug/metrics/export", server.url),
        &[],
        None,
    );
    assert_eq!(flush.json()["exports"], 0, "{}", flush.body);
    thread::sleep(Duration::from_millis(500));
    assert_eq!(collector.connections.load(Ordering::SeqCst), 0);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", server.pid())).expect("tasks");
    for task in tasks.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        assert!(!name.starts_with("OpenTelemetry"), "thread {name}");
    }
    // Without any endpoint the default is console too.
    let plain = support::serve(&sim.url, &[]);
    let health = support::get(&format!("{}/health/telemetry", plain.url), &[]).json();
    assert_eq!(health["mode"], "console");
}
