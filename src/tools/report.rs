//! Reads CPU and heap Markdown profiles into plain structs: ours (`CPU.<ts>.<pid>.md`,
//! `*.cpu-prof.md`, `Heap.<ts>.<pid>.md`, `*.heap-prof.md`) and Bun/Deno `--cpu-prof-md` files.
//!
//! Owns the layout knowledge (section names, column names, metadata keys). `parse` is pure;
//! `load` is the only function here that touches the filesystem. Unknown sections and columns
//! are ignored; a document that is neither a CPU nor a heap profile is an error, and so is one
//! that is not complete (`tools::completeness`): a truncated profile must never read as a
//! quiet one.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::tools::completeness;
use crate::tools::growth::{self, Growth, NotJudged};
use crate::tools::markdown::{self, Table, strip_code};
use crate::tools::units::{parse_bytes, parse_count, parse_duration, parse_number, parse_percent};

/// A parsed profile of either kind.
#[derive(Debug, Clone)]
pub enum Profile {
    Cpu(CpuReport),
    Heap(HeapReport),
}

impl Profile {
    pub fn kind(&self) -> &'static str {
        match self {
            Profile::Cpu(_) => "cpu",
            Profile::Heap(_) => "heap",
        }
    }
}

/// Which writer produced a CPU report: ours carries `## Profile Metadata`, Bun's and Deno's do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Ours,
    Bun,
}

#[derive(Debug, Clone, Default)]
pub struct CpuReport {
    pub layout: Option<Layout>,
    pub duration_s: Option<f64>,
    pub samples: Option<u64>,
    pub interval_s: Option<f64>,
    pub function_count: Option<u64>,
    /// Rows of `## Hot Functions (Self Time)`, in file order (one per function and line).
    pub hot: Vec<HotRow>,
    /// Rows of `## Call Tree (Total Time)`, indentation dropped (one per tree node).
    pub tree: Vec<HotRow>,
    /// Rows of our `## Our Functions (Total Time)`; empty in Bun's layout and older files.
    pub ours: Vec<HotRow>,
    /// Our `## Subsystems (Whole Stack)` section; `None` in Bun's layout and older files.
    pub subsystems: Option<SubsystemTable>,
    pub metadata: Metadata,
}

