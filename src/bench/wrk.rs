//! wrk as the bench's load generator: the Lua script that sets the headers (rotating the
//! consumer per request), the command line, and the parsing of wrk's text output.
//!
//! `script` and `parse` are pure; `run` starts wrk once, bounded by its own `-d` and a kill
//! deadline, against a 127.0.0.1 target. Must not know about routes or pairs: the engine in
//! `bench/mod.rs` decides what to send and when.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// One request of the rotation: a path and its headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// What one wrk run measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    pub requests: u64,
    pub rps: f64,
    /// Percentiles of `Latency Distribution` (needs `--latency`), in milliseconds.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Non-2xx/3xx replies plus socket errors of every kind.
    pub errors: u64,
}

#[derive(Debug)]
pub enum WrkError {
    Spawn(std::io::Error),
    Failed { status: String, stderr: String },
    Hung,
    Unparsable(String),
}

impl fmt::Display for WrkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WrkError::Spawn(_) => f.write_str("cannot start wrk"),
            WrkError::Failed { status, stderr } => write!(f, "wrk exited with {status}: {stderr}"),
            WrkError::Hung => f.write_str("wrk did not finish in time and was killed"),
            WrkError::Unparsable(why) => write!(f, "cannot read wrk's output: {why}"),
        }
    }
}

impl std::error::Error for WrkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WrkError::Spawn(err) => Some(err),
            _ => None,
        }
    }
}

/// A Lua script that sends `requests` in turn, one per call of `request()`. The requests are
/// formatted once in `init` so the per-request Lua work is an index step, the same for every
/// route (a static `/health/live` request would otherwise skip Lua and skew the ratios).
pub fn script(requests: &[Request]) -> String {
    let mut out = String::from("local reqs = {}\nlocal n = 0\n\ninit = function(args)\n");
    for request in requests {
        out.push_str("  reqs[#reqs + 1] = wrk.format(\"GET\", ");
        out.push_str(&lua_string(&request.path));
        out.push_str(", {");
        for (i, (name, value)) in request.headers.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push('[');
            out.push_str(&lua_string(name));
            out.push_str("] = ");
            out.push_str(&lua_string(value));
        }
        out.push_str("})\n");
    }
    out.push_str("end\n\nrequest = function()\n  n = n % #reqs + 1\n  return reqs[n]\nend\n");
    out
}

fn lua_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs `wrk -t THREADS -c CONNS -d SECONDS --latency -s SCRIPT URL` and parses its output.
pub fn run(
    wrk: &Path,
    script: &Path,
    url: &str,
    connections: u32,
    seconds: u64,
) -> Result<Output, WrkError> {
    let threads = connections.clamp(1, 2);
    let mut child = Command::new(wrk)
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--timeout",
            "5s",
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(WrkError::Spawn)?;
    // Read both pipes on threads so a chatty wrk never blocks on a full pipe.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = thread::spawn(move || read_all(stdout.as_mut()));
    let err_reader = thread::spawn(move || read_all(stderr.as_mut()));
    let deadline = Instant::now() + Duration::from_secs(seconds + 15);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(WrkError::Hung);
            }
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(WrkError::Failed {
            status: status.to_string(),
            stderr: stderr.trim().chars().take(300).collect(),
        });
    }
    parse(&stdout)
}

fn read_all(pipe: Option<&mut impl Read>) -> String {
    let mut text = String::new();
    if let Some(pipe) = pipe {
        let _ = pipe.read_to_string(&mut text);
    }
    text
}

