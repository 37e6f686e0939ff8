//! The bench's results as data, the targets of the performance issue, and the Markdown report.
//!
//! Pure: no I/O, no clock. Every figure in the report comes from `Results`; a target is
//! judged here and nowhere else, so the table and the pass/fail marks cannot disagree.

use crate::bench::stats::{Spread, cost_percent};
use crate::tools::markdown::render_table;

/// How the run was made, for the report's header.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    pub date: String,
    pub commit: String,
    pub cores: usize,
    pub cpu_model: String,
    pub load_before: String,
    pub load_after: String,
    pub tool: String,
    pub pairs: usize,
    pub overhead_pairs: usize,
    pub window_secs: f64,
    pub elapsed_secs: f64,
    pub quick: bool,
}

/// One route against `/health/live` at one concurrency.
#[derive(Clone, Debug, Default)]
pub struct HotRow {
    pub route: &'static str,
    pub concurrency: u32,
    /// Per-pair `route rps / live rps`.
    pub ratio: Option<Spread>,
    pub route_rps: Option<f64>,
    pub live_rps: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub errors: u64,
}

/// What something costs: B (with it) against A (without), per pair.
#[derive(Clone, Debug, Default)]
pub struct OverheadRow {
    pub name: &'static str,
    /// Per-pair `with rps / without rps`.
    pub ratio: Option<Spread>,
    pub with_rps: Option<f64>,
    pub without_rps: Option<f64>,
    /// Median per-pair ratio of server CPU seconds per request, with ÷ without.
    pub cpu_per_request_ratio: Option<f64>,
    pub target_percent: Option<f64>,
    /// Why the row was not measured.
    pub skipped: Option<String>,
    pub errors: u64,
}

/// Resident memory of the main server child, in bytes.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    pub idle: Option<u64>,
    pub end_of_load: Option<u64>,
    pub after_load: Option<u64>,
    pub after_load_secs: f64,
    pub peak_without_session: Option<u64>,
    pub with_session: Option<u64>,
    pub after_session: Option<u64>,
    /// The OTLP-exporting server (100 % sampling) at the end of its last window.
    pub with_otlp: Option<u64>,
    pub peak: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct Results {
    pub meta: Meta,
    pub hot: Vec<HotRow>,
    pub overhead: Vec<OverheadRow>,
    pub memory: Memory,
    /// Milliseconds from spawn to the first `/health/ready` 200, one per start.
    pub cold_start_ms: Vec<f64>,
}

pub const HOT_TARGET_ROUTES: [(&str, f64); 3] = [
    ("/tokens", 0.80),
    ("/tokens/validate", 0.80),
    ("/health", 0.50),
];
pub const TARGET_CONCURRENCY: u32 = 64;
pub const P99_TARGET_MS: f64 = 3.0;
pub const IDLE_RSS_TARGET: f64 = 15e6;
pub const AFTER_LOAD_RSS_TARGET: f64 = 30e6;
pub const COLD_START_TARGET_MS: f64 = 50.0;

/// Every row name the report has, in order (tests and readers can rely on them).
pub fn row_names(results: &Results) -> Vec<String> {
    rows(results)
        .into_iter()
        .map(|row| row[0].clone())
        .collect()
}

pub fn render(results: &Results) -> String {
    let meta = &results.meta;
    let mut out = String::from("# auth-service benchmark\n\n");
    out.push_str(&format!("- date: {}\n", meta.date));
    out.push_str(&format!("- git commit: {}\n", meta.commit));
    out.push_str(&format!(
        "- machine: {} cores ({}); load average {} at start, {} at end\n",
        meta.cores, meta.cpu_model, meta.load_before, meta.load_after
    ));
    out.push_str(&format!("- load generator: {}\n", meta.tool));
    out.push_str(&format!(
        "- method: alternating {:.1} s windows in one run{}, {} pairs per hot-path ratio and {} \
         per overhead (A/B order swapped every other pair); ratio = B ÷ A per pair, shown as \
         median and min–max; took {:.0} s\n\n",
        meta.window_secs,
        if meta.quick { " (--quick)" } else { "" },
        meta.pairs,
        meta.overhead_pairs,
        meta.elapsed_secs
    ));
    out.push_str(&render_table(
        &[
            "Measure",
            "Result",
            "Pairs min–max",
            "Detail",
            "Target",
            "Pass",
        ],
        &[false, true, true, false, false, false],
        &rows(results),
    ));
    out
}

