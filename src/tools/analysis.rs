//! The `analyze` report: builds an `Analysis` from parsed profiles and renders it as Markdown
//! (or hands it to serde for JSON).
//!
//! Pure: takes parsed profiles and their display names, returns values and strings. The
//! judgement (categories, limits, severities, action items) lives in `recommend`.

use serde::Serialize;

use crate::tools::markdown::{code, render_table};
use crate::tools::recommend::{self, CategoryShare, Finding, Severity};
use crate::tools::report::{
    CpuReport, FunctionShare, HeapReport, Layout, MIN_GROWTH_WINDOW_SECONDS, Profile, Site,
};
use crate::tools::units::{format_bytes, format_duration, format_signed_bytes};

const TOP_FUNCTIONS: usize = 10;
const OUR_FUNCTIONS: usize = 5;
const TOP_SITES: usize = 10;

#[derive(Debug, Serialize)]
pub struct Analysis {
    pub sources: Vec<Source>,
    pub cpu: Vec<CpuSummary>,
    pub memory: Vec<MemorySummary>,
    pub findings: Vec<Finding>,
    /// False when no finding was made: the report says "No budget crossed".
    pub budget_crossed: bool,
}

#[derive(Debug, Serialize)]
pub struct Source {
    pub path: String,
    pub kind: &'static str,
    pub layout: Option<Layout>,
}

