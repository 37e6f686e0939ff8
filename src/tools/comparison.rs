//! The `compare` report: summary deltas (throughput, p95, p99 and a better / worse / within
//! noise verdict among them), per-function Self% before and after, new and vanished hot
//! functions, subsystem and heap deltas between two profiles of the same kind.
//!
//! The noise rule: a change counts only when it is larger than the noise band, which is twice
//! the larger per-second throughput variation of the two runs (`rps_variation_percent` in the
//! metadata, written by `profile` and `load --profile`), and at least `MIN_NOISE_PERCENT`;
//! when neither run recorded it, `DEFAULT_NOISE_PERCENT`.
//!
//! Pure: takes two parsed profiles, returns a `Comparison` (serde for JSON) and its Markdown.

use serde::Serialize;

use crate::tools::categories::{self, Method};
use crate::tools::markdown::{code, render_table};
use crate::tools::report::{CpuReport, FunctionShare, HeapReport, Profile};
use crate::tools::units::{format_bytes, format_duration, format_signed_bytes};

/// How many functions of each side count as "top".
pub const TOP: usize = 15;
/// Below this Self% a function counts as absent.
pub const HOT_FLOOR_PERCENT: f64 = 0.5;
/// The noise band when neither run recorded its variation.
pub const DEFAULT_NOISE_PERCENT: f64 = 10.0;
/// The narrowest noise band, however steady the runs were.
pub const MIN_NOISE_PERCENT: f64 = 5.0;

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub base: String,
    pub new: String,
    pub kind: &'static str,
    pub summary: Vec<Delta>,
    /// Throughput and latency judged against the noise band; `None` for heap profiles.
    pub verdict: Option<Verdict>,
    pub functions: Vec<FunctionDelta>,
    pub new_hot: Vec<FunctionDelta>,
    pub vanished: Vec<FunctionDelta>,
    /// CPU by subsystem, and how each side's shares were obtained (`whole_stack`/`leaf_only`).
    pub categories: Vec<Delta>,
    pub attribution: Option<(Method, Method)>,
    pub heap: Vec<Delta>,
}

/// Better, worse or within noise, over throughput, p95 and p99.
#[derive(Debug, Serialize)]
pub struct Verdict {
    /// `better`, `worse`, `within noise`, or `no verdict` when neither side has the figures.
    pub word: &'static str,
    pub noise_percent: f64,
    /// Where the noise band came from.
    pub noise_from: String,
    /// Each change beyond the band, e.g. `p95 +35.2% (worse)`.
    pub changes: Vec<String>,
}

