//! What `analyze` concludes: the findings (one per crossed budget or flag), each with its issue,
//! its expected impact and the action items that apply.
//!
//! Owns when a finding is made, what it says, and which actions follow. An impact ("bringing
//! X under N % frees M % of CPU") is claimed only when a named action can remove that much:
//! for Kong, when the calls to Kong (what a higher cache hit rate removes) cover the excess;
//! elsewhere no saving is claimed. Advice follows the evidence: the credential cache is named
//! for memory only when the top in-use site is in it. Must not define limits (`budgets`),
//! action texts (`advice`) or shares (`categories`). Pure: no I/O, no clock.

use serde::Serialize;

use crate::profiling::attribution::Subsystem;
use crate::tools::advice::{self, Action};
use crate::tools::budgets::{
    self, GROWTH_LIMIT_BYTES_PER_HOUR, Limit, MIB, PEAK_LIMIT_BYTES, STEADY_LIMIT_BYTES, Severity,
};
use crate::tools::categories::{CpuShares, Method};
use crate::tools::growth::Growth;
use crate::tools::report::Site;
use crate::tools::units::format_bytes;

/// One optimization opportunity.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub topic: &'static str,
    /// The profile file the finding comes from.
    pub source: String,
    pub measured: f64,
    pub limit: f64,
    pub unit: &'static str,
    pub issue: String,
    pub expected_impact: String,
    pub action_items: Vec<&'static str>,
    pub references: Vec<&'static str>,
}

impl Finding {
    fn new(
        severity: Severity,
        topic: &'static str,
        source: &str,
        (measured, limit, unit): (f64, f64, &'static str),
        issue: String,
        expected_impact: String,
        actions: &'static [Action],
    ) -> Finding {
        let mut references: Vec<&'static str> = Vec::new();
        for file in actions.iter().flat_map(|a| a.files.iter()) {
            if !references.contains(file) {
                references.push(file);
            }
        }
        Finding {
            severity,
            topic,
            source: source.to_owned(),
            measured,
            limit,
            unit,
            issue,
            expected_impact,
            action_items: actions.iter().map(|a| a.text).collect(),
            references,
        }
    }

    /// measured / limit, the tie-breaker within a severity.
    pub fn ratio(&self) -> f64 {
        if self.limit > 0.0 {
            self.measured / self.limit
        } else {
            0.0
        }
    }
}

/// Ranks findings: severity first, then how far over its limit each one is.
pub fn rank(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        a.severity
            .cmp(&b.severity)
            .then(b.ratio().total_cmp(&a.ratio()))
    });
}

fn topic(subsystem: Subsystem) -> &'static str {
    subsystem.name()
}

fn actions(subsystem: Subsystem) -> &'static [Action] {
    match subsystem {
        Subsystem::KongLookups => advice::KONG,
        Subsystem::JwtSigning => advice::JWT,
        Subsystem::Json => advice::JSON,
        _ => advice::HTTP,
    }
}

fn cpu_seconds_note(cpu_seconds: Option<f64>, percent: f64) -> String {
    cpu_seconds
        .map(|s| {
            format!(
                " (about {:.2} of {s:.2} CPU-seconds in this profile)",
                s * percent / 100.0
            )
        })
        .unwrap_or_default()
}

