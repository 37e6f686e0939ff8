//! The `analyze` report: builds an `Analysis` from parsed profiles and renders it as Markdown
//! (or hands it to serde for JSON).
//!
//! Pure: takes parsed profiles and their display names, returns values and strings. The
//! judgement lives elsewhere: shares in `categories`, growth in `growth`, limits in `budgets`,
//! findings in `recommend`.

use serde::Serialize;

use crate::profiling::attribution::Subsystem;
use crate::tools::budgets::Severity;
use crate::tools::categories::{self, Method, SubsystemShare, SymptomShare};
use crate::tools::growth::{Growth, MIN_WINDOW_SECONDS, NotJudged};
use crate::tools::markdown::{code, render_table};
use crate::tools::recommend::{self, Busy, Finding};
use crate::tools::report::{CpuReport, FunctionShare, HeapReport, Layout, Profile, Site};
use crate::tools::units::{format_bytes, format_duration, format_signed_bytes};

const TOP_FUNCTIONS: usize = 10;
const OUR_FUNCTIONS: usize = 10;
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
    /// Samples over duration × frequency: the cores busy on average (`None` when unknown).
    pub busy_cores: Option<f64>,
    pub trigger: Option<String>,
    pub route: Option<String>,
    /// p95 and p99 against their SLA thresholds; empty when the metadata has no latency.
    pub latency: Vec<Latency>,
    pub top_functions: Vec<FunctionShare>,
    /// This service's own functions (`auth_service::`) by total time, zero self time included:
    /// where to start reading when the top of the profile is syscalls and the allocator.
    pub our_functions: Vec<FunctionShare>,
    /// How the subsystem shares were obtained.
    pub attribution: Method,
    /// One per subsystem, adding up to 100 % of the samples.
    pub subsystems: Vec<SubsystemShare>,
    pub symptoms: Vec<SymptomShare>,
    /// The remainder no rule named (`Other`).
    pub other_percent: f64,
    /// Kernel send/recv on the served sockets: inherent, shown, not budgeted.
    pub socket_io_percent: f64,
    /// CPU of that socket I/O per request, when the metadata has a request count.
    pub socket_io_us_per_request: Option<f64>,
    pub kong_calls_percent: Option<f64>,
    /// False when the profile has too few samples for budgets to mean anything.
    pub budgets_judged: bool,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    /// The route of a per-route row; `None` for the profile's single route.
    pub route: Option<String>,
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
    /// The profiler's own heap, apart from the service's (when the report tells them apart).
    pub profiler_bytes: Option<u64>,
    /// The least-squares slope, when the timeline is long enough to judge.
    pub growth_bytes_per_hour: Option<f64>,
    pub growth_window_seconds: Option<f64>,
    /// Within the noise floor: not growth, whatever the slope.
    pub growth_flat: Option<bool>,
    pub growth: Option<Growth>,
    pub growth_not_judged: Option<NotJudged>,
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
                    summary.growth.as_ref(),
                    summary.peak_bytes,
                    summary.steady_bytes,
                    report.in_use.first(),
                ));
                analysis.memory.push(summary);
            }
        }
    }
    recommend::rank(&mut analysis.findings);
    analysis.budget_crossed = !analysis.findings.is_empty();
    analysis
}

