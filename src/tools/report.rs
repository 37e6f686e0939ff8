//! Reads CPU and heap Markdown profiles into plain structs: ours (`CPU.<ts>.<pid>.md`,
//! `*.cpu-prof.md`, `Heap.<ts>.<pid>.md`, `*.heap-prof.md`) and Bun/Deno `--cpu-prof-md` files.
//!
//! Owns the layout knowledge (section names, column names, metadata keys). `parse` is pure;
//! `load` is the only function here that touches the filesystem. Unknown sections and columns
//! are ignored; a document that is neither a CPU nor a heap profile is an error.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

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
    pub metadata: Metadata,
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
}

#[derive(Debug, Clone, Default)]
pub struct HeapReport {
    pub live_bytes: Option<u64>,
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

/// Growth shorter than this is reported as not judged.
pub const MIN_GROWTH_WINDOW_SECONDS: f64 = 30.0;

impl HeapReport {
    /// The part of the growth timeline a rate is judged on: from the first row after the
    /// session's own start-up allocations (a session begins by allocating its tables, e.g.
    /// pprof's sample buckets, in its first second) to the last row. `None` when that leaves
    /// less than `MIN_GROWTH_WINDOW_SECONDS`: extrapolating seconds to an hour only measures
    /// noise.
    pub fn growth_window(&self) -> Option<(&GrowthPoint, &GrowthPoint)> {
        let last = self.growth.last()?;
        let first = match self.growth.as_slice() {
            [first, second, _, ..] if first.time_s < 1.0 && second.time_s <= 2.0 => second,
            [first, ..] => first,
            [] => return None,
        };
        (last.time_s - first.time_s >= MIN_GROWTH_WINDOW_SECONDS).then_some((first, last))
    }

    /// Live-heap growth in bytes per hour over `growth_window`.
    pub fn growth_per_hour(&self) -> Option<f64> {
        let (first, last) = self.growth_window()?;
        let elapsed = last.time_s - first.time_s;
        Some((last.live_bytes as f64 - first.live_bytes as f64) / elapsed * 3600.0)
    }

    /// Live bytes at the end: the last growth row, else the summary's live heap.
    pub fn steady_bytes(&self) -> Option<u64> {
        self.growth.last().map(|p| p.live_bytes).or(self.live_bytes)
    }
}

#[derive(Debug)]
pub enum ParseError {
    /// The first heading is not one we know.
    UnknownLayout { heading: Option<String> },
    /// A CPU profile without its Hot Functions table.
    NoHotFunctions,
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
            ParseError::NoHotFunctions => f.write_str("no '## Hot Functions (Self Time)' table"),
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
        Some("CPU Profile") => parse_cpu(&sections).map(Profile::Cpu),
        Some("Heap Profile") => Ok(Profile::Heap(parse_heap(&sections))),
        _ if has("Hot Functions") => parse_cpu(&sections).map(Profile::Cpu),
        _ if has("Growth Over Time") || has("Top Allocation Sites") => {
            Ok(Profile::Heap(parse_heap(&sections)))
        }
        other => Err(ParseError::UnknownLayout {
            heading: other.map(|h| h.chars().take(60).collect()),
        }),
    }
}

fn section<'a>(
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