/// Judges the RPS, p95 and p99 deltas of `summary` against the noise band.
fn verdict(summary: &[Delta], base: &CpuReport, new: &CpuReport) -> Verdict {
    let variation = |r: &CpuReport| r.metadata.number("rps_variation_percent");
    let (noise_percent, noise_from) = match (variation(base), variation(new)) {
        (None, None) => (
            DEFAULT_NOISE_PERCENT,
            "default: neither run recorded its per-second variation".to_owned(),
        ),
        (b, n) => {
            let larger = b.unwrap_or(0.0).max(n.unwrap_or(0.0));
            (
                (2.0 * larger).max(MIN_NOISE_PERCENT),
                format!(
                    "2 x the larger per-second throughput variation ({larger:.1}%), at least \
                     {MIN_NOISE_PERCENT:.0}%"
                ),
            )
        }
    };
    let mut changes = Vec::new();
    let (mut better, mut worse, mut judged) = (0, 0, 0);
    for delta in summary {
        let higher_is_better = match delta.metric.as_str() {
            "Throughput" => true,
            "Latency p95" | "Latency p99" => false,
            _ => continue,
        };
        let Some(percent) = delta.delta_percent else {
            continue;
        };
        judged += 1;
        if percent.abs() <= noise_percent {
            continue;
        }
        let good = (percent > 0.0) == higher_is_better;
        if good {
            better += 1;
        } else {
            worse += 1;
        }
        let name = match delta.metric.as_str() {
            "Throughput" => "rps".to_owned(),
            other => other.trim_start_matches("Latency ").to_owned(),
        };
        let word = if good { "better" } else { "worse" };
        changes.push(format!("{name} {percent:+.1}% ({word})"));
    }
    let word = match (judged, worse, better) {
        (0, _, _) => "no verdict",
        (_, w, _) if w > 0 => "worse",
        (_, _, b) if b > 0 => "better",
        _ => "within noise",
    };
    Verdict {
        word,
        noise_percent,
        noise_from,
        changes,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Rps,
    Seconds,
    Count,
    Ms,
    Bytes,
    BytesPerHour,
    Percent,
}

#[derive(Debug, Serialize)]
pub struct Delta {
    pub metric: String,
    pub unit: Unit,
    pub base: Option<f64>,
    pub new: Option<f64>,
    pub delta: Option<f64>,
    pub delta_percent: Option<f64>,
}

impl Delta {
    fn new(metric: &str, unit: Unit, base: Option<f64>, new: Option<f64>) -> Delta {
        let delta = base.zip(new).map(|(b, n)| n - b);
        let delta_percent = base
            .zip(delta)
            .filter(|(b, _)| *b != 0.0)
            .map(|(b, d)| d / b * 100.0);
        Delta {
            metric: metric.to_owned(),
            unit,
            base,
            new,
            delta,
            delta_percent,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FunctionDelta {
    pub function: String,
    pub base_self_percent: Option<f64>,
    pub new_self_percent: Option<f64>,
    /// Percentage points; an absent side counts as 0.
    pub delta: f64,
}

#[derive(Debug)]
pub enum CompareError {
    KindMismatch {
        base: &'static str,
        new: &'static str,
    },
}

impl std::fmt::Display for CompareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompareError::KindMismatch { base, new } => {
                write!(f, "cannot compare a {base} profile with a {new} profile")
            }
        }
    }
}

impl std::error::Error for CompareError {}

pub fn compare(
    base_name: &str,
    base: &Profile,
    new_name: &str,
    new: &Profile,
) -> Result<Comparison, CompareError> {
    let mut out = Comparison {
        base: base_name.to_owned(),
        new: new_name.to_owned(),
        kind: base.kind(),
        summary: Vec::new(),
        verdict: None,
        functions: Vec::new(),
        new_hot: Vec::new(),
        vanished: Vec::new(),
        categories: Vec::new(),
        attribution: None,
        heap: Vec::new(),
    };
    match (base, new) {
        (Profile::Cpu(b), Profile::Cpu(n)) => compare_cpu(&mut out, b, n),
        (Profile::Heap(b), Profile::Heap(n)) => out.heap = compare_heap(b, n),
        (b, n) => {
            return Err(CompareError::KindMismatch {
                base: b.kind(),
                new: n.kind(),
            });
        }
    }
    Ok(out)
}

fn compare_cpu(out: &mut Comparison, base: &CpuReport, new: &CpuReport) {
    let u = |v: Option<u64>| v.map(|v| v as f64);
    let meta = |r: &CpuReport, key: &str| r.metadata.number(key);
    out.summary = vec![
        Delta::new("Duration", Unit::Seconds, base.duration_s, new.duration_s),
        Delta::new("Samples", Unit::Count, u(base.samples), u(new.samples)),
        Delta::new(
            "CPU seconds",
            Unit::Seconds,
            base.cpu_seconds(),
            new.cpu_seconds(),
        ),
        Delta::new(
            "Functions",
            Unit::Count,
            u(base.function_count),
            u(new.function_count),
        ),
    ];
    out.summary.push(Delta::new(
        "Throughput",
        Unit::Rps,
        meta(base, "rps"),
        meta(new, "rps"),
    ));
    for key in ["p95_ms", "p99_ms"] {
        let label = format!("Latency {}", &key[..3]);
        out.summary.push(Delta::new(
            &label,
            Unit::Ms,
            meta(base, key),
            meta(new, key),
        ));
    }
    out.summary.retain(|d| d.base.is_some() || d.new.is_some());
    out.verdict = Some(verdict(&out.summary, base, new));

    let base_fns = base.functions();
    let new_fns = new.functions();
    let find = |list: &[FunctionShare], name: &str| {
        list.iter()
            .find(|f| f.function == name)
            .map(|f| f.self_percent)
    };
    let delta_of = |name: &str| {
        let b = find(&base_fns, name);
        let n = find(&new_fns, name);
        FunctionDelta {
            function: name.to_owned(),
            base_self_percent: b,
            new_self_percent: n,
            delta: n.unwrap_or(0.0) - b.unwrap_or(0.0),
        }
    };
    let mut names: Vec<&str> = Vec::new();
    for f in base_fns.iter().take(TOP).chain(new_fns.iter().take(TOP)) {
        if !names.contains(&f.function.as_str()) {
            names.push(&f.function);
        }
    }
    out.functions = names.iter().map(|n| delta_of(n)).collect();
    out.functions.sort_by(|a, b| {
        let key = |d: &FunctionDelta| {
            d.base_self_percent
                .unwrap_or(0.0)
                .max(d.new_self_percent.unwrap_or(0.0))
        };
        key(b).total_cmp(&key(a))
    });
    let cold = |p: Option<f64>| p.is_none_or(|p| p < HOT_FLOOR_PERCENT);
    out.new_hot = new_fns
        .iter()
        .take(TOP)
        .filter(|f| cold(find(&base_fns, &f.function)))
        .map(|f| delta_of(&f.function))
        .collect();
    out.vanished = base_fns
        .iter()
        .take(TOP)
        .filter(|f| cold(find(&new_fns, &f.function)))
        .map(|f| delta_of(&f.function))
        .collect();

    // Whole-stack shares when a side has them, leaf-only otherwise (see `categories`).
    let base_shares = categories::shares(base);
    let new_shares = categories::shares(new);
    out.categories = base_shares
        .subsystems
        .iter()
        .zip(&new_shares.subsystems)
        .map(|(b, n)| Delta::new(b.name, Unit::Percent, Some(b.percent), Some(n.percent)))
        .collect();
    out.attribution = Some((base_shares.method, new_shares.method));
}

fn compare_heap(base: &HeapReport, new: &HeapReport) -> Vec<Delta> {
    let u = |v: Option<u64>| v.map(|v| v as f64);
    let rows = [
        (
            "Live heap",
            Unit::Bytes,
            u(base.live_bytes),
            u(new.live_bytes),
        ),
        (
            "Peak heap",
            Unit::Bytes,
            u(base.peak_bytes),
            u(new.peak_bytes),
        ),
        ("RSS", Unit::Bytes, u(base.rss_bytes), u(new.rss_bytes)),
        (
            "Live at end",
            Unit::Bytes,
            u(base.steady_bytes()),
            u(new.steady_bytes()),
        ),
        (
            "Growth",
            Unit::BytesPerHour,
            base.growth()
                .ok()
                .map(|g| if g.flat { 0.0 } else { g.bytes_per_hour }),
            new.growth()
                .ok()
                .map(|g| if g.flat { 0.0 } else { g.bytes_per_hour }),
        ),
        (
            "Allocations",
            Unit::Count,
            u(base.allocations),
            u(new.allocations),
        ),
        ("Frees", Unit::Count, u(base.frees), u(new.frees)),
        (
            "Bytes allocated",
            Unit::Bytes,
            u(base.bytes_allocated),
            u(new.bytes_allocated),
        ),
        ("Duration", Unit::Seconds, base.duration_s, new.duration_s),
    ];
    rows.into_iter()
        .filter(|(_, _, b, n)| b.is_some() || n.is_some())
        .map(|(metric, unit, b, n)| Delta::new(metric, unit, b, n))
        .collect()
}

fn show(unit: Unit, value: f64) -> String {
    match unit {
        Unit::Rps => format!("{value:.1} req/s"),
        Unit::Seconds => format_duration(value),
        Unit::Count => format!("{value:.0}"),
        Unit::Ms => format!("{value:.1} ms"),
        Unit::Bytes => format_bytes(value.max(0.0) as u64),
        Unit::BytesPerHour => format!("{}/h", format_signed_bytes(value as i64)),
        Unit::Percent => format!("{value:.1}%"),
    }
}

fn show_delta(unit: Unit, delta: f64) -> String {
    if delta == 0.0 {
        return "0".into();
    }
    let sign = if delta > 0.0 { "+" } else { "" };
    match unit {
        Unit::Bytes => format_signed_bytes(delta as i64),
        Unit::BytesPerHour => format!("{}/h", format_signed_bytes(delta as i64)),
        Unit::Percent => format!("{sign}{delta:.1} pts"),
        Unit::Seconds if delta < 0.0 => format!("-{}", format_duration(-delta)),
        _ => format!("{sign}{}", show(unit, delta)),
    }
}

fn pct(value: Option<f64>) -> String {
    value
        .map(|v| format!("{v:.1}%"))
        .unwrap_or_else(|| "-".into())
}

fn deltas_table(deltas: &[Delta]) -> String {
    let na = || "-".to_owned();
    let rows: Vec<Vec<String>> = deltas
        .iter()
        .map(|d| {
            vec![
                d.metric.clone(),
                d.base.map(|v| show(d.unit, v)).unwrap_or_else(na),
                d.new.map(|v| show(d.unit, v)).unwrap_or_else(na),
                d.delta.map(|v| show_delta(d.unit, v)).unwrap_or_else(na),
                d.delta_percent
                    .filter(|_| d.unit != Unit::Percent)
                    .map(|p| format!("{p:+.1}%"))
                    .unwrap_or_else(na),
            ]
        })
        .collect();
    render_table(
        &["Metric", "Base", "New", "Δ", "Δ%"],
        &[false, true, true, true, true],
        &rows,
    )
}

fn functions_table(functions: &[FunctionDelta]) -> String {
    let rows: Vec<Vec<String>> = functions
        .iter()
        .map(|f| {
            vec![
                code(&f.function),
                pct(f.base_self_percent),
                pct(f.new_self_percent),
                format!("{:+.1}", f.delta),
            ]
        })
        .collect();
    render_table(
        &["Function", "Base Self%", "New Self%", "Δ (pts)"],
        &[false, true, true, true],
        &rows,
    )
}

/// The Markdown comparison.
pub fn render(c: &Comparison) -> String {
    let mut out = String::from("# Profile Comparison\n\n");
    out.push_str(&format!(
        "**Base:** {}  \n**New:** {}  \n**Kind:** {}\n\n",
        code(&c.base),
        code(&c.new),
        c.kind
    ));
    if c.kind == "cpu" {
        out.push_str("## Summary\n\n");
        out.push_str(&deltas_table(&c.summary));
        if let Some(v) = &c.verdict {
            let changes = if v.changes.is_empty() {
                String::new()
            } else {
                format!(": {}", v.changes.join(", "))
            };
            let missing = if v.word == "no verdict" {
                " (neither profile carries rps, p95 or p99; `profile` and `load --profile` \
                 write them)"
            } else {
                ""
            };
            out.push_str(&format!(
                "\n**Verdict: {}**{changes}{missing}. Noise band ±{:.1}% ({}).\n",
                v.word, v.noise_percent, v.noise_from
            ));
        }
        out.push_str(&format!(
            "\n## Top Functions (Self%)\n\nUnion of the top {TOP} of each profile; Δ in \
             percentage points.\n\n"
        ));
        out.push_str(&functions_table(&c.functions));
        out.push_str(&format!(
            "\n## New Hot Functions\n\nIn the new top {TOP}, absent or under \
             {HOT_FLOOR_PERCENT}% in the base.\n\n"
        ));
        out.push_str(&function_list(&c.new_hot, true));
        out.push_str(&format!(
            "\n## Vanished Hot Functions\n\nIn the base top {TOP}, absent or under \
             {HOT_FLOOR_PERCENT}% in the new profile.\n\n"
        ));
        out.push_str(&function_list(&c.vanished, false));
        out.push_str("\n## CPU by Subsystem\n\n");
        if let Some((base, new)) = c.attribution
            && base != new
        {
            out.push_str(&format!(
                "The two sides were attributed differently (base: {}; new: {}): kernel and libc \
                 time moves between subsystems for that reason alone.\n\n",
                base.describe(),
                new.describe()
            ));
        }
        out.push_str(&deltas_table(&c.categories));
    } else {
        out.push_str("## Heap\n\n");
        out.push_str(&deltas_table(&c.heap));
    }
    out
}

fn function_list(list: &[FunctionDelta], new: bool) -> String {
    if list.is_empty() {
        return "None.\n".into();
    }
    list.iter()
        .map(|f| {
            let (now, then) = if new {
                (f.new_self_percent, f.base_self_percent)
            } else {
                (f.base_self_percent, f.new_self_percent)
            };
            let other = if new { "base" } else { "new" };
            format!(
                "- {} {} ({other}: {})\n",
                code(&f.function),
                pct(now),
                then.map(|p| format!("{p:.1}%"))
                    .unwrap_or_else(|| "absent".into())
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::report::HotRow;

    fn cpu(rows: &[(&str, f64)]) -> Profile {
        Profile::Cpu(CpuReport {
            hot: rows
                .iter()
                .map(|(f, p)| HotRow {
                    self_pct: *p,
                    self_s: None,
                    total_pct: None,
                    total_s: None,
                    function: (*f).into(),
                    location: String::new(),
                })
                .collect(),
            samples: Some(100),
            ..CpuReport::default()
        })
    }

    #[test]
    fn new_and_vanished_functions() {
        let base = cpu(&[("a", 30.0), ("b", 10.0), ("c", 0.3), ("gone", 5.0)]);
        let new = cpu(&[("a", 20.0), ("b", 12.0), ("c", 8.0), ("fresh", 4.0)]);
        let c = compare("base.md", &base, "new.md", &new).expect("same kind");
        let names = |l: &[FunctionDelta]| l.iter().map(|f| f.function.clone()).collect::<Vec<_>>();
        assert_eq!(names(&c.new_hot), ["c", "fresh"]);
        assert_eq!(names(&c.vanished), ["gone"]);
        let a = c.functions.iter().find(|f| f.function == "a").unwrap();
        assert_eq!(a.delta, -10.0);
        assert_eq!(c.summary[0].metric, "Samples");
        assert_eq!(c.summary[0].delta, Some(0.0));
        assert_eq!(c.verdict.as_ref().map(|v| v.word), Some("no verdict"));
    }

    fn with_run(rps: &str, p95: &str, variation: Option<&str>) -> Profile {
        let Profile::Cpu(mut report) = cpu(&[("a", 10.0)]) else {
            unreachable!()
        };
        let meta = &mut report.metadata.0;
        meta.insert("rps".into(), rps.into());
        meta.insert("p95_ms".into(), p95.into());
        meta.insert("p99_ms".into(), p95.into());
        if let Some(v) = variation {
            meta.insert("rps_variation_percent".into(), v.into());
        }
        Profile::Cpu(report)
    }

    #[test]
    fn verdicts_follow_the_noise_band() {
        let judge = |base: Profile, new: Profile| {
            let c = compare("b", &base, "n", &new).unwrap();
            let v = c.verdict.unwrap();
            (v.word, v.noise_percent)
        };
        // No variation recorded: the 10 % default.
        assert_eq!(
            judge(
                with_run("1000", "1.0", None),
                with_run("1080", "1.05", None)
            ),
            ("within noise", 10.0)
        );
        assert_eq!(
            judge(with_run("1000", "1.0", None), with_run("1200", "1.0", None)).0,
            "better"
        );
        // Steady runs (1 %): the 5 % floor, so +8 % throughput is real.
        assert_eq!(
            judge(
                with_run("1000", "1.0", Some("1")),
                with_run("1080", "1.0", Some("0.5"))
            ),
            ("better", 5.0)
        );
        // Noisy runs (15 %): a 25 % slower p95 is within noise, 40 % is not.
        assert_eq!(
            judge(
                with_run("1000", "1.0", Some("15")),
                with_run("1000", "1.25", None)
            ),
            ("within noise", 30.0)
        );
        assert_eq!(
            judge(
                with_run("1000", "1.0", Some("15")),
                with_run("1500", "1.40", None)
            )
            .0,
            "worse"
        );
        let text = render(
            &compare(
                "b",
                &with_run("1000", "1.0", None),
                "n",
                &with_run("850", "1.0", None),
            )
            .unwrap(),
        );
        assert!(
            text.contains("| Throughput | 1000.0 req/s | 850.0 req/s |"),
            "{text}"
        );
        assert!(text.contains("**Verdict: worse**: rps"), "{text}");
    }

    #[test]
    fn kinds_must_match() {
        let heap = Profile::Heap(HeapReport::default());
        assert!(compare("a", &cpu(&[]), "b", &heap).is_err());
    }
}