/// The whole-stack attribution the profiler wrote (`profiling::attribution`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubsystemTable {
    pub rows: Vec<SubsystemRow>,
    /// The `total` row's samples.
    pub total: Option<u64>,
    /// `kong_calls`, `allocation`, `lock_contention`, `by_thread_name` → (samples, percent).
    pub measures: BTreeMap<String, (u64, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubsystemRow {
    pub key: String,
    pub name: String,
    pub samples: u64,
    pub percent: f64,
    /// The frames that decided, with their samples, largest first.
    pub deciders: Vec<(String, u64)>,
}

impl SubsystemTable {
    /// A measure's share of all samples, in percent.
    pub fn measure_percent(&self, key: &str) -> Option<f64> {
        self.measures.get(key).map(|(_, percent)| *percent)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HotRow {
    pub self_pct: f64,
    pub self_s: Option<f64>,
    pub total_pct: Option<f64>,
    pub total_s: Option<f64>,
    pub function: String,
    pub location: String,
}

/// A function's share of the profile, its rows merged (self summed, total the largest).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionShare {
    pub function: String,
    pub self_percent: f64,
    pub self_seconds: Option<f64>,
    pub total_percent: Option<f64>,
    pub location: String,
}

impl CpuReport {
    /// One entry per function name, sorted by self time, largest first.
    pub fn functions(&self) -> Vec<FunctionShare> {
        let mut merged: Vec<FunctionShare> = Vec::new();
        let mut biggest_row: Vec<f64> = Vec::new();
        for row in &self.hot {
            match merged.iter().position(|f| f.function == row.function) {
                Some(i) => {
                    let share = &mut merged[i];
                    share.self_percent += row.self_pct;
                    share.self_seconds = match (share.self_seconds, row.self_s) {
                        (Some(a), Some(b)) => Some(a + b),
                        (a, b) => a.or(b),
                    };
                    share.total_percent = match (share.total_percent, row.total_pct) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                    if row.self_pct > biggest_row[i] {
                        biggest_row[i] = row.self_pct;
                        share.location = row.location.clone();
                    }
                }
                None => {
                    biggest_row.push(row.self_pct);
                    merged.push(FunctionShare {
                        function: row.function.clone(),
                        self_percent: row.self_pct,
                        self_seconds: row.self_s,
                        total_percent: row.total_pct,
                        location: row.location.clone(),
                    });
                }
            }
        }
        merged.sort_by(|a, b| b.self_percent.total_cmp(&a.self_percent));
        merged
    }

    /// CPU seconds: the metadata's getrusage figure, else the summary duration.
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.metadata.number("cpu_seconds")
    }

    /// This service's functions (`auth_service::`) by total time, largest first: our
    /// `## Our Functions (Total Time)` when present (it lists functions with no self time too),
    /// else the largest total of each function in Hot Functions and the call tree.
    pub fn our_functions(&self) -> Vec<FunctionShare> {
        let ours = |f: &str| f.starts_with("auth_service::") || f.starts_with("<auth_service::");
        let rows: Vec<&HotRow> = if self.ours.is_empty() {
            self.hot.iter().chain(&self.tree).collect()
        } else {
            self.ours.iter().collect()
        };
        let mut merged: Vec<FunctionShare> = Vec::new();
        for row in rows.into_iter().filter(|r| ours(&r.function)) {
            let total = row.total_pct.unwrap_or(row.self_pct);
            match merged.iter_mut().find(|f| f.function == row.function) {
                Some(share) => {
                    if total > share.total_percent.unwrap_or(0.0) {
                        share.total_percent = Some(total);
                    }
                }
                None => merged.push(FunctionShare {
                    function: row.function.clone(),
                    self_percent: row.self_pct,
                    self_seconds: row.self_s,
                    total_percent: Some(total),
                    location: row.location.clone(),
                }),
            }
        }
        // Self time comes from Hot Functions (the tree's self is per node, not per function).
        if self.ours.is_empty() {
            let hot = self.functions();
            for share in &mut merged {
                let own = hot.iter().find(|f| f.function == share.function);
                share.self_percent = own.map_or(0.0, |f| f.self_percent);
                share.self_seconds = own.and_then(|f| f.self_seconds);
            }
        }
        merged.sort_by(|a, b| {
            let total = |f: &FunctionShare| f.total_percent.unwrap_or(f.self_percent);
            total(b).total_cmp(&total(a))
        });
        merged
    }

    /// Samples for one CPU-second of one core: `duration × frequency` (from the metadata, else
    /// the summary's duration and interval). `None` when neither is known.
    pub fn possible_samples(&self) -> Option<f64> {
        let duration = self
            .metadata
            .number("duration_seconds")
            .or(self.duration_s)?;
        let hz = self
            .metadata
            .number("frequency_hz")
            .or_else(|| self.interval_s.filter(|i| *i > 0.0).map(|i| 1.0 / i))?;
        (duration > 0.0 && hz > 0.0).then_some(duration * hz)
    }
}

/// The `## Profile Metadata` table, keys as written.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metadata(pub BTreeMap<String, String>);

impl Metadata {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn number(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(parse_number)
    }

    /// The routes with their own latency rows (`p95_ms@/tokens`, written by `profile` and
    /// `load --profile` for every route of the run), in key order.
    pub fn routes(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|key| key.strip_prefix("p95_ms@"))
            .collect()
    }
}

