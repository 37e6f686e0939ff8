//! What `profile` and `load --profile` do once a profiled run's files are in place (not a
//! subcommand; shared by those two): add the run's figures to the CPU profile's
//! `## Profile Metadata` (per-route p95/p99 and thresholds, throughput and its variation),
//! analyze the profiles, write the full report beside them as `<run>.analysis.md` and
//! `.json` (atomically), and print the terminal summary (`tools::digest`).
//!
//! Must not send requests or start processes: the run is over when this is called.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::cmd::CmdError;
use crate::config::Env;
use crate::loadgen::Outcome;
use crate::loadgen::remote;
use crate::loadgen::stats::{EndpointStats, LatencyMs};
use crate::loadgen::summary::Summary;
use crate::tools::digest::{self, Outputs, RouteResult, RunResult};
use crate::tools::{Stdout, analysis, report, storage};

/// Colour on a terminal unless `NO_COLOR` has a value (no-color.org).
pub fn colour(env: &Env) -> bool {
    std::io::stdout().is_terminal() && env.get("NO_COLOR").is_none()
}

/// The metadata rows of a run: `what` (e.g. `scenario tokens`), the profiled `route`, p95/p99
/// over all requests (and the route's thresholds when it has one), the same per route as
/// `p95_ms@<route>` …, requests, rps and `rps_variation_percent` (what `compare` calls noise).
pub fn metadata_rows(
    what: (&str, &str),
    route: &str,
    outcome: &Outcome,
    summary: &Summary,
) -> Vec<(String, String)> {
    let mut all = EndpointStats::default();
    for (_, stats) in &outcome.endpoints {
        all.merge(stats);
    }
    let latency = LatencyMs::of(&all.latency);
    let row = |key: &str, value: String| (key.to_owned(), value);
    let mut rows = vec![
        row(what.0, what.1.to_owned()),
        row("route", route.to_owned()),
        row("p95_ms", format!("{:.2}", latency.p95)),
        row("p99_ms", format!("{:.2}", latency.p99)),
        row("requests", summary.requests.to_string()),
        row("rps", format!("{:.1}", summary.rps)),
    ];
    if let Some(cv) = outcome.rps_variation_percent() {
        rows.push(row("rps_variation_percent", format!("{cv:.1}")));
    }
    if let Some(e) = summary.endpoints.iter().find(|e| e.route == route) {
        if let Some(t) = e.threshold_p95_ms {
            rows.push(row("threshold_p95_ms", t.to_string()));
        }
        if let Some(t) = e.threshold_p99_ms {
            rows.push(row("threshold_p99_ms", t.to_string()));
        }
    }
    for e in &summary.endpoints {
        let r = e.route;
        rows.push(row(
            &format!("p95_ms@{r}"),
            format!("{:.2}", e.latency_ms.p95),
        ));
        rows.push(row(
            &format!("p99_ms@{r}"),
            format!("{:.2}", e.latency_ms.p99),
        ));
        if let Some(t) = e.threshold_p95_ms {
            rows.push(row(&format!("threshold_p95_ms@{r}"), t.to_string()));
        }
        if let Some(t) = e.threshold_p99_ms {
            rows.push(row(&format!("threshold_p99_ms@{r}"), t.to_string()));
        }
    }
    rows
}

/// The CPU Markdown profile among a run's files, else the heap one.
fn first_markdown(files: &[PathBuf]) -> Option<&PathBuf> {
    let markdown = profile_markdown(files);
    markdown
        .iter()
        .find(|p| is_kind(p, "cpu"))
        .or_else(|| markdown.first())
        .copied()
}

fn is_kind(path: &Path, kind: &str) -> bool {
    let name = file_name(path).to_ascii_lowercase();
    name.contains(&format!("{kind}-prof.")) || name.starts_with(&format!("{kind}."))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The Markdown profiles (CPU, heap) among a run's files; not its analysis.
fn profile_markdown(files: &[PathBuf]) -> Vec<&PathBuf> {
    files
        .iter()
        .filter(|p| {
            let name = file_name(p);
            name.ends_with(".md")
                && !storage::is_analysis(&name)
                && (is_kind(p, "cpu") || is_kind(p, "heap"))
        })
        .collect()
}

/// Adds the run's rows to its CPU profile, when it has one.
pub fn record_metadata(files: &[PathBuf], rows: &[(String, String)]) -> Result<(), CmdError> {
    match profile_markdown(files)
        .into_iter()
        .find(|p| is_kind(p, "cpu"))
    {
        Some(cpu) => append_metadata_file(cpu, rows),
        None => Ok(()),
    }
}

/// Analyzes the run's Markdown profiles, writes `analysis.md`/`.json` beside them, and prints
/// the terminal summary of the run (the verdicts from `summary`, the findings from the
/// analysis).
pub fn report(
    title: &str,
    summary: &Summary,
    files: &[PathBuf],
    colour: bool,
    out: &mut Stdout,
) -> Result<(), CmdError> {
    let markdown: Vec<PathBuf> = profile_markdown(files).into_iter().cloned().collect();
    let mut analysis_paths = None;
    let mut analysis = None;
    if let Some(first) = first_markdown(files) {
        let mut profiles = Vec::new();
        for path in &markdown {
            profiles.push((path.display().to_string(), report::load(path)?));
        }
        let result = analysis::analyze(&profiles);
        let (md, json) = storage::analysis_paths(first);
        let markdown_text = analysis::render(&result);
        let json_text =
            serde_json::to_string_pretty(&result).expect("the analysis serializes") + "\n";
        for (path, text) in [(&md, markdown_text), (&json, json_text)] {
            remote::write_atomically(path, text.as_bytes())
                .map_err(|err| CmdError::failed_with("cannot write the analysis", err))?;
        }
        analysis_paths = Some((md, json));
        analysis = Some(result);
    }
    let routes: Vec<RouteResult> = summary
        .endpoints
        .iter()
        .map(|e| RouteResult {
            route: e.route.to_owned(),
            requests: e.requests,
            errors: e.errors,
            statuses: e
                .statuses
                .iter()
                .map(|(status, n)| (status.clone(), *n))
                .chain(
                    (e.transport_errors > 0).then(|| ("transport".to_owned(), e.transport_errors)),
                )
                .collect(),
            p50_ms: e.latency_ms.p50,
            p95_ms: e.latency_ms.p95,
            p99_ms: e.latency_ms.p99,
            threshold_p95_ms: e.threshold_p95_ms,
            threshold_p99_ms: e.threshold_p99_ms,
        })
        .collect();
    let run = RunResult {
        title,
        duration_seconds: summary.duration_seconds,
        requests: summary.requests,
        errors: summary.errors,
        rps: summary.rps,
        routes: &routes,
        failures: &summary.failures,
    };
    let outputs = Outputs {
        profiles: files,
        analysis: analysis_paths
            .as_ref()
            .map(|(md, json)| (md.as_path(), json.as_path())),
        markdown: &markdown,
    };
    let text = digest::render(&run, analysis.as_ref(), &outputs, digest::WIDTH, colour);
    out.write(&format!("\n{text}"))
        .map_err(|err| CmdError::failed_with("cannot write the summary", err))
}

pub fn append_metadata_file(path: &Path, rows: &[(String, String)]) -> Result<(), CmdError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| CmdError::failed_with(format!("cannot read {}", path.display()), err))?;
    remote::write_atomically(path, append_metadata(&text, rows).as_bytes())
        .map_err(|err| CmdError::failed_with("cannot update the CPU profile metadata", err))
}