fn cpu(name: &str, report: &CpuReport) -> (CpuSummary, Vec<Finding>) {
    let functions = report.functions();
    let shares = categories::shares(report);
    let meta = &report.metadata;
    let busy = match (report.samples, report.possible_samples()) {
        (Some(samples), Some(possible)) => Some(Busy { samples, possible }),
        _ => None,
    };
    let route = meta.get("route").map(str::to_owned);
    let mut findings = recommend::cpu_findings(name, &shares, report.cpu_seconds());
    // Per-route rows when the run wrote them (a mixed run has several routes), else the
    // single `p95_ms`/`p99_ms` of the profiled route.
    let routes = meta.routes();
    let keyed: Vec<(Option<&str>, String)> = if routes.is_empty() {
        vec![(route.as_deref(), String::new())]
    } else {
        routes.iter().map(|r| (Some(*r), format!("@{r}"))).collect()
    };
    let mut latency = Vec::new();
    for (route_name, suffix) in keyed {
        let mut over = Vec::new();
        for percentile in ["p95", "p99"] {
            let Some(measured) = meta.number(&format!("{percentile}_ms{suffix}")) else {
                continue;
            };
            let threshold = meta.number(&format!("threshold_{percentile}_ms{suffix}"));
            latency.push(Latency {
                route: (!suffix.is_empty()).then(|| route_name.unwrap_or_default().to_owned()),
                percentile,
                measured_ms: measured,
                threshold_ms: threshold,
                within_sla: threshold.map(|t| measured <= t),
            });
            if let Some(threshold) = threshold {
                over.push((percentile, measured, threshold));
            }
        }
        findings.extend(recommend::latency_findings(name, route_name, &over, busy));
    }
    let socket = shares.percent(Subsystem::SocketIo);
    let socket_per_request = match (report.cpu_seconds(), meta.number("requests")) {
        (Some(cpu), Some(requests)) if requests > 0.0 && shares.method == Method::WholeStack => {
            Some(cpu * socket / 100.0 / requests * 1e6)
        }
        _ => None,
    };
    let mut ours = report.our_functions();
    ours.truncate(OUR_FUNCTIONS);
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
        busy_cores: busy.map(Busy::cores),
        trigger: meta.get("trigger").map(str::to_owned),
        route,
        latency,
        our_functions: ours,
        top_functions: functions.into_iter().take(TOP_FUNCTIONS).collect(),
        attribution: shares.method,
        other_percent: shares.percent(Subsystem::Other),
        socket_io_percent: socket,
        socket_io_us_per_request: socket_per_request,
        kong_calls_percent: shares.kong_calls_percent,
        budgets_judged: shares.judged,
        subsystems: shares.subsystems,
        symptoms: shares.symptoms,
    };
    (summary, findings)
}

fn memory(name: &str, report: &HeapReport) -> MemorySummary {
    let fit = report.growth();
    let growth = fit.as_ref().ok().cloned();
    MemorySummary {
        source: name.to_owned(),
        live_bytes: report.live_bytes,
        peak_bytes: report.peak_bytes,
        rss_bytes: report.rss_bytes,
        steady_bytes: report.steady_bytes(),
        profiler_bytes: report.profiler_bytes,
        growth_bytes_per_hour: growth.as_ref().map(|g| g.bytes_per_hour),
        growth_window_seconds: growth.as_ref().map(|g| g.window_seconds),
        growth_flat: growth.as_ref().map(|g| g.flat),
        growth_not_judged: fit.err(),
        growth,
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
        out.push_str(&format!(
            "\n**CPU by subsystem** ({}; shares add up to 100%):\n\n",
            cpu.attribution.describe()
        ));
        if cpu.layout == Some(Layout::Bun) {
            out.push_str(
                "This is a Bun/Deno profile: JavaScript function names do not map to this \
                 service's subsystems, so they count as Other.\n\n",
            );
        }
        if !cpu.budgets_judged {
            out.push_str(&format!(
                "Too few samples ({}) to judge budgets: shares are shown, not judged.\n\n",
                cpu.samples.unwrap_or(0)
            ));
        }
        out.push_str(&subsystems_table(cpu));
        out.push('\n');
        out.push_str(&symptoms_table(cpu));
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
    if let (Some(cores), Some(samples)) = (cpu.busy_cores, cpu.samples) {
        rows.push(vec![
            "CPU busy".into(),
            format!("{cores:.2} cores on average ({samples} samples over the duration)"),
        ]);
    }
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
        let label = match &latency.route {
            Some(route) => format!("Latency {} {route}", latency.percentile),
            None => format!("Latency {}", latency.percentile),
        };
        rows.push(vec![
            label,
            format!("{:.1} ms, {verdict}", latency.measured_ms),
        ]);
    }
    render_table(&["Metric", "Value"], &[false, false], &rows)
}