/// Reads `Requests/sec`, the `N requests in` line, `Latency Distribution` percentiles,
/// `Non-2xx or 3xx responses` and `Socket errors` from wrk's report.
pub fn parse(text: &str) -> Result<Output, WrkError> {
    let mut out = Output::default();
    let mut rps = None;
    let mut in_distribution = false;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            rps = rest.trim().parse::<f64>().ok();
        } else if line == "Latency Distribution" {
            in_distribution = true;
            continue;
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            out.errors += rest.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 3, write 0, timeout 1"
            out.errors += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some((count, _)) = line.split_once(" requests in ") {
            out.requests = count.trim().parse().unwrap_or(0);
        }
        if in_distribution {
            match line.split_once('%') {
                Some((percent, value)) if percent.parse::<f64>().is_ok() => {
                    let ms = duration_ms(value.trim());
                    match percent {
                        "50" => out.p50_ms = ms,
                        "99" => out.p99_ms = ms,
                        _ => {}
                    }
                }
                _ => in_distribution = false,
            }
        }
    }
    out.rps = rps.ok_or_else(|| WrkError::Unparsable("no Requests/sec line".to_owned()))?;
    Ok(out)
}

/// wrk's time figures: `412.00us`, `1.50ms`, `2.00s`, `1.00m`, in milliseconds.
pub fn duration_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    // Dividing microseconds (rather than multiplying by 0.001) keeps 412us exactly 0.412 ms.
    match unit.trim() {
        "us" => Some(value / 1000.0),
        "ms" => Some(value),
        "s" => Some(value * 1000.0),
        "m" => Some(value * 60_000.0),
        "h" => Some(value * 3_600_000.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 3s test @ http://127.0.0.1:41234
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms    1.20ms  40.02ms   90.12%
    Req/Sec    10.31k   612.44    11.20k    71.67%
  Latency Distribution
     50%  835.00us
     75%    1.20ms
     90%    2.10ms
     99%    4.56ms
  61847 requests in 3.00s, 20.11MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  20613.42
Transfer/sec:      6.70MB
";

    #[test]
    fn reads_rps_percentiles_and_errors() {
        let out = parse(REPORT).unwrap();
        assert_eq!(out.rps, 20613.42);
        assert_eq!(out.requests, 61847);
        assert_eq!(out.p50_ms, Some(0.835));
        assert_eq!(out.p99_ms, Some(4.56));
        assert_eq!(out.errors, 10);
    }

    #[test]
    fn without_latency_flag_percentiles_are_absent() {
        let text = "  100 requests in 1.00s, 1.00KB read\nRequests/sec:    100.00\n";
        let out = parse(text).unwrap();
        assert_eq!(
            (out.rps, out.requests, out.p50_ms, out.errors),
            (100.0, 100, None, 0)
        );
        assert!(matches!(
            parse("unable to connect to 127.0.0.1:1 Connection refused"),
            Err(WrkError::Unparsable(_))
        ));
    }

    #[test]
    fn time_units() {
        let check = |text: &str, ms: Option<f64>| assert_eq!(duration_ms(text), ms, "{text}");
        check("412.00us", Some(0.412));
        check("1.50ms", Some(1.5));
        check("2.00s", Some(2000.0));
        check("1.00m", Some(60_000.0));
        check("  7ms ", Some(7.0));
        check("fast", None);
        check("3.0xs", None);
    }

    #[test]
    fn script_rotates_quoted_requests() {
        let script = script(&[
            Request {
                path: "/tokens".to_owned(),
                headers: vec![
                    ("X-Consumer-ID".to_owned(), "id-1".to_owned()),
                    ("X-Consumer-Username".to_owned(), "a\"b".to_owned()),
                ],
            },
            Request {
                path: "/health/live".to_owned(),
                headers: vec![],
            },
        ]);
        assert!(script.contains(
            "reqs[#reqs + 1] = wrk.format(\"GET\", \"/tokens\", {[\"X-Consumer-ID\"] = \"id-1\", [\"X-Consumer-Username\"] = \"a\\\"b\"})\n"
        ), "{script}");
        assert!(script.contains("wrk.format(\"GET\", \"/health/live\", {})\n"));
        assert!(script.contains("n = n % #reqs + 1"));
    }
}