/// Findings of one CPU profile's subsystem and symptom shares. `cpu_seconds` scales the impact.
pub fn cpu_findings(source: &str, shares: &CpuShares, cpu_seconds: Option<f64>) -> Vec<Finding> {
    let mut out = Vec::new();
    let socket = shares.percent(Subsystem::SocketIo);
    let kernel = shares.percent(Subsystem::HttpKernel);
    for share in &shares.subsystems {
        let (Some(severity), Some(budget)) = (share.severity, share.limit_percent) else {
            continue;
        };
        let subsystem = share.subsystem();
        let top: Vec<String> = share
            .top
            .iter()
            .map(|(f, p)| format!("`{f}` {p:.1}%"))
            .collect();
        let excess = share.percent - budget;
        let mut issue = format!(
            "{}: {:.1}% of CPU, over the {budget:.0}% budget ({:.1}x); deciding frames: {}.",
            share.name,
            share.percent,
            share.percent / budget,
            top.join(", ")
        );
        if subsystem == Subsystem::Http {
            issue.push_str(&format!(
                " Not counted: socket I/O on the served sockets ({socket:.1}%, inherent) and the \
                 kernel side of handing requests to workers ({kernel:.1}%)."
            ));
        }
        let impact = match (subsystem, shares.kong_calls_percent) {
            (Subsystem::KongLookups, Some(calls)) if calls >= excess => format!(
                "Calls to Kong are {calls:.1}% of CPU, and a cache hit makes none: with a high \
                 enough hit rate, bringing Kong lookups under {budget:.0}% frees about \
                 {excess:.1}% of CPU{}.",
                cpu_seconds_note(cpu_seconds, excess)
            ),
            (Subsystem::KongLookups, Some(calls)) => format!(
                "Calls to Kong are only {calls:.1}% of CPU; the rest is cache and store work \
                 that no setting removes, so no saving is claimed."
            ),
            _ if shares.method == Method::LeafOnly => format!(
                "{excess:.1}% of CPU is above the budget. No saving is claimed: leaf-only \
                 shares cannot tell what is avoidable."
            ),
            _ => format!(
                "{excess:.1}% of CPU is above the budget{}. No saving is claimed: how much of \
                 this work can go depends on the changes below.",
                cpu_seconds_note(cpu_seconds, excess)
            ),
        };
        out.push(Finding::new(
            severity,
            topic(subsystem),
            source,
            (share.percent, budget, "% CPU"),
            issue,
            impact,
            actions(subsystem),
        ));
    }
    for symptom in &shares.symptoms {
        let Some(severity) = symptom.severity else {
            continue;
        };
        let top: Vec<String> = symptom
            .top
            .iter()
            .map(|(f, p)| format!("`{f}` {p:.1}%"))
            .collect();
        let top = if top.is_empty() {
            String::new()
        } else {
            format!("; top: {}", top.join(", "))
        };
        let (topic, actions) = match symptom.key {
            "lock_contention" => ("Lock contention", advice::LOCK),
            _ => ("Allocation churn", advice::ALLOCATION),
        };
        out.push(Finding::new(
            severity,
            topic,
            source,
            (symptom.percent, symptom.limit_percent, "% CPU"),
            format!(
                "{}: {:.1}% of CPU across subsystems, above the {:.0}% flag threshold{top}.",
                symptom.name, symptom.percent, symptom.limit_percent
            ),
            format!(
                "This {:.1}% is already counted in the subsystems above; it also adds to tail \
                 latency under load.",
                symptom.percent
            ),
            actions,
        ));
    }
    out
}

/// How busy a CPU profile is: `samples` over `possible` (duration × frequency, one core).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Busy {
    pub samples: u64,
    pub possible: f64,
}

impl Busy {
    /// Average cores busy during the profile.
    pub fn cores(self) -> f64 {
        if self.possible > 0.0 {
            self.samples as f64 / self.possible
        } else {
            0.0
        }
    }

    pub fn nearly_empty(self) -> bool {
        self.cores() < budgets::NEARLY_EMPTY_CORES
    }
}