#[derive(Debug, Clone, Default)]
pub struct HeapReport {
    pub live_bytes: Option<u64>,
    /// The profiler's own heap (sample tables, symbols, report building), counted apart from
    /// the service's by writers that can tell them apart.
    pub profiler_bytes: Option<u64>,
    pub profiler_peak_bytes: Option<u64>,
    pub peak_bytes: Option<u64>,
    pub rss_bytes: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    pub allocations: Option<u64>,
    pub frees: Option<u64>,
    pub live_blocks: Option<u64>,
    pub bytes_allocated: Option<u64>,
    pub sampling_rate: Option<String>,
    pub samples: Option<u64>,
    pub dropped_samples: Option<u64>,
    pub duration_s: Option<f64>,
    pub growth: Vec<GrowthPoint>,
    pub in_use: Vec<Site>,
    pub allocated: Vec<Site>,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GrowthPoint {
    pub time_s: f64,
    pub live_bytes: u64,
    pub rss_bytes: Option<u64>,
    /// Taken while the profiler built its report (the writer marks such rows); not service
    /// growth.
    pub report_tail: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    pub in_use_percent: Option<f64>,
    pub in_use_bytes: Option<u64>,
    pub objects: Option<u64>,
    pub alloc_percent: Option<f64>,
    pub allocated_bytes: Option<u64>,
    pub function: String,
    pub location: String,
}

impl HeapReport {
    /// The growth fit over the timeline (`tools::growth`).
    pub fn growth(&self) -> Result<Growth, NotJudged> {
        growth::fit(&self.growth, self.duration_s)
    }

    /// Live bytes at the end of the session: the last growth row that is not report-building
    /// tail (marked, or after the stated duration), else the summary's live heap.
    pub fn steady_bytes(&self) -> Option<u64> {
        let end = self.duration_s.map_or(f64::INFINITY, |d| d + 0.5);
        self.growth
            .iter()
            .rev()
            .find(|p| !p.report_tail && p.time_s <= end)
            .map(|p| p.live_bytes)
            .or(self.live_bytes)
    }
}

#[derive(Debug)]
pub enum ParseError {
    /// The first heading is not one we know.
    UnknownLayout { heading: Option<String> },
    /// A profile that stops early or contradicts itself (`tools::completeness`).
    Incomplete { reason: String },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::UnknownLayout { heading: Some(h) } => write!(
                f,
                "heading '# {h}' is neither '# CPU Profile' nor '# Heap Profile'"
            ),
            ParseError::UnknownLayout { heading: None } => {
                f.write_str("no '# CPU Profile' or '# Heap Profile' heading")
            }
            ParseError::Incomplete { reason } => f.write_str(reason),
        }
    }
}

impl StdError for ParseError {}

#[derive(Debug)]
pub enum LoadError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Parse {
        path: PathBuf,
        source: ParseError,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Read { path, .. } => write!(f, "cannot read profile {}", path.display()),
            LoadError::Parse {
                path,
                source: ParseError::Incomplete { .. },
            } => write!(
                f,
                "{} is incomplete or truncated, refusing to analyze it",
                path.display()
            ),
            LoadError::Parse { path, .. } => {
                write!(f, "{} is not a CPU or heap profile", path.display())
            }
        }
    }
}

impl StdError for LoadError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            LoadError::Read { source, .. } => Some(source),
            LoadError::Parse { source, .. } => Some(source),
        }
    }
}

impl LoadError {
    /// This layer's message and the underlying cause, for a one-line cause chain.
    pub fn into_parts(self) -> (String, Box<dyn StdError + Send + Sync>) {
        let message = self.to_string();
        match self {
            LoadError::Read { source, .. } => (message, Box::new(source)),
            LoadError::Parse { source, .. } => (message, Box::new(source)),
        }
    }
}

/// Reads and parses one profile file.
pub fn load(path: &Path) -> Result<Profile, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&String::from_utf8_lossy(&bytes)).map_err(|source| LoadError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Parses a document of either layout.
pub fn parse(text: &str) -> Result<Profile, ParseError> {
    let sections = markdown::sections(text);
    let first = sections.iter().find(|s| s.level == 1).map(|s| s.title);
    let has = |title: &str| sections.iter().any(|s| s.title.starts_with(title));
    match first {
        Some("CPU Profile") => parse_cpu(text, &sections).map(Profile::Cpu),
        Some("Heap Profile") => parse_heap(text, &sections).map(Profile::Heap),
        _ if has("Hot Functions") => parse_cpu(text, &sections).map(Profile::Cpu),
        _ if has("Growth Over Time") || has("Top Allocation Sites") => {
            parse_heap(text, &sections).map(Profile::Heap)
        }
        other => Err(ParseError::UnknownLayout {
            heading: other.map(|h| h.chars().take(60).collect()),
        }),
    }
}

pub(crate) fn section<'a>(
    sections: &'a [markdown::Section<'a>],
    prefix: &str,
) -> Option<&'a markdown::Section<'a>> {
    sections.iter().find(|s| s.title.starts_with(prefix))
}

