//! The terminal summary of a profiled run: the SLA verdict per route first, then throughput
//! and errors, the top findings with their first action, the files written and the command
//! that shows the full report. What `profile` and `load --profile` print instead of the whole
//! Markdown analysis (which goes to `analysis.md` and `analysis.json`).
//!
//! Pure: takes the run's figures and an `Analysis`, returns text in which every line fits
//! the given width (long paths lose their middle, long prose its end). Colour is the
//! caller's decision (a terminal, `NO_COLOR`); this module only applies it.

use std::path::{Path, PathBuf};

use crate::tools::analysis::{Analysis, measure};
use crate::tools::budgets::Severity;

/// Every line of the summary fits this many columns.
pub const WIDTH: usize = 100;
/// How many findings the summary names.
pub const TOP_FINDINGS: usize = 3;

/// What a run measured on one route.
#[derive(Debug, Clone)]
pub struct RouteResult {
    pub route: String,
    pub requests: u64,
    pub errors: u64,
    /// Replies by status code, plus `transport` for requests that got none.
    pub statuses: Vec<(String, u64)>,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub threshold_p95_ms: Option<f64>,
    pub threshold_p99_ms: Option<f64>,
}

impl RouteResult {
    /// `Some(true)` within both thresholds, `Some(false)` over one, `None` without an SLA.
    pub fn within_sla(&self) -> Option<bool> {
        match (self.threshold_p95_ms, self.threshold_p99_ms) {
            (Some(t95), Some(t99)) => Some(self.p95_ms <= t95 && self.p99_ms <= t99),
            (Some(t95), None) => Some(self.p95_ms <= t95),
            (None, Some(t99)) => Some(self.p99_ms <= t99),
            (None, None) => None,
        }
    }
}

/// The run as a whole.
pub struct RunResult<'a> {
    /// `profile tokens`, `load smoke`.
    pub title: &'a str,
    pub duration_seconds: f64,
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    pub routes: &'a [RouteResult],
    /// Every crossed load threshold (latency or error rate), as the load summary words it.
    pub failures: &'a [String],
}

/// Where the run's output went and how to see the full report.
pub struct Outputs<'a> {
    /// The profiles of the run (Markdown, pprof, SVG), as they should be shown.
    pub profiles: &'a [PathBuf],
    /// `analysis.md` and `analysis.json`, when written.
    pub analysis: Option<(&'a Path, &'a Path)>,
    /// The profile Markdown files `analyze` takes.
    pub markdown: &'a [PathBuf],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Bold,
    Good,
    Bad,
    Warn,
    Dim,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Plain => "",
            Style::Bold => "\x1b[1m",
            Style::Good => "\x1b[32m",
            Style::Bad => "\x1b[1;31m",
            Style::Warn => "\x1b[33m",
            Style::Dim => "\x1b[2m",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Never shortened.
    Keep,
    /// Shortened at its end (prose).
    End,
    /// Shortened in the middle (a path keeps its start and its file name).
    Middle,
}

/// One output line as styled pieces, so its width is measured without escape codes.
#[derive(Default)]
struct Line(Vec<(String, Style, Cut)>);

impl Line {
    fn new() -> Line {
        Line::default()
    }

    fn text(mut self, text: impl Into<String>) -> Line {
        self.0.push((text.into(), Style::Plain, Cut::Keep));
        self
    }

    fn styled(mut self, text: impl Into<String>, style: Style) -> Line {
        self.0.push((text.into(), style, Cut::Keep));
        self
    }

    fn prose(mut self, text: impl Into<String>) -> Line {
        self.0.push((text.into(), Style::Plain, Cut::End));
        self
    }

    fn path(mut self, path: &Path) -> Line {
        self.0
            .push((path.display().to_string(), Style::Plain, Cut::Middle));
        self
    }