/// Adds `| key | value |` rows at the end of the `## Profile Metadata` table, or appends the
/// section when the report has none.
fn append_metadata(text: &str, rows: &[(String, String)]) -> String {
    let rendered: String = rows
        .iter()
        .map(|(key, value)| format!("| {key} | {value} |\n"))
        .collect();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let heading = lines
        .iter()
        .position(|line| line.trim_end() == "## Profile Metadata");
    let Some(heading) = heading else {
        let mut out = text.to_owned();
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("\n## Profile Metadata\n\n| Field | Value |\n|-------|-------|\n");
        out.push_str(&rendered);
        return out;
    };
    // The table is the first run of `|` lines after the heading (before the next section).
    let mut table_end = None;
    for (index, line) in lines.iter().enumerate().skip(heading + 1) {
        let line = line.trim();
        if line.starts_with("## ") {
            break;
        }
        if line.starts_with('|') {
            table_end = Some(index + 1);
        } else if table_end.is_some() {
            break;
        }
    }
    let insert_at = match table_end {
        Some(end) => end,
        None => {
            let mut out: String = lines[..=heading].concat();
            out.push_str("\n| Field | Value |\n|-------|-------|\n");
            out.push_str(&rendered);
            out.push_str(&lines[heading + 1..].concat());
            return out;
        }
    };
    let mut out: String = lines[..insert_at].concat();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&rendered);
    out.push_str(&lines[insert_at..].concat());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<(String, String)> {
        vec![
            ("scenario".to_owned(), "tokens".to_owned()),
            ("p95_ms".to_owned(), "1.50".to_owned()),
        ]
    }

    #[test]
    fn metadata_rows_join_the_existing_table() {
        let text = "# CPU Profile\n\n## Profile Metadata\n\n| Field | Value |\n|-------|-------|\n\
                    | trigger | sigterm |\n\n## Function Details\n\nx\n";
        let out = append_metadata(text, &rows());
        assert!(out.contains("| trigger | sigterm |\n| scenario | tokens |\n| p95_ms | 1.50 |\n\n## Function Details"), "{out}");
        let parsed = report::parse(&format!(
            "# CPU Profile\n\n| Duration | Samples | Interval | Functions |\n|---|---|---|---|\n| 1.00s | 10 | 10.0ms | 1 |\n\n{}",
            &out["# CPU Profile\n\n".len()..]
        ));
        if let Ok(report::Profile::Cpu(cpu)) = parsed {
            assert_eq!(cpu.metadata.get("scenario"), Some("tokens"));
        }
        let at_end = append_metadata(
            "## Profile Metadata\n\n| Field | Value |\n|---|---|\n| a | b |",
            &rows(),
        );
        assert!(
            at_end.ends_with("| a | b |\n| scenario | tokens |\n| p95_ms | 1.50 |\n"),
            "{at_end}"
        );
        let missing = append_metadata("# CPU Profile\n", &rows());
        assert!(missing.ends_with("## Profile Metadata\n\n| Field | Value |\n|-------|-------|\n| scenario | tokens |\n| p95_ms | 1.50 |\n"));
    }

    #[test]
    fn markdown_profiles_and_their_kinds() {
        let files: Vec<PathBuf> = [
            "o/tokens-1.heap-prof.md",
            "o/tokens-1.cpu-prof.md",
            "o/tokens-1.cpu-prof.svg",
            "o/tokens-1.analysis.md",
            "r/Heap.1.2.md",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(profile_markdown(&files).len(), 3);
        assert_eq!(first_markdown(&files), Some(&files[1]));
        assert_eq!(first_markdown(&files[4..]), Some(&files[4]));
    }
}