fn top_functions_table(cpu: &CpuSummary) -> String {
    let mut out = functions_table(&cpu.top_functions);
    if !cpu.our_functions.is_empty() {
        out.push_str(
            "\n**This service's functions** (`auth_service::`, by total time, zero self time \
             included):\n\n",
        );
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
                categories::leaf_label(&f.function).to_owned(),
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

fn status(severity: Option<Severity>) -> &'static str {
    severity.map(Severity::as_str).unwrap_or("ok")
}

fn subsystems_table(cpu: &CpuSummary) -> String {
    let rows: Vec<Vec<String>> = cpu
        .subsystems
        .iter()
        .map(|share| {
            let subsystem = share.subsystem();
            let (limit, state) = match share.limit_percent {
                Some(limit) if cpu.budgets_judged => {
                    (format!("< {limit:.0}%"), status(share.severity).to_owned())
                }
                Some(limit) => (format!("< {limit:.0}%"), "not judged".into()),
                None if subsystem == Subsystem::SocketIo => (
                    match cpu.socket_io_us_per_request {
                        Some(us) => format!("inherent, not budgeted ({us:.1} us CPU/request)"),
                        None => "inherent, not budgeted".into(),
                    },
                    "-".into(),
                ),
                None => ("not budgeted".into(), "-".into()),
            };
            let top: Vec<String> = share
                .top
                .iter()
                .map(|(f, p)| format!("{} {p:.1}%", code(f)))
                .collect();
            vec![
                share.name.to_owned(),
                format!("{:.1}%", share.percent),
                limit,
                state,
                top.join(", "),
            ]
        })
        .collect();
    let mut out = render_table(
        &["Subsystem", "Share", "Budget", "Status", "Top frames"],
        &[false, true, false, false, false],
        &rows,
    );
    if let Some(calls) = cpu.kong_calls_percent {
        out.push_str(&format!(
            "\nOf Kong lookups, {calls:.1}% of CPU is calls to Kong (client, ureq, sockets, \
             resolver threads), the part a cache hit avoids.\n"
        ));
    }
    out
}

fn symptoms_table(cpu: &CpuSummary) -> String {
    let rows: Vec<Vec<String>> = cpu
        .symptoms
        .iter()
        .map(|s| {
            vec![
                s.name.to_owned(),
                format!("{:.1}%", s.percent),
                format!("flag > {:.0}%", s.limit_percent),
                if cpu.budgets_judged {
                    status(s.severity).to_owned()
                } else {
                    "not judged".into()
                },
            ]
        })
        .collect();
    let mut out = String::from(
        "**Symptoms** (across subsystems, already counted in their shares above):\n\n",
    );
    out.push_str(&render_table(
        &["Symptom", "Share", "Limit", "Status"],
        &[false, true, false, false],
        &rows,
    ));
    out
}

fn memory_section(memory: &MemorySummary) -> String {
    let bytes = |v: Option<u64>| or_na(v, format_bytes);
    let growth = match (&memory.growth, &memory.growth_not_judged) {
        (Some(g), _) if g.flat => format!(
            "flat: {} over {} (least-squares fit over {} points), within the noise floor of {}",
            format_signed_bytes(g.fitted_bytes as i64),
            format_duration(g.window_seconds),
            g.points_used,
            format_bytes(g.noise_floor_bytes as u64)
        ),
        (Some(g), _) => format!(
            "{}/h (least-squares fit over {} points in {}{})",
            format_signed_bytes(g.bytes_per_hour as i64),
            g.points_used,
            format_duration(g.window_seconds),
            if g.tail_points_dropped > 0 {
                format!(
                    "; {} report-building tail point(s) left out",
                    g.tail_points_dropped
                )
            } else {
                String::new()
            }
        ),
        (None, Some(NotJudged::TooShort { window_seconds })) => format!(
            "not judged (the growth timeline covers {}, shorter than {MIN_WINDOW_SECONDS:.0}s)",
            format_duration(*window_seconds)
        ),
        _ => "not judged (fewer than two growth points)".to_owned(),
    };
    let mut rows = vec![
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
    if let Some(profiler) = memory.profiler_bytes {
        rows.push(vec![
            "Profiler heap".into(),
            format!(
                "{} (the profiler's own, not in the rows above)",
                format_bytes(profiler)
            ),
        ]);
    }
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
pub(crate) fn measure(value: f64, unit: &str) -> String {
    if unit.starts_with('%') {
        format!("{value:.1}{unit}")
    } else {
        format!("{value:.1} {unit}")
    }
}

fn findings_section(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "No budget crossed: every budgeted subsystem is within its budget (Kong < 15%, \
                JWT < 40%, JSON < 8%, HTTP < 12%; socket I/O is inherent and not budgeted), lock \
                contention and allocation churn are under their flags, latency (when given) is \
                within its SLA, and memory (when given) is within its limits.\n"
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