    /// Shortens the cuttable pieces (last first) until the line fits `width`, then renders.
    fn render(mut self, width: usize, colour: bool) -> String {
        let len = |pieces: &[(String, Style, Cut)]| -> usize {
            pieces.iter().map(|(t, _, _)| t.chars().count()).sum()
        };
        let mut excess = len(&self.0).saturating_sub(width);
        for (text, _, cut) in self.0.iter_mut().rev() {
            if excess == 0 {
                break;
            }
            let chars = text.chars().count();
            // Keep at least a little of a piece so it still says what it was.
            let keep = chars.saturating_sub(excess + 1).max(8.min(chars));
            if keep + 1 >= chars {
                continue;
            }
            *text = match cut {
                Cut::Keep => continue,
                Cut::End => shorten_end(text, keep),
                Cut::Middle => shorten_middle(text, keep),
            };
            excess = excess.saturating_sub(chars - text.chars().count());
        }
        let mut out = String::new();
        for (text, style, _) in &self.0 {
            if colour && *style != Style::Plain {
                out.push_str(style.code());
                out.push_str(text);
                out.push_str("\x1b[0m");
            } else {
                out.push_str(text);
            }
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
        out
    }
}

/// The first `keep` characters and an ellipsis.
fn shorten_end(text: &str, keep: usize) -> String {
    let mut out: String = text.chars().take(keep).collect();
    out.push('…');
    out
}

/// About a third of `keep` from the start, an ellipsis, the rest from the end.
fn shorten_middle(text: &str, keep: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let head = keep / 3;
    let tail = keep - head;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

fn severity_style(severity: Severity) -> Style {
    match severity {
        Severity::Critical | Severity::High => Style::Bad,
        Severity::Medium => Style::Warn,
        Severity::Low => Style::Dim,
    }
}

fn ms(value: f64) -> String {
    format!("{value:.2}")
}

fn limit(value: Option<f64>) -> String {
    value.map(|v| format!("{v}")).unwrap_or_else(|| "-".into())
}

/// The summary, every line at most `width` columns (escape codes aside).
pub fn render(
    run: &RunResult<'_>,
    analysis: Option<&Analysis>,
    outputs: &Outputs<'_>,
    width: usize,
    colour: bool,
) -> String {
    let mut lines: Vec<Line> = Vec::new();
    let judged: Vec<bool> = run.routes.iter().filter_map(|r| r.within_sla()).collect();
    let (verdict, style) = if judged.is_empty() {
        ("no SLA threshold for these routes", Style::Dim)
    } else if judged.iter().all(|ok| *ok) {
        ("SLA met on every route", Style::Good)
    } else {
        ("SLA MISSED", Style::Bad)
    };
    lines.push(
        Line::new()
            .styled(format!("{}: ", run.title), Style::Bold)
            .styled(verdict, style),
    );
    let error_rate = if run.requests == 0 {
        0.0
    } else {
        run.errors as f64 / run.requests as f64 * 100.0
    };
    lines.push(
        Line::new()
            .text(format!(
                "throughput {:.1} req/s over {:.1}s: {} requests, ",
                run.rps, run.duration_seconds, run.requests
            ))
            .styled(
                format!("{} errors ({error_rate:.2}%)", run.errors),
                if run.errors == 0 {
                    Style::Plain
                } else {
                    Style::Warn
                },
            ),
    );
    lines.push(Line::new());
    let route_width = run
        .routes
        .iter()
        .map(|r| r.route.len())
        .chain([5])
        .max()
        .unwrap_or(5)
        .min(24);
    lines.push(Line::new().styled(
        format!(
            "  {:<route_width$}  {:>8}  {:>8}  {:>8}  {:>11}  {:>9}  {:>7}  verdict",
            "route", "p50 ms", "p95 ms", "p99 ms", "SLA p95/p99", "requests", "errors"
        ),
        Style::Dim,
    ));
    for route in run.routes {
        let (word, style) = match route.within_sla() {
            Some(true) => ("pass", Style::Good),
            Some(false) => ("FAIL", Style::Bad),
            None => ("no SLA", Style::Dim),
        };
        let name: String = if route.route.len() > route_width {
            shorten_end(&route.route, route_width - 1)
        } else {
            route.route.clone()
        };
        lines.push(
            Line::new()
                .text(format!(
                    "  {name:<route_width$}  {:>8}  {:>8}  {:>8}  {:>11}  {:>9}  {:>7}  ",
                    ms(route.p50_ms),
                    ms(route.p95_ms),
                    ms(route.p99_ms),
                    format!(
                        "{}/{}",
                        limit(route.threshold_p95_ms),
                        limit(route.threshold_p99_ms)
                    ),
                    route.requests,
                    route.errors
                ))
                .styled(word, style),
        );
    }
    for route in run.routes {
        let statuses: Vec<String> = route
            .statuses
            .iter()
            .map(|(status, n)| format!("{status}={n}"))
            .collect();
        lines.push(
            Line::new()
                .styled(format!("  {}: ", route.route), Style::Dim)
                .prose(format!("statuses {}", statuses.join(" "))),
        );
    }
    for failure in run.failures {
        lines.push(
            Line::new()
                .styled("  threshold crossed: ", Style::Bad)
                .prose(failure.as_str()),
        );
    }
    if let Some(analysis) = analysis {
        lines.push(Line::new());
        let findings = &analysis.findings;
        if findings.is_empty() {
            lines.push(
                Line::new()
                    .styled("findings: ", Style::Bold)
                    .styled("none: every budget and limit is met", Style::Good),
            );
        } else {
            lines.push(Line::new().styled(
                format!(
                    "top findings ({} of {}):",
                    findings.len().min(TOP_FINDINGS),
                    findings.len()
                ),
                Style::Bold,
            ));
        }
        for (n, finding) in findings.iter().take(TOP_FINDINGS).enumerate() {
            let severity = finding.severity.as_str().to_uppercase();
            lines.push(
                Line::new()
                    .text(format!("  {}. ", n + 1))
                    .styled(format!("{severity:<8}"), severity_style(finding.severity))
                    .text(" ")
                    .prose(format!(
                        "{}: {} against {}",
                        finding.topic,
                        measure(finding.measured, finding.unit),
                        measure(finding.limit, finding.unit)
                    )),
            );
            if let Some(action) = finding.action_items.first() {
                lines.push(Line::new().text("              -> ").prose(*action));
            }
        }
    }
    if !outputs.profiles.is_empty() || outputs.analysis.is_some() {
        lines.push(Line::new());
        lines.push(Line::new().styled("files:", Style::Bold));
        for path in outputs.profiles {
            lines.push(Line::new().text("  ").path(path));
        }
        if let Some((md, json)) = outputs.analysis {
            lines.push(Line::new().text("  ").path(md));
            lines.push(Line::new().text("  ").path(json));
        }
    }
    if !outputs.markdown.is_empty() {
        lines.push(Line::new());
        for line in full_report(outputs, width) {
            lines.push(line);
        }
    }
    lines
        .into_iter()
        .map(|line| line.render(width, colour))
        .collect()
}

/// `full report: ./run.sh analyze A B` on one line when it fits, else one file a line with
/// shell continuations, so it can still be pasted as it stands.
fn full_report(outputs: &Outputs<'_>, width: usize) -> Vec<Line> {
    let command = "./run.sh analyze";
    let files: Vec<String> = outputs
        .markdown
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let one = format!("full report: {command} {}", files.join(" "));
    let mut lines = Vec::new();
    if one.chars().count() <= width {
        lines.push(
            Line::new()
                .styled("full report: ", Style::Bold)
                .text(&one[13..]),
        );
    } else {
        lines.push(
            Line::new()
                .styled("full report: ", Style::Bold)
                .text(format!("{command} \\")),
        );
        for (n, file) in outputs.markdown.iter().enumerate() {
            let tail = if n + 1 < files.len() { " \\" } else { "" };
            lines.push(Line::new().text("    ").path(file).text(tail));
        }
    }
    if let Some((md, _)) = outputs.analysis {
        lines.push(Line::new().text("         or: less ").path(md));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, p95: f64, threshold: Option<f64>) -> RouteResult {
        RouteResult {
            route: name.to_owned(),
            requests: 1000,
            errors: 0,
            statuses: vec![("200".to_owned(), 1000)],
            p50_ms: p95 / 2.0,
            p95_ms: p95,
            p99_ms: p95 * 1.5,
            threshold_p95_ms: threshold,
            threshold_p99_ms: threshold.map(|t| t * 2.0),
        }
    }

    #[test]
    fn verdicts_per_route_and_every_line_fits() {
        let routes = [
            route("/tokens", 1.5, Some(100.0)),
            route("/health", 900.0, Some(400.0)),
            route("/health/live", 0.2, None),
        ];
        let run = RunResult {
            title: "profile mixed",
            duration_seconds: 10.0,
            requests: 3000,
            errors: 0,
            rps: 300.0,
            routes: &routes,
            failures: &["/health p95 900.0ms > 400ms".to_owned()],
        };
        let long = PathBuf::from(format!(
            "/very/{}/profiles/current/mixed-20260101_000000.cpu-prof.md",
            "deep/".repeat(30)
        ));
        let profiles = [long.clone()];
        let (md, json) = (long.with_extension("a.md"), long.with_extension("a.json"));
        let outputs = Outputs {
            profiles: &profiles,
            analysis: Some((&md, &json)),
            markdown: &profiles,
        };
        let text = render(&run, None, &outputs, WIDTH, false);
        for line in text.lines() {
            assert!(
                line.chars().count() <= WIDTH,
                "{} > {WIDTH}: {line}",
                line.len()
            );
        }
        assert!(text.starts_with("profile mixed: SLA MISSED\n"), "{text}");
        assert!(text.contains("FAIL"), "{text}");
        assert!(text.contains("no SLA"), "{text}");
        assert!(text.contains("  /tokens: statuses 200=1000"), "{text}");
        assert!(text.contains("threshold crossed: /health p95"), "{text}");
        assert!(text.contains("mixed-20260101_000000.cpu-prof.md"), "{text}");
        assert!(!text.contains('\x1b'), "plain when not coloured");
        let coloured = render(&run, None, &outputs, WIDTH, true);
        assert!(
            coloured.contains("\x1b[1;31mSLA MISSED\x1b[0m"),
            "{coloured}"
        );
    }

    #[test]
    fn shortening_keeps_both_ends_of_a_path() {
        let line = Line::new()
            .text("  ")
            .path(Path::new("/a/very/long/path/to/tokens.cpu-prof.md"))
            .render(30, false);
        assert_eq!(line.trim_end().chars().count(), 30, "{line}");
        assert!(line.trim_end().ends_with("tokens.cpu-prof.md"), "{line}");
        let line = Line::new()
            .text("x ")
            .prose("a sentence that is far too long")
            .render(12, false);
        assert_eq!(line, "x a sentenc…\n");
    }
}