#[derive(Debug, Serialize)]
pub struct CpuSummary {
    pub source: String,
    pub layout: Option<Layout>,
    pub duration_seconds: Option<f64>,
    pub samples: Option<u64>,
    pub interval_seconds: Option<f64>,
    pub functions: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub trigger: Option<String>,
    pub route: Option<String>,
    /// p95 and p99 against their SLA thresholds; empty when the metadata has no latency.
    pub latency: Vec<Latency>,
    pub top_functions: Vec<FunctionShare>,
    /// This service's own functions (`auth_service::`) by total time: where to start reading
    /// when the top of the profile is syscalls and the allocator.
    pub our_functions: Vec<FunctionShare>,
    pub categories: Vec<CategoryShare>,
    pub uncategorized_percent: f64,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub percentile: &'static str,
    pub measured_ms: f64,
    pub threshold_ms: Option<f64>,
    pub within_sla: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct MemorySummary {
    pub source: String,
    pub live_bytes: Option<u64>,
    pub peak_bytes: Option<u64>,
    pub rss_bytes: Option<u64>,
    pub steady_bytes: Option<u64>,
    pub growth_bytes_per_hour: Option<f64>,
    pub growth_window_seconds: Option<f64>,
    pub allocations: Option<u64>,
    pub bytes_allocated: Option<u64>,
    pub top_in_use: Vec<Site>,
}

/// Analyses `(display name, profile)` pairs in the given order.
pub fn analyze(profiles: &[(String, Profile)]) -> Analysis {
    let mut analysis = Analysis {
        sources: Vec::new(),
        cpu: Vec::new(),
        memory: Vec::new(),
        findings: Vec::new(),
        budget_crossed: false,
    };
    for (name, profile) in profiles {
        match profile {
            Profile::Cpu(report) => {
                analysis.sources.push(Source {
                    path: name.clone(),
                    kind: "cpu",
                    layout: report.layout,
                });
                let (summary, findings) = cpu(name, report);
                analysis.cpu.push(summary);
                analysis.findings.extend(findings);
            }
            Profile::Heap(report) => {
                analysis.sources.push(Source {
                    path: name.clone(),
                    kind: "heap",
                    layout: None,
                });
                let summary = memory(name, report);
                analysis.findings.extend(recommend::memory_findings(
                    name,
                    summary.growth_bytes_per_hour,
                    summary.peak_bytes,
                    summary.steady_bytes,
                ));
                analysis.memory.push(summary);
            }
        }
    }
    analysis.findings.sort_by(|a, b| {
        a.severity
            .cmp(&b.severity)
            .then((b.measured / b.limit).total_cmp(&(a.measured / a.limit)))
    });
    analysis.budget_crossed = !analysis.findings.is_empty();
    analysis
}

fn cpu(name: &str, report: &CpuReport) -> (CpuSummary, Vec<Finding>) {
    let functions = report.functions();
    let (categories, uncategorized) = recommend::category_shares(&functions);
    let meta = &report.metadata;
    let mut latency = Vec::new();
    let mut over = Vec::new();
    for (percentile, key, threshold_key) in [
        ("p95", "p95_ms", "threshold_p95_ms"),
        ("p99", "p99_ms", "threshold_p99_ms"),
    ] {
        let Some(measured) = meta.number(key) else {
            continue;
        };
        let threshold = meta.number(threshold_key);
        latency.push(Latency {
            percentile,
            measured_ms: measured,
            threshold_ms: threshold,
            within_sla: threshold.map(|t| measured <= t),
        });
        if let Some(threshold) = threshold {
            over.push((percentile, measured, threshold));
        }
    }
    let route = meta.get("route").map(str::to_owned);
    let mut findings = recommend::cpu_findings(name, &categories, report.cpu_seconds());
    findings.extend(recommend::latency_findings(name, route.as_deref(), &over));
    let summary = CpuSummary {
        source: name.to_owned(),
        layout: report.layout,
        duration_seconds: report
            .duration_s
            .or_else(|| meta.number("duration_seconds")),
        samples: report.samples,
        interval_seconds: report.interval_s,
        functions: report.function_count,
        cpu_seconds: report.cpu_seconds(),
        trigger: meta.get("trigger").map(str::to_owned),
        route,
        latency,
        our_functions: our_functions(&functions),
        top_functions: functions.into_iter().take(TOP_FUNCTIONS).collect(),
        categories,
        uncategorized_percent: uncategorized,
    };
    (summary, findings)
}

fn memory(name: &str, report: &HeapReport) -> MemorySummary {
    let window = report
        .growth_window()
        .map(|(first, last)| last.time_s - first.time_s);
    MemorySummary {
        source: name.to_owned(),
        live_bytes: report.live_bytes,
        peak_bytes: report.peak_bytes,
        rss_bytes: report.rss_bytes,
        steady_bytes: report.steady_bytes(),
        growth_bytes_per_hour: report.growth_per_hour(),
        growth_window_seconds: window,
        allocations: report.allocations,
        bytes_allocated: report.bytes_allocated,
        top_in_use: report.in_use.iter().take(TOP_SITES).cloned().collect(),
    }
}

fn or_na<T>(value: Option<T>, show: impl Fn(T) -> String) -> String {
    value
        .map(show)
        .unwrap_or_else(|| "not available".to_owned())
}

/// The Markdown report.
pub fn render(analysis: &Analysis) -> String {
    let mut out = String::from("# Profile Analysis Report\n\n");
    let sources: Vec<String> = analysis
        .sources
        .iter()
        .map(|s| {
            let layout = match (s.kind, s.layout) {
                ("cpu", Some(Layout::Bun)) => "CPU, Bun/Deno layout",
                ("cpu", _) => "CPU",
                _ => "heap",
            };
            format!("{} ({layout})", code(&s.path))
        })
        .collect();
    out.push_str(&format!("**Sources:** {}\n\n", sources.join(", ")));

    let many = analysis.cpu.len() > 1;
    out.push_str("## Performance Summary\n\n");
    if analysis.cpu.is_empty() {
        out.push_str("No CPU profile given: duration, samples and latency are not available.\n\n");
    }
    for cpu in &analysis.cpu {
        if many {
            out.push_str(&format!("### {}\n\n", code(&cpu.source)));
        }
        out.push_str(&performance_table(cpu));
        out.push('\n');
    }

    out.push_str("## Top CPU Consumers\n\n");
    if analysis.cpu.is_empty() {
        out.push_str("No CPU profile given.\n\n");
    }
    for cpu in &analysis.cpu {
        if many {
            out.push_str(&format!("### {}\n\n", code(&cpu.source)));
        }
        out.push_str(&top_functions_table(cpu));
        out.push_str("\n**CPU by category** (each function counted once):\n\n");
        if cpu.layout == Some(Layout::Bun) {
            out.push_str(
                "This is a Bun/Deno profile: JavaScript function names do not map to this \
                 service's Rust categories, so they count as uncategorized.\n\n",
            );
        }
        out.push_str(&categories_table(cpu));
        out.push('\n');
    }

    out.push_str("## Memory Usage\n\n");
    if analysis.memory.is_empty() {
        out.push_str(
            "No heap report given: pass a `Heap.<ts>.<pid>.md` or `*.heap-prof.md` file to see \
             live and peak heap, growth and allocation sites.\n\n",
        );
    }
    let many = analysis.memory.len() > 1;
    for memory in &analysis.memory {
        if many {
            out.push_str(&format!("### {}\n\n", code(&memory.source)));
        }
        out.push_str(&memory_section(memory));
    }

    out.push_str("## Optimization Opportunities\n\n");
    out.push_str(&findings_section(&analysis.findings));
    out
}

fn performance_table(cpu: &CpuSummary) -> String {
    let mut rows = vec![
        vec![
            "Duration".into(),
            or_na(cpu.duration_seconds, format_duration),
        ],
        vec![
            "Samples".into(),
            match (cpu.samples, cpu.interval_seconds) {
                (Some(n), Some(i)) => format!("{n} (every {})", format_duration(i)),
                (n, _) => or_na(n, |n| n.to_string()),
            },
        ],
        vec![
            "CPU seconds".into(),
            or_na(cpu.cpu_seconds, |s| format!("{s:.2}")),
        ],
        vec!["Functions".into(), or_na(cpu.functions, |n| n.to_string())],
    ];
    if let Some(trigger) = &cpu.trigger {
        rows.push(vec!["Trigger".into(), trigger.clone()]);
    }
    if let Some(route) = &cpu.route {
        rows.push(vec!["Route".into(), route.clone()]);
    }
    if cpu.latency.is_empty() {
        rows.push(vec![
            "Latency p95/p99".into(),
            "not available (no p95/p99 in the profile metadata)".into(),
        ]);
    }
    for latency in &cpu.latency {
        let verdict = match (latency.threshold_ms, latency.within_sla) {
            (Some(t), Some(true)) => format!("within the {t:.0} ms SLA"),
            (Some(t), _) => format!(
                "**over** the {t:.0} ms SLA ({:.1}x)",
                latency.measured_ms / t
            ),
            (None, _) => "no SLA threshold in the metadata".into(),
        };
        rows.push(vec![
            format!("Latency {}", latency.percentile),
            format!("{:.1} ms, {verdict}", latency.measured_ms),
        ]);
    }
    render_table(&["Metric", "Value"], &[false, false], &rows)
}

/// Our functions by total time, largest first; the request entry points come out on top.
fn our_functions(functions: &[FunctionShare]) -> Vec<FunctionShare> {
    let mut ours: Vec<FunctionShare> = functions
        .iter()
        .filter(|f| {
            f.function.starts_with("auth_service::") || f.function.starts_with("<auth_service::")
        })
        .cloned()
        .collect();
    ours.sort_by(|a, b| {
        let total = |f: &FunctionShare| f.total_percent.unwrap_or(f.self_percent);
        total(b).total_cmp(&total(a))
    });
    ours.truncate(OUR_FUNCTIONS);
    ours
}

fn top_functions_table(cpu: &CpuSummary) -> String {
    let mut out = functions_table(&cpu.top_functions);
    if !cpu.our_functions.is_empty() {
        out.push_str("\n**This service's functions** (`auth_service::`, by total time):\n\n");
        out.push_str(&functions_table(&cpu.our_functions));
    }
    out
}

fn functions_table(functions: &[FunctionShare]) -> String {
    if functions.is_empty() {
        return "No functions in the profile.\n".into();
    }
    let rows: Vec<Vec<String>> = functions
        .iter()
        .enumerate()
        .map(|(i, f)| {
            vec![
                (i + 1).to_string(),
                format!("{:.1}%", f.self_percent),
                f.self_seconds.map(format_duration).unwrap_or_default(),
                f.total_percent
                    .map(|t| format!("{t:.1}%"))
                    .unwrap_or_default(),
                code(&f.function),
                if f.location.is_empty() {
                    String::new()
                } else {
                    code(&f.location)
                },
                recommend::categorize(&f.function)
                    .map(|s| s.name)
                    .unwrap_or("-")
                    .to_owned(),
            ]
        })
        .collect();
    render_table(
        &[
            "#", "Self%", "Self", "Total%", "Function", "Location", "Category",
        ],
        &[true, true, true, true, false, false, false],
        &rows,
    )
}

fn categories_table(cpu: &CpuSummary) -> String {
    let mut rows: Vec<Vec<String>> = cpu
        .categories
        .iter()
        .map(|c| {
            let limit = match c.limit_kind {
                "below" => format!("< {:.0}%", c.limit_percent),
                _ => format!("flag > {:.0}%", c.limit_percent),
            };
            vec![
                c.name.to_owned(),
                format!("{:.1}%", c.self_percent),
                limit,
                c.severity.map(Severity::as_str).unwrap_or("ok").to_owned(),
            ]
        })
        .collect();
    rows.push(vec![
        "Uncategorized".into(),
        format!("{:.1}%", cpu.uncategorized_percent),
        "-".into(),
        "-".into(),
    ]);
    render_table(
        &["Category", "Self%", "Limit", "Status"],
        &[false, true, false, false],
        &rows,
    )
}

fn memory_section(memory: &MemorySummary) -> String {
    let bytes = |v: Option<u64>| or_na(v, format_bytes);
    let growth = match (memory.growth_bytes_per_hour, memory.growth_window_seconds) {
        (Some(rate), Some(window)) => format!(
            "{}/h (first to last growth row after start-up, over {})",
            format_signed_bytes(rate as i64),
            format_duration(window)
        ),
        _ => {
            format!("not judged (the growth timeline is shorter than {MIN_GROWTH_WINDOW_SECONDS}s)")
        }
    };
    let rows = vec![
        vec!["Live heap".into(), bytes(memory.live_bytes)],
        vec!["Peak heap".into(), bytes(memory.peak_bytes)],
        vec!["RSS".into(), bytes(memory.rss_bytes)],
        vec!["Live at end".into(), bytes(memory.steady_bytes)],
        vec!["Growth".into(), growth],
        vec![
            "Allocations".into(),
            or_na(memory.allocations, |n| n.to_string()),
        ],
        vec!["Bytes allocated".into(), bytes(memory.bytes_allocated)],
    ];
    let mut out = render_table(&["Metric", "Value"], &[false, false], &rows);
    out.push_str("\n**Top in-use allocation sites:**\n\n");
    if memory.top_in_use.is_empty() {
        out.push_str("None in the report.\n\n");
        return out;
    }
    let rows: Vec<Vec<String>> = memory
        .top_in_use
        .iter()
        .map(|s| {
            vec![
                s.in_use_percent
                    .map(|p| format!("{p:.1}%"))
                    .unwrap_or_default(),
                s.in_use_bytes.map(format_bytes).unwrap_or_default(),
                s.objects.map(|n| n.to_string()).unwrap_or_default(),
                code(&s.function),
                if s.location.is_empty() {
                    String::new()
                } else {
                    code(&s.location)
                },
            ]
        })
        .collect();
    out.push_str(&render_table(
        &["In-use%", "In-use", "Objects", "Function", "Location"],
        &[true, true, true, false, false],
        &rows,
    ));
    out.push('\n');
    out
}

/// `34.0% CPU`, `120.0 MiB/h`, `153.2 ms`.
fn measure(value: f64, unit: &str) -> String {
    if unit.starts_with('%') {
        format!("{value:.1}{unit}")
    } else {
        format!("{value:.1} {unit}")
    }
}

fn findings_section(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "No budget crossed: every CPU category is within its budget (Kong < 15%, JWT \
                < 40%, JSON < 8%, HTTP < 12%), lock contention and allocation churn are under \
                their flags, and memory (when given) is within its limits.\n"
            .into();
    }
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let mut out = format!(
        "{} findings: {} critical, {} high, {} medium, {} low.\n\n",
        findings.len(),
        count(Severity::Critical),
        count(Severity::High),
        count(Severity::Medium),
        count(Severity::Low)
    );
    for (i, finding) in findings.iter().enumerate() {
        out.push_str(&format!(
            "### {}. [{}] {}\n\n",
            i + 1,
            finding.severity.as_str().to_uppercase(),
            finding.topic
        ));
        out.push_str(&format!(
            "*Source:* {} · measured {} against a limit of {}\n\n",
            code(&finding.source),
            measure(finding.measured, finding.unit),
            measure(finding.limit, finding.unit),
        ));
        out.push_str(&format!("**Issue:** {}\n\n", finding.issue));
        out.push_str(&format!(
            "**Expected Impact:** {}\n\n",
            finding.expected_impact
        ));
        out.push_str("**Action Items:**\n\n");
        for (n, item) in finding.action_items.iter().enumerate() {
            out.push_str(&format!("{}. {item}\n", n + 1));
        }
        let refs: Vec<String> = finding.references.iter().map(|r| code(r)).collect();
        out.push_str(&format!("\n**References:** {}\n\n", refs.join(", ")));
    }
    out
}