/// Findings of measured latency (from profile metadata) against its SLA thresholds. When the
/// CPU profile is nearly empty (`busy`), the latency is time spent waiting, and the actions
/// point at what the service waits on.
pub fn latency_findings(
    source: &str,
    route: Option<&str>,
    pairs: &[(&'static str, f64, f64)],
    busy: Option<Busy>,
) -> Vec<Finding> {
    let route = route.unwrap_or("the profiled route");
    let waiting = busy.filter(|b| b.nearly_empty());
    pairs
        .iter()
        .filter_map(|&(name, measured, threshold)| {
            let severity = budgets::severity(measured, Limit::Budget(threshold))?;
            let mut issue = format!(
                "{name} latency of {route} was {measured:.1} ms, over the {threshold:.0} ms SLA \
                 ({:.1}x).",
                measured / threshold
            );
            let (topic, actions) = match waiting {
                Some(busy) => {
                    issue.push_str(&format!(
                        " Flat CPU profile: the time is spent waiting, not computing ({} \
                         samples where {:.0} would mean one busy core: {:.2} cores on \
                         average). Look at what the service waits on: Kong, the queue, the \
                         breaker.",
                        busy.samples,
                        busy.possible,
                        busy.cores()
                    ));
                    ("SLA latency (off-CPU)", advice::OFF_CPU)
                }
                None => ("SLA latency", advice::LATENCY),
            };
            Some(Finding::new(
                severity,
                topic,
                source,
                (measured, threshold, "ms"),
                issue,
                format!(
                    "Recovering {:.1} ms at {name} brings {route} back within its SLA.",
                    measured - threshold
                ),
                actions,
            ))
        })
        .collect()
}

/// Whose memory the top in-use site is, which decides the memory advice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteOwner {
    CredentialCache,
    Workload,
    Profiler,
    Other,
}

pub fn site_owner(site: Option<&Site>) -> SiteOwner {
    let Some(function) = site.map(|s| s.function.as_str()) else {
        return SiteOwner::Other;
    };
    if function.starts_with("auth_service::kong::cache")
        || function.starts_with("<auth_service::kong::cache")
        || function.starts_with("lru::")
        || function.starts_with("<lru::")
    {
        SiteOwner::CredentialCache
    } else if function.starts_with("auth_service::profiling::workload") {
        SiteOwner::Workload
    } else if crate::profiling::attribution::classify_frame(function) == Some(Subsystem::Profiler) {
        SiteOwner::Profiler
    } else {
        SiteOwner::Other
    }
}

fn site_text(site: Option<&Site>) -> String {
    match site {
        Some(site) => format!(
            " Top in-use site: `{}`{}{}.",
            site.function,
            if site.location.is_empty() {
                String::new()
            } else {
                format!(" (`{}`)", site.location)
            },
            site.in_use_percent
                .map(|p| format!(", {p:.1}% of the in-use bytes"))
                .unwrap_or_default()
        ),
        None => String::new(),
    }
}

/// Findings of a heap profile: growth (never for a flat fit), peak heap and steady live heap.
pub fn memory_findings(
    source: &str,
    growth: Option<&Growth>,
    peak: Option<u64>,
    steady: Option<u64>,
    top_site: Option<&Site>,
) -> Vec<Finding> {
    let owner = site_owner(top_site);
    let growth_actions = match owner {
        SiteOwner::CredentialCache => advice::GROWTH_CREDENTIAL_CACHE,
        SiteOwner::Workload => advice::GROWTH_WORKLOAD,
        SiteOwner::Profiler => advice::GROWTH_PROFILER,
        SiteOwner::Other => advice::GROWTH_OTHER_SITE,
    };
    let mut out = Vec::new();
    if let Some(growth) = growth.filter(|g| !g.flat) {
        let rate = growth.bytes_per_hour;
        if let Some(severity) = budgets::severity(rate, Limit::Budget(GROWTH_LIMIT_BYTES_PER_HOUR))
        {
            out.push(Finding::new(
                severity,
                "Memory growth",
                source,
                (rate / MIB, GROWTH_LIMIT_BYTES_PER_HOUR / MIB, "MiB/h"),
                format!(
                    "The live heap grows {}/h (least-squares over {:.0} s, {} points; {} over \
                     the window against a noise floor of {}), over the {}/h limit ({:.1}x).{}",
                    format_bytes(rate as u64),
                    growth.window_seconds,
                    growth.points_used,
                    format_bytes(growth.fitted_bytes.max(0.0) as u64),
                    format_bytes(growth.noise_floor_bytes as u64),
                    format_bytes(GROWTH_LIMIT_BYTES_PER_HOUR as u64),
                    rate / GROWTH_LIMIT_BYTES_PER_HOUR,
                    site_text(top_site)
                ),
                format!(
                    "Unchecked, that is {} more live heap per day; a bounded heap keeps RSS flat.",
                    format_bytes((rate * 24.0) as u64)
                ),
                growth_actions,
            ));
        }
    }
    let steady_actions = match owner {
        SiteOwner::CredentialCache => advice::STEADY_CREDENTIAL_CACHE,
        _ => growth_actions,
    };
    let fixed = [
        ("Peak heap", peak, PEAK_LIMIT_BYTES, advice::PEAK),
        ("Steady heap", steady, STEADY_LIMIT_BYTES, steady_actions),
    ];
    for (topic, value, limit, actions) in fixed {
        let Some(value) = value else { continue };
        let Some(severity) = budgets::severity(value as f64, Limit::Budget(limit)) else {
            continue;
        };
        out.push(Finding::new(
            severity,
            topic,
            source,
            (value as f64 / MIB, limit / MIB, "MiB"),
            format!(
                "{topic} is {}, over the {} limit ({:.1}x).{}",
                format_bytes(value),
                format_bytes(limit as u64),
                value as f64 / limit,
                site_text(top_site)
            ),
            format!(
                "Getting under {} saves {} per instance.",
                format_bytes(limit as u64),
                format_bytes(value - limit as u64)
            ),
            actions,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::categories::SubsystemShare;

    fn growth(bytes_per_hour: f64, flat: bool) -> Growth {
        Growth {
            bytes_per_hour,
            window_seconds: 60.0,
            points_used: 60,
            tail_points_dropped: 0,
            start_point_dropped: false,
            fitted_bytes: bytes_per_hour / 60.0,
            noise_floor_bytes: MIB,
            flat,
        }
    }

    fn site(function: &str) -> Site {
        Site {
            in_use_percent: Some(90.0),
            in_use_bytes: Some(100 << 20),
            objects: Some(1),
            alloc_percent: None,
            allocated_bytes: None,
            function: function.into(),
            location: "x.rs:1".into(),
        }
    }

    #[test]
    fn memory_limits_and_a_flat_fit() {
        let leak = growth(120.0 * MIB, false);
        let cache = site("auth_service::kong::cache::CredentialCache::insert");
        let findings = memory_findings(
            "h.md",
            Some(&leak),
            Some(100 << 20),
            Some(250 << 20),
            Some(&cache),
        );
        let topics: Vec<_> = findings.iter().map(|f| (f.topic, f.severity)).collect();
        assert_eq!(
            topics,
            [
                ("Memory growth", Severity::Critical),
                ("Steady heap", Severity::Medium)
            ]
        );
        assert!(findings[0].action_items[0].contains("credential cache"));
        // A flat service is never called leaking, whatever its slope extrapolates to.
        let flat = growth(1.33 * 1024.0 * MIB, true);
        assert!(memory_findings("h.md", Some(&flat), None, None, None).is_empty());
        assert!(
            memory_findings("h.md", Some(&growth(10.0 * MIB, false)), None, None, None).is_empty()
        );
    }

    /// Issue 11 item 11: a planted leak in a handler does not get credential-cache advice.
    #[test]
    fn regression_issue_11_memory_advice_follows_the_top_site() {
        let leak = growth(500.0 * MIB, false);
        let cases = [
            (
                "auth_service::profiling::workload::Retained::retain",
                "diagnostics workload",
            ),
            (
                "<pprof::collector::Bucket<T> as core::default::Default>::default",
                "profiler",
            ),
            (
                "auth_service::handlers::tokens::issue",
                "Follow the top in-use site",
            ),
            ("lru::LruCache<K,V,S>::put", "credential cache"),
        ];
        for (function, expected) in cases {
            let top = site(function);
            let findings = memory_findings("h.md", Some(&leak), None, None, Some(&top));
            let items = findings[0].action_items.join(" ");
            assert!(items.contains(expected), "{function}: {items}");
            if !expected.contains("credential cache") {
                assert!(!items.contains("credential cache"), "{function}: {items}");
            }
            assert!(
                findings[0].issue.contains(function),
                "{}",
                findings[0].issue
            );
        }
    }

    fn shares_with(kong: f64, calls: f64, http: f64) -> CpuShares {
        let share = |subsystem: Subsystem, percent: f64| {
            let row =
                crate::tools::categories::share(subsystem, percent, vec![("f".into(), percent)]);
            SubsystemShare {
                severity: row
                    .limit_percent
                    .and_then(|l| budgets::severity(percent, Limit::Budget(l))),
                ..row
            }
        };
        CpuShares {
            method: Method::WholeStack,
            subsystems: vec![
                share(Subsystem::KongLookups, kong),
                share(Subsystem::Http, http),
                share(Subsystem::SocketIo, 100.0 - kong - http),
            ],
            symptoms: Vec::new(),
            kong_calls_percent: Some(calls),
            judged: true,
        }
    }

    #[test]
    fn impact_is_claimed_only_when_achievable() {
        let findings = cpu_findings("c.md", &shares_with(55.0, 50.0, 10.0), Some(5.0));
        assert_eq!(findings.len(), 1);
        assert!(
            findings[0]
                .expected_impact
                .contains("frees about 40.0% of CPU")
        );
        assert!(findings[0].action_items[0].contains("`CACHING_TTL_SECONDS`"));
        let cache_bound = cpu_findings("c.md", &shares_with(55.0, 5.0, 10.0), None);
        assert!(
            cache_bound[0]
                .expected_impact
                .contains("no saving is claimed")
        );
        let http = cpu_findings("c.md", &shares_with(5.0, 0.0, 30.0), None);
        assert_eq!(http[0].topic, "HTTP");
        assert!(
            http[0]
                .issue
                .contains("socket I/O on the served sockets (65.0%, inherent)"),
            "{}",
            http[0].issue
        );
        assert!(!http[0].expected_impact.contains("frees"));
    }

    #[test]
    fn an_empty_profile_with_a_violated_sla_points_off_cpu() {
        let pairs = [("p95", 900.0, 100.0)];
        let empty = Busy {
            samples: 3,
            possible: 990.0,
        };
        let findings = latency_findings("c.md", Some("/tokens"), &pairs, Some(empty));
        assert_eq!(findings[0].topic, "SLA latency (off-CPU)");
        assert!(
            findings[0]
                .issue
                .contains("Flat CPU profile: the time is spent waiting")
        );
        let items = findings[0].action_items.join(" ");
        for name in [
            "kong_operation_duration_seconds",
            "KONG_TIMEOUT_MS",
            "circuit_breaker_state",
            "KONG_MAX_WAITING_WORKERS",
        ] {
            assert!(items.contains(name), "{name} in {items}");
        }
        let busy = Busy {
            samples: 900,
            possible: 990.0,
        };
        let findings = latency_findings("c.md", Some("/tokens"), &pairs, Some(busy));
        assert_eq!(findings[0].topic, "SLA latency");
    }
}