fn rows(results: &Results) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for hot in &results.hot {
        let target = HOT_TARGET_ROUTES
            .iter()
            .find(|(route, _)| *route == hot.route)
            .filter(|_| hot.concurrency == TARGET_CONCURRENCY)
            .map(|(_, min)| *min);
        let mut detail = format!(
            "{} vs {} rps; p50 {} / p99 {}",
            rps(hot.route_rps),
            rps(hot.live_rps),
            ms(hot.p50_ms),
            ms(hot.p99_ms)
        );
        if hot.errors > 0 {
            detail.push_str(&format!("; {} errors", hot.errors));
        }
        rows.push(vec![
            format!("{} ÷ /health/live rps, c{}", hot.route, hot.concurrency),
            hot.ratio
                .map_or("n/a".to_owned(), |s| format!("{:.2}×", s.median)),
            range(hot.ratio, |v| format!("{v:.2}")),
            detail,
            target.map_or("-".to_owned(), |t| format!("≥ {t:.2}×")),
            verdict(target.zip(hot.ratio).map(|(t, s)| s.median >= t)),
        ]);
    }
    if let Some(hot) = results
        .hot
        .iter()
        .find(|h| h.route == "/tokens" && h.concurrency == TARGET_CONCURRENCY)
    {
        rows.push(vec![
            format!("/tokens p99 latency, c{TARGET_CONCURRENCY}"),
            ms(hot.p99_ms),
            "-".to_owned(),
            format!("median over the pairs; p50 {}", ms(hot.p50_ms)),
            format!("≤ {P99_TARGET_MS:.0} ms"),
            verdict(hot.p99_ms.map(|p| p <= P99_TARGET_MS)),
        ]);
    }
    for row in &results.overhead {
        if let Some(why) = &row.skipped {
            rows.push(vec![
                row.name.to_owned(),
                format!("skipped ({why})"),
                "-".to_owned(),
                "-".to_owned(),
                target_text(row.target_percent),
                "skipped".to_owned(),
            ]);
            continue;
        }
        let cost = row.ratio.map(|s| cost_percent(s.median));
        let mut detail = format!(
            "with {} / without {} rps; CPU per request {}",
            rps(row.with_rps),
            rps(row.without_rps),
            row.cpu_per_request_ratio
                .map_or("n/a".to_owned(), |r| format!("×{r:.3}"))
        );
        if row.errors > 0 {
            detail.push_str(&format!("; {} errors", row.errors));
        }
        rows.push(vec![
            row.name.to_owned(),
            cost.map_or("n/a".to_owned(), |c| {
                format!("{c:+.1} % (ratio {:.3})", 1.0 - c / 100.0)
            }),
            // The highest ratio is the lowest cost: show the costs low to high.
            row.ratio.map_or("-".to_owned(), |s| {
                format!(
                    "{:+.1} %–{:+.1} %",
                    cost_percent(s.max),
                    cost_percent(s.min)
                )
            }),
            detail,
            target_text(row.target_percent),
            verdict(row.target_percent.zip(cost).map(|(t, c)| c <= t)),
        ]);
    }
    let memory = &results.memory;
    let mem_rows: [(&str, Option<u64>, Option<f64>); 8] = [
        ("RSS idle (after start)", memory.idle, Some(IDLE_RSS_TARGET)),
        ("RSS at the end of c64 load", memory.end_of_load, None),
        (
            "RSS after load (settled)",
            memory.after_load,
            Some(AFTER_LOAD_RSS_TARGET),
        ),
        (
            "peak RSS (VmHWM) without a session",
            memory.peak_without_session,
            None,
        ),
        (
            "RSS with a CPU+heap session under load",
            memory.with_session,
            None,
        ),
        (
            "RSS after the profiling session",
            memory.after_session,
            None,
        ),
        (
            "RSS exporting OTLP (100 % sampling) under load",
            memory.with_otlp,
            None,
        ),
        ("peak RSS (VmHWM) at the end", memory.peak, None),
    ];
    for (name, bytes, target) in mem_rows {
        let detail = if name.starts_with("RSS after load") {
            format!("{:.0} s after the last c64 window", memory.after_load_secs)
        } else {
            "-".to_owned()
        };
        rows.push(vec![
            name.to_owned(),
            bytes.map_or("n/a".to_owned(), |b| format!("{:.1} MB", b as f64 / 1e6)),
            "-".to_owned(),
            detail,
            target.map_or("-".to_owned(), |t| format!("≤ {:.0} MB", t / 1e6)),
            verdict(target.zip(bytes).map(|(t, b)| b as f64 <= t)),
        ]);
    }
    let cold = crate::bench::stats::spread(&results.cold_start_ms);
    rows.push(vec![
        "cold start to /health/ready 200".to_owned(),
        cold.map_or("n/a".to_owned(), |s| format!("{:.1} ms", s.median)),
        range(cold, |v| format!("{v:.1}")),
        format!("median of {} starts", results.cold_start_ms.len()),
        format!("≤ {COLD_START_TARGET_MS:.0} ms"),
        verdict(cold.map(|s| s.median <= COLD_START_TARGET_MS)),
    ]);
    rows
}

fn target_text(percent: Option<f64>) -> String {
    percent.map_or("-".to_owned(), |t| format!("≤ {t:.0} %"))
}

fn verdict(passed: Option<bool>) -> String {
    match passed {
        Some(true) => "pass".to_owned(),
        Some(false) => "FAIL".to_owned(),
        None => "-".to_owned(),
    }
}

fn range(spread: Option<Spread>, show: impl Fn(f64) -> String) -> String {
    match spread {
        Some(s) if s.count > 1 => format!("{}–{}", show(s.min), show(s.max)),
        Some(s) => show(s.median),
        None => "-".to_owned(),
    }
}