fn parse_cpu(sections: &[markdown::Section<'_>]) -> Result<CpuReport, ParseError> {
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
        .ok_or(ParseError::NoHotFunctions)?;
    report.hot = hot_rows(&hot);
    match metadata(sections) {
        Some(metadata) => {
            report.layout = Some(Layout::Ours);
            report.metadata = metadata;
        }
        None => report.layout = Some(Layout::Bun),
    }
    Ok(report)
}

fn hot_rows(table: &Table) -> Vec<HotRow> {
    table
        .rows
        .iter()
        .filter_map(|row| {
            let function = strip_code(table.cell(row, "Function")?).to_owned();
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

fn count(text: &str) -> Option<u64> {
    parse_count(text).and_then(|n| u64::try_from(n).ok())
}

fn bytes(text: &str) -> Option<u64> {
    parse_bytes(text).and_then(|n| u64::try_from(n).ok())
}

fn parse_heap(sections: &[markdown::Section<'_>]) -> HeapReport {
    let mut report = HeapReport::default();
    if let Some(table) =
        section(sections, "Summary").and_then(|s| markdown::table_with(&s.lines, "Metric"))
    {
        for (metric, value) in table.pairs() {
            let value = value.as_str();
            match metric.to_ascii_lowercase().as_str() {
                "live heap" => report.live_bytes = bytes(value),
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
                })
            })
            .collect();
    }
    report.in_use = sites(sections, "Top Allocation Sites (In-Use)");
    report.allocated = sites(sections, "Top Allocation Sites (Allocated)");
    report.metadata = metadata(sections).unwrap_or_default();
    report
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
mod tests {
    use super::*;

    #[test]
    fn growth_is_judged_after_start_up_and_only_over_long_timelines() {
        let point = |time_s: f64, mib: u64| GrowthPoint {
            time_s,
            live_bytes: mib << 20,
            rss_bytes: None,
        };
        let with = |growth: Vec<GrowthPoint>| HeapReport {
            growth,
            ..HeapReport::default()
        };
        // The profiler's own tables appear in the first second: not service growth.
        let per_second: Vec<GrowthPoint> = std::iter::once(point(0.0, 10))
            .chain((1..=40).map(|second| point(f64::from(second), 90)))
            .collect();
        assert_eq!(with(per_second).growth_per_hour(), Some(0.0));
        let short = with(
            (0..=5)
                .map(|second| point(f64::from(second), 10 + second as u64))
                .collect(),
        );
        assert_eq!(
            short.growth_per_hour(),
            None,
            "5 s says nothing about an hour"
        );
        let steady = with(vec![point(0.0, 10), point(30.0, 11), point(60.0, 12)]);
        assert_eq!(steady.growth_per_hour(), Some(120.0 * 1024.0 * 1024.0));
    }

    const OURS: &str = "# CPU Profile

| Duration | Samples | Interval | Functions |
|----------|---------|----------|-----------|
| 2.82s | 279 | 10.1ms | 52 |

**Top 10:** `auth_service::jwt::sign` 18.9%, `core::fmt::write` 10.0%

## Hot Functions (Self Time)

| Self% | Self | Total% | Total | Function | Location |
|------:|-----:|-------:|------:|----------|----------|
| 18.9% | 534.5ms | 40.0% | 1.13s | `auth_service::jwt::sign` | `src/jwt.rs:42` |
| 10.0% | 282.0ms | 12.0% | 338.4ms | `core::fmt::write` | `[unknown]` |
| 1.1% | 31.0ms | 40.0% | 1.13s | `auth_service::jwt::sign` | `src/jwt.rs:50` |

## Call Tree (Total Time)

| Total% | Total | Self% | Self | Function | Location |
|-------:|------:|------:|-----:|----------|----------|
| 40.0% | 1.13s | 18.9% | 534.5ms | `  auth_service::jwt::sign` | `src/jwt.rs:42` |

## Profile Metadata

| Field | Value |
|-------|-------|
| trigger | sla |
| cpu_seconds | 2.41 |
| p95_ms | 153.2 |
";

    #[test]
    fn our_cpu_layout() {
        let Ok(Profile::Cpu(report)) = parse(OURS) else {
            panic!("not parsed as cpu");
        };
        assert_eq!(report.layout, Some(Layout::Ours));
        assert_eq!(report.duration_s, Some(2.82));
        assert_eq!(report.samples, Some(279));
        assert_eq!(report.function_count, Some(52));
        assert_eq!(report.hot.len(), 3);
        assert_eq!(report.hot[0].function, "auth_service::jwt::sign");
        assert_eq!(report.hot[0].location, "src/jwt.rs:42");
        assert_eq!(report.cpu_seconds(), Some(2.41));
        assert_eq!(report.metadata.get("trigger"), Some("sla"));
        let functions = report.functions();
        assert_eq!(functions.len(), 2);
        assert!((functions[0].self_percent - 20.0).abs() < 1e-9);
        assert_eq!(functions[0].location, "src/jwt.rs:42");
    }

    #[test]
    fn bun_cpu_layout() {
        let bun = "# CPU Profile\n\n| Duration | Samples | Interval | Functions |\n\
                   |----------|---------|----------|-----------|\n| 2.82s | 1821 | 1.0ms | 522 |\n\n\
                   ## Hot Functions (Self Time)\n\n| Self% | Self | Total% | Total | Function | Location |\n\
                   |------:|-----:|-------:|------:|----------|----------|\n\
                   | 12.0% | 338.4ms | 12.0% | 338.4ms | `(garbage collector)` | `[native code]` |\n\
                   | 8.0% | 225.6ms | 30.0% | 846.0ms | `signJwt` | `auth.js:12` |\n";
        let Ok(Profile::Cpu(report)) = parse(bun) else {
            panic!("not parsed as cpu");
        };
        assert_eq!(report.layout, Some(Layout::Bun));
        assert_eq!(report.interval_s, Some(0.001));
        assert_eq!(report.hot[1].location, "auth.js:12");
        assert_eq!(report.hot[0].location, "[native code]");
    }

    #[test]
    fn heap_layout() {
        let heap = "# Heap Profile\n\n## Summary\n\n| Metric | Value |\n|---|---|\n\
                    | Live heap | 12.30 MiB (12897280 bytes) |\n| Allocations | 1,000 |\n| Duration | 60s |\n\n\
                    ## Growth Over Time\n\n| Time | Live | Δ | Allocs/s | RSS |\n|---|---|---|---|---|\n\
                    | 0s | 10.00 MiB | +0 B | 10 | 20.00 MiB |\n| 60s | 11.00 MiB | +1.00 MiB | 12 | 21.00 MiB |\n\n\
                    ## Top Allocation Sites (In-Use)\n\n\
                    | In-use% | In-use | Objects | Alloc% | Allocated | Function | Location |\n\
                    |---:|---:|---:|---:|---:|---|---|\n\
                    | 50.0% | 6.15 MiB | 1000 | 10.0% | 20.00 MiB | `lru::LruCache::put` | `lru.rs:1` |\n\n\
                    ### `lru::LruCache::put`\n\n- stack\n";
        let Ok(Profile::Heap(report)) = parse(heap) else {
            panic!("not parsed as heap");
        };
        assert_eq!(report.live_bytes, Some(12_897_280));
        assert_eq!(report.allocations, Some(1000));
        assert_eq!(report.duration_s, Some(60.0));
        assert_eq!(report.growth.len(), 2);
        assert_eq!(report.growth_per_hour(), Some(60.0 * 1024.0 * 1024.0));
        assert_eq!(report.in_use[0].function, "lru::LruCache::put");
        assert_eq!(report.in_use[0].objects, Some(1000));
        assert!(report.allocated.is_empty());
    }

    #[test]
    fn other_documents_are_errors() {
        let cases = [
            "",
            "# README\n\nhello\n",
            "# Bun Heap Profile\n\n## Summary\n",
        ];
        for text in cases {
            assert!(
                matches!(parse(text), Err(ParseError::UnknownLayout { .. })),
                "{text:?}"
            );
        }
        assert!(matches!(
            parse("# CPU Profile\n\nnothing"),
            Err(ParseError::NoHotFunctions)
        ));
    }
}