fn metadata(sections: &[markdown::Section<'_>]) -> Option<Metadata> {
    let section = section(sections, "Profile Metadata")?;
    let table = markdown::tables(&section.lines).into_iter().next()?;
    Some(Metadata(
        table
            .pairs()
            .into_iter()
            .map(|(k, v)| (strip_code(&k).to_owned(), strip_code(&v).to_owned()))
            .collect(),
    ))
}

fn parse_cpu(text: &str, sections: &[markdown::Section<'_>]) -> Result<CpuReport, ParseError> {
    let mut report = CpuReport::default();
    // The summary table sits under `# CPU Profile`, before any `##`.
    if let Some(summary) = sections
        .iter()
        .filter(|s| s.level <= 1)
        .find_map(|s| markdown::table_with(&s.lines, "Samples"))
        && let Some(row) = summary.rows.first()
    {
        report.duration_s = summary.cell(row, "Duration").and_then(parse_duration);
        report.samples = summary.cell(row, "Samples").and_then(count);
        report.interval_s = summary.cell(row, "Interval").and_then(parse_duration);
        report.function_count = summary.cell(row, "Functions").and_then(count);
    }
    let hot = section(sections, "Hot Functions")
        .and_then(|s| markdown::table_with(&s.lines, "Self%"))
        .ok_or_else(|| ParseError::Incomplete {
            reason: "no '## Hot Functions (Self Time)' table: the file stops before it".into(),
        })?;
    report.hot = hot_rows(&hot);
    report.tree = section(sections, "Call Tree")
        .and_then(|s| markdown::table_with(&s.lines, "Total%"))
        .map(|t| hot_rows(&t))
        .unwrap_or_default();
    report.ours = section(sections, "Our Functions")
        .and_then(|s| markdown::table_with(&s.lines, "Total%"))
        .map(|t| hot_rows(&t))
        .unwrap_or_default();
    report.subsystems = section(sections, "Subsystems").map(|s| subsystem_table(&s.lines));
    let metadata = metadata(sections);
    let ours = metadata.is_some()
        || report.subsystems.is_some()
        || completeness::end_marker(text).is_some();
    report.layout = Some(if ours { Layout::Ours } else { Layout::Bun });
    report.metadata = metadata.unwrap_or_default();
    completeness::check_cpu(text, sections, &report)?;
    Ok(report)
}

fn subsystem_table(lines: &[&str]) -> SubsystemTable {
    let mut out = SubsystemTable::default();
    if let Some(table) = markdown::table_with(lines, "Subsystem") {
        for row in &table.rows {
            let cell = |name: &str| table.cell(row, name).unwrap_or("");
            let key = cell("Key").to_owned();
            let samples = count(cell("Samples")).unwrap_or(0);
            if key == "total" {
                out.total = Some(samples);
                continue;
            }
            out.rows.push(SubsystemRow {
                key,
                name: cell("Subsystem").to_owned(),
                samples,
                percent: parse_percent(cell("Share")).unwrap_or(0.0),
                deciders: deciders(cell("Deciding frames")),
            });
        }
    }
    if let Some(table) = markdown::table_with(lines, "Measure") {
        for row in &table.rows {
            let cell = |name: &str| table.cell(row, name).unwrap_or("");
            out.measures.insert(
                cell("Measure").to_owned(),
                (
                    count(cell("Samples")).unwrap_or(0),
                    parse_percent(cell("Share")).unwrap_or(0.0),
                ),
            );
        }
    }
    out
}

/// `` `a::b` 72, `<c as d>::e` 5 `` → [(a::b, 72), (<c as d>::e, 5)].
fn deciders(cell: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut rest = cell;
    while let Some(open) = rest.find('`') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('`') else { break };
        let name = &after[..close];
        let tail = &after[close + 1..];
        let number: String = tail
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        out.push((name.to_owned(), number.parse().unwrap_or(0)));
        rest = tail;
    }
    out
}

fn hot_rows(table: &Table) -> Vec<HotRow> {
    table
        .rows
        .iter()
        .filter_map(|row| {
            let function = strip_code(table.cell(row, "Function")?).trim().to_owned();
            Some(HotRow {
                self_pct: table.cell(row, "Self%").and_then(parse_percent)?,
                self_s: table.cell(row, "Self").and_then(parse_duration),
                total_pct: table.cell(row, "Total%").and_then(parse_percent),
                total_s: table.cell(row, "Total").and_then(parse_duration),
                location: table
                    .cell(row, "Location")
                    .map(strip_code)
                    .unwrap_or("")
                    .to_owned(),
                function,
            })
        })
        .filter(|row| !row.function.is_empty())
        .collect()
}

pub(crate) fn count(text: &str) -> Option<u64> {
    parse_count(text).and_then(|n| u64::try_from(n).ok())
}

fn bytes(text: &str) -> Option<u64> {
    parse_bytes(text).and_then(|n| u64::try_from(n).ok())
}

fn parse_heap(text: &str, sections: &[markdown::Section<'_>]) -> Result<HeapReport, ParseError> {
    completeness::check_heap(text, sections)?;
    let mut report = HeapReport::default();
    if let Some(table) =
        section(sections, "Summary").and_then(|s| markdown::table_with(&s.lines, "Metric"))
    {
        for (metric, value) in table.pairs() {
            let value = value.as_str();
            match metric.to_ascii_lowercase().as_str() {
                "live heap" => report.live_bytes = bytes(value),
                "profiler heap" => report.profiler_bytes = bytes(value),
                "profiler peak heap" => report.profiler_peak_bytes = bytes(value),
                "peak heap" => report.peak_bytes = bytes(value),
                "rss" => report.rss_bytes = bytes(value),
                "peak rss" => report.peak_rss_bytes = bytes(value),
                "allocations" => report.allocations = count(value),
                "frees" => report.frees = count(value),
                "live blocks" => report.live_blocks = count(value),
                "bytes allocated" => report.bytes_allocated = bytes(value),
                "sampling rate" => report.sampling_rate = Some(value.to_owned()),
                "samples" => report.samples = count(value),
                "dropped samples" => report.dropped_samples = count(value),
                "duration" => report.duration_s = parse_duration(value),
                _ => {}
            }
        }
    }
    if let Some(table) =
        section(sections, "Growth Over Time").and_then(|s| markdown::table_with(&s.lines, "Live"))
    {
        report.growth = table
            .rows
            .iter()
            .filter_map(|row| {
                Some(GrowthPoint {
                    time_s: table.cell(row, "Time").and_then(parse_duration)?,
                    live_bytes: table.cell(row, "Live").and_then(bytes)?,
                    rss_bytes: table.cell(row, "RSS").and_then(bytes),
                    // The writer marks points taken while it built its reports.
                    report_tail: table
                        .cell(row, "Phase")
                        .is_some_and(|phase| strip_code(phase).eq_ignore_ascii_case("report")),
                })
            })
            .collect();
    }
    report.in_use = sites(sections, "Top Allocation Sites (In-Use)");
    report.allocated = sites(sections, "Top Allocation Sites (Allocated)");
    report.metadata = metadata(sections).unwrap_or_default();
    Ok(report)
}

fn sites(sections: &[markdown::Section<'_>], title: &str) -> Vec<Site> {
    let Some(table) =
        section(sections, title).and_then(|s| markdown::table_with(&s.lines, "Function"))
    else {
        return Vec::new();
    };
    table
        .rows
        .iter()
        .filter_map(|row| {
            Some(Site {
                in_use_percent: table.cell(row, "In-use%").and_then(parse_percent),
                in_use_bytes: table.cell(row, "In-use").and_then(bytes),
                objects: table.cell(row, "Objects").and_then(count),
                alloc_percent: table.cell(row, "Alloc%").and_then(parse_percent),
                allocated_bytes: table.cell(row, "Allocated").and_then(bytes),
                function: strip_code(table.cell(row, "Function")?).to_owned(),
                location: table
                    .cell(row, "Location")
                    .map(strip_code)
                    .unwrap_or("")
                    .to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