fn rps(value: Option<f64>) -> String {
    match value {
        Some(v) if v >= 10_000.0 => format!("{:.1}k", v / 1000.0),
        Some(v) => format!("{v:.0}"),
        None => "n/a".to_owned(),
    }
}

fn ms(value: Option<f64>) -> String {
    match value {
        Some(v) if v < 10.0 => format!("{v:.2} ms"),
        Some(v) => format!("{v:.1} ms"),
        None => "n/a".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(median: f64, min: f64, max: f64) -> Option<Spread> {
        Some(Spread {
            median,
            min,
            max,
            count: 5,
        })
    }

    fn sample() -> Results {
        Results {
            meta: Meta {
                date: "2026-01-02T03:04:05Z".to_owned(),
                commit: "abc1234".to_owned(),
                cores: 2,
                tool: "wrk".to_owned(),
                pairs: 5,
                overhead_pairs: 8,
                window_secs: 3.0,
                ..Meta::default()
            },
            hot: vec![
                HotRow {
                    route: "/tokens",
                    concurrency: 64,
                    ratio: spread(0.85, 0.8, 0.9),
                    route_rps: Some(17_000.0),
                    live_rps: Some(20_000.0),
                    p50_ms: Some(2.0),
                    p99_ms: Some(4.5),
                    errors: 0,
                },
                HotRow {
                    route: "/health",
                    concurrency: 64,
                    ratio: spread(0.45, 0.4, 0.5),
                    errors: 3,
                    ..HotRow::default()
                },
                HotRow {
                    route: "/tokens/validate",
                    concurrency: 16,
                    ratio: spread(0.5, 0.5, 0.5),
                    ..HotRow::default()
                },
            ],
            overhead: vec![
                OverheadRow {
                    name: "CPU profiling at 99 Hz (/tokens)",
                    ratio: spread(0.99, 0.97, 1.01),
                    target_percent: Some(2.0),
                    cpu_per_request_ratio: Some(1.004),
                    ..OverheadRow::default()
                },
                OverheadRow {
                    name: "allocator wrapper vs System (/tokens)",
                    target_percent: Some(1.0),
                    skipped: Some("no system-alloc binary".to_owned()),
                    ..OverheadRow::default()
                },
            ],
            memory: Memory {
                idle: Some(9_000_000),
                after_load: Some(31_000_000),
                after_load_secs: 10.0,
                ..Memory::default()
            },
            cold_start_ms: vec![30.0, 20.0, 60.0],
        }
    }

    #[test]
    fn targets_are_judged_in_the_table() {
        let text = render(&sample());
        let line = |start: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("| {start}")))
                .unwrap_or_else(|| panic!("no row {start} in\n{text}"))
                .to_owned()
        };
        let tokens = line("/tokens ÷ /health/live rps, c64");
        assert!(tokens.contains("| 0.85× | 0.80–0.90 |"), "{tokens}");
        assert!(
            tokens.contains("17.0k vs 20.0k rps; p50 2.00 ms / p99 4.50 ms"),
            "{tokens}"
        );
        assert!(tokens.ends_with("| ≥ 0.80× | pass |"), "{tokens}");
        assert!(line("/health ÷").ends_with("| ≥ 0.50× | FAIL |"));
        assert!(line("/health ÷").contains("3 errors"));
        // No target below c64.
        assert!(line("/tokens/validate ÷ /health/live rps, c16").ends_with("| - | - |"));
        assert!(line("/tokens p99 latency, c64").ends_with("| ≤ 3 ms | FAIL |"));
        let cpu = line("CPU profiling");
        assert!(
            cpu.contains("| +1.0 % (ratio 0.990) | -1.0 %–+3.0 % |"),
            "{cpu}"
        );
        assert!(cpu.contains("CPU per request ×1.004"), "{cpu}");
        assert!(cpu.ends_with("| ≤ 2 % | pass |"), "{cpu}");
        assert!(line("allocator wrapper").contains("skipped (no system-alloc binary)"));
        assert!(line("RSS idle").ends_with("| 9.0 MB | - | - | ≤ 15 MB | pass |"));
        assert!(line("RSS after load").contains("10 s after"));
        assert!(line("RSS after load").ends_with("| ≤ 30 MB | FAIL |"));
        assert!(line("RSS at the end").contains("| n/a |"));
        let cold = line("cold start");
        assert!(
            cold.contains("| 30.0 ms | 20.0–60.0 | median of 3 starts | ≤ 50 ms | pass |"),
            "{cold}"
        );
        assert!(text.contains("- git commit: abc1234\n"));
        assert!(text.contains(
            "alternating 3.0 s windows in one run, 5 pairs per hot-path ratio and 8 per overhead"
        ));
    }

    #[test]
    fn row_names_are_stable() {
        let names = row_names(&sample());
        assert_eq!(
            names.first().map(String::as_str),
            Some("/tokens ÷ /health/live rps, c64")
        );
        assert_eq!(
            names.last().map(String::as_str),
            Some("cold start to /health/ready 200")
        );
        assert_eq!(names.len(), 3 + 1 + 2 + 8 + 1);
    }
}
