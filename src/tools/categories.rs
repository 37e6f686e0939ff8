//! A CPU profile's shares by subsystem and its symptom shares, as `analyze` and `compare` judge
//! them: read from the profiler's whole-stack `## Subsystems (Whole Stack)` section when the
//! profile has one, else estimated from Hot Functions' leaf self time (Bun's layout and older
//! profiles), clearly labelled as such.
//!
//! Owns the choice between the two methods and the leaf-only fallback. The frame rules
//! themselves live in `profiling::attribution` (shared with the writer); the limits in
//! `budgets`. Pure: parsed reports in, shares out.

use serde::Serialize;

use crate::profiling::attribution::{self, Subsystem};
use crate::tools::budgets::{
    self, ALLOCATION_FLAG, LOCK_CONTENTION_FLAG, Limit, MIN_SAMPLES_FOR_BUDGETS, Severity,
};
use crate::tools::report::{CpuReport, Layout, SubsystemTable};

/// How the shares were obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The profiler charged every sample on its whole stack.
    WholeStack,
    /// Each function's self time by its own name: kernel, libc and std frames cannot be charged
    /// to their callers and stay in Other (socket calls show as socket I/O, whoever called).
    LeafOnly,
}

impl Method {
    pub fn describe(self) -> &'static str {
        match self {
            Method::WholeStack => {
                "whole stack: each sample charged to the innermost frame that names a subsystem \
                 (kernel and libc time to its caller)"
            }
            Method::LeafOnly => {
                "leaf only (this profile has no `## Subsystems (Whole Stack)` section): each \
                 function's self time by its own name; kernel, libc and std frames stay in Other \
                 and socket calls count as socket I/O whoever made them"
            }
        }
    }
}

/// One subsystem's share of a CPU profile.
#[derive(Clone, Debug, Serialize)]
pub struct SubsystemShare {
    pub key: &'static str,
    pub name: &'static str,
    pub percent: f64,
    /// "below" for a budget; `None` for subsystems that are shown but not judged.
    pub limit_kind: Option<&'static str>,
    pub limit_percent: Option<f64>,
    pub severity: Option<Severity>,
    /// The deciding frames (whole stack) or functions (leaf only), percent of all samples.
    pub top: Vec<(String, f64)>,
}

impl SubsystemShare {
    pub fn subsystem(&self) -> Subsystem {
        Subsystem::from_key(self.key).unwrap_or(Subsystem::Other)
    }
}

/// A symptom measured across subsystems (lock contention, allocation), flagged above a share.
#[derive(Clone, Debug, Serialize)]
pub struct SymptomShare {
    pub key: &'static str,
    pub name: &'static str,
    pub percent: f64,
    pub limit_percent: f64,
    pub severity: Option<Severity>,
    /// Leaf functions behind it (leaf-only profiles); empty for whole-stack measures.
    pub top: Vec<(String, f64)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CpuShares {
    pub method: Method,
    /// One per `Subsystem::ALL`, adding up to 100 % of the samples.
    pub subsystems: Vec<SubsystemShare>,
    pub symptoms: Vec<SymptomShare>,
    /// Kong lookups spent calling Kong rather than in the cache (whole stack only).
    pub kong_calls_percent: Option<f64>,
    /// False when there are too few samples (`MIN_SAMPLES_FOR_BUDGETS`) to judge budgets.
    pub judged: bool,
}

impl CpuShares {
    pub fn get(&self, subsystem: Subsystem) -> Option<&SubsystemShare> {
        self.subsystems.iter().find(|s| s.key == subsystem.key())
    }

    pub fn percent(&self, subsystem: Subsystem) -> f64 {
        self.get(subsystem).map_or(0.0, |s| s.percent)
    }
}

const TOP: usize = 3;

pub fn shares(report: &CpuReport) -> CpuShares {
    let judged = report.samples.is_none_or(|n| n >= MIN_SAMPLES_FOR_BUDGETS);
    let mut shares = match &report.subsystems {
        Some(table) => whole_stack(table),
        None => leaf_only(report),
    };
    shares.judged = judged;
    for share in &mut shares.subsystems {
        share.severity = match share.limit_percent {
            Some(limit) if judged => budgets::severity(share.percent, Limit::Budget(limit)),
            _ => None,
        };
    }
    for symptom in &mut shares.symptoms {
        symptom.severity = if judged {
            budgets::severity(symptom.percent, Limit::Flag(symptom.limit_percent))
        } else {
            None
        };
    }
    shares
}

/// One subsystem's row with its budget; the severity is judged later, in `shares`.
pub(crate) fn share(subsystem: Subsystem, percent: f64, top: Vec<(String, f64)>) -> SubsystemShare {
    let limit = budgets::cpu_budget(subsystem);
    SubsystemShare {
        key: subsystem.key(),
        name: subsystem.name(),
        percent,
        limit_kind: limit.map(|_| "below"),
        limit_percent: limit,
        severity: None,
        top,
    }
}

fn symptom(key: &'static str, percent: f64, top: Vec<(String, f64)>) -> SymptomShare {
    let (name, limit_percent) = match key {
        "lock_contention" => ("Lock contention", LOCK_CONTENTION_FLAG),
        _ => ("Allocation churn", ALLOCATION_FLAG),
    };
    SymptomShare {
        key,
        name,
        percent,
        limit_percent,
        severity: None,
        top,
    }
}

fn whole_stack(table: &SubsystemTable) -> CpuShares {
    let total: u64 = table.rows.iter().map(|r| r.samples).sum();
    let pct = |n: u64| {
        if total == 0 {
            0.0
        } else {
            n as f64 * 100.0 / total as f64
        }
    };
    let subsystems = Subsystem::ALL
        .iter()
        .map(|&subsystem| {
            // Rows under a key this build does not know count as Other.
            let rows = table
                .rows
                .iter()
                .filter(|r| Subsystem::from_key(&r.key).unwrap_or(Subsystem::Other) == subsystem);
            let mut samples = 0;
            let mut top = Vec::new();
            for row in rows {
                samples += row.samples;
                top.extend(row.deciders.iter().map(|(f, n)| (f.clone(), pct(*n))));
            }
            top.truncate(TOP);
            share(subsystem, pct(samples), top)
        })
        .collect();
    let measure = |key: &str| {
        table
            .measures
            .get(key)
            .map(|(n, p)| if total > 0 { pct(*n) } else { *p })
    };
    CpuShares {
        method: Method::WholeStack,
        subsystems,
        symptoms: vec![
            symptom(
                "lock_contention",
                measure("lock_contention").unwrap_or(0.0),
                Vec::new(),
            ),
            symptom(
                "allocation",
                measure("allocation").unwrap_or(0.0),
                Vec::new(),
            ),
        ],
        kong_calls_percent: measure("kong_calls"),
        judged: true,
    }
}

/// The subsystem a function's own name gives it, for leaf-only shares and the functions
/// tables' Category column.
pub fn leaf_subsystem(function: &str) -> Subsystem {
    match attribution::classify_frame(function) {
        Some(subsystem) => subsystem,
        None if attribution::is_socket_call(function) => Subsystem::SocketIo,
        // Transparent on a whole stack, but this service base64-encodes only JWTs (`src/jwt.rs`
        // and jsonwebtoken): the best guess when the caller is not known.
        None if function.starts_with("base64::") || function.starts_with("<base64::") => {
            Subsystem::JwtSigning
        }
        None => Subsystem::Other,
    }
}

/// The Category column of a functions table: the subsystem the name gives, `socket call` /
/// `allocator` for libc frames charged to their caller, `-` for other transparent frames.
pub fn leaf_label(function: &str) -> &'static str {
    if let Some(subsystem) = attribution::classify_frame(function) {
        subsystem.name()
    } else if attribution::is_socket_call(function) {
        "socket call"
    } else if attribution::is_allocator(function) {
        "allocator"
    } else {
        "-"
    }
}

fn leaf_only(report: &CpuReport) -> CpuShares {
    let functions = report.functions();
    let bun = report.layout == Some(Layout::Bun);
    let mut percent = vec![0.0; Subsystem::ALL.len()];
    let mut top: Vec<Vec<(String, f64)>> = vec![Vec::new(); Subsystem::ALL.len()];
    let (mut lock, mut alloc) = (Vec::new(), Vec::new());
    for function in &functions {
        let name = function.function.as_str();
        // JavaScript names of a Bun/Deno profile do not map to this service's subsystems.
        let subsystem = if bun {
            Subsystem::Other
        } else {
            leaf_subsystem(name)
        };
        let index = Subsystem::ALL
            .iter()
            .position(|s| *s == subsystem)
            .expect("every subsystem is in ALL");
        percent[index] += function.self_percent;
        top[index].push((name.to_owned(), function.self_percent));
        if !bun && attribution::is_lock_contended(name) {
            lock.push((name.to_owned(), function.self_percent));
        }
        if !bun && attribution::is_allocator(name) {
            alloc.push((name.to_owned(), function.self_percent));
        }
    }
    let sum = |list: &[(String, f64)]| list.iter().map(|(_, p)| p).sum::<f64>();
    let first = |mut list: Vec<(String, f64)>| {
        list.sort_by(|a, b| b.1.total_cmp(&a.1));
        list.truncate(TOP);
        list
    };
    let subsystems = Subsystem::ALL
        .iter()
        .enumerate()
        .map(|(i, &subsystem)| share(subsystem, percent[i], first(top[i].clone())))
        .collect();
    CpuShares {
        method: Method::LeafOnly,
        subsystems,
        symptoms: vec![
            symptom("lock_contention", sum(&lock), first(lock)),
            symptom("allocation", sum(&alloc), first(alloc)),
        ],
        kong_calls_percent: None,
        judged: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::report::{HotRow, SubsystemRow};

    fn hot(function: &str, self_pct: f64) -> HotRow {
        HotRow {
            self_pct,
            self_s: None,
            total_pct: None,
            total_s: None,
            function: function.into(),
            location: String::new(),
        }
    }

    #[test]
    fn leaf_only_shares_add_up_and_leave_libc_in_other() {
        let report = CpuReport {
            layout: Some(Layout::Ours),
            samples: Some(1000),
            hot: vec![
                hot("auth_service::jwt::sign", 30.0),
                hot("sha2::compress256", 20.0),
                hot("serde_json::to_vec", 9.0),
                hot("__libc_send", 15.0),
                hot("lru::LruCache<K,V,S>::attach", 4.0),
                hot("std::sys::sync::mutex::futex::Mutex::lock_contended", 6.0),
                hot("malloc", 7.0),
                hot("core::fmt::write", 9.0),
            ],
            ..CpuReport::default()
        };
        let shares = shares(&report);
        assert_eq!(shares.method, Method::LeafOnly);
        let sum: f64 = shares.subsystems.iter().map(|s| s.percent).sum();
        assert!((sum - 100.0).abs() < 1e-9, "{sum}");
        assert_eq!(shares.percent(Subsystem::JwtSigning), 50.0);
        assert_eq!(
            shares.get(Subsystem::JwtSigning).unwrap().severity,
            Some(Severity::Medium)
        );
        assert_eq!(shares.percent(Subsystem::SocketIo), 15.0);
        assert_eq!(shares.percent(Subsystem::Http), 0.0, "send is not HTTP");
        assert_eq!(
            shares.percent(Subsystem::KongLookups),
            4.0,
            "the LRU is cache work"
        );
        assert_eq!(shares.percent(Subsystem::Other), 22.0);
        let lock = &shares.symptoms[0];
        assert_eq!((lock.key, lock.percent), ("lock_contention", 6.0));
        assert_eq!(lock.severity, Some(Severity::Low));
        assert_eq!(shares.symptoms[1].percent, 7.0);
    }

    #[test]
    fn whole_stack_shares_come_from_the_section() {
        let row = |key: &str, samples: u64| SubsystemRow {
            key: key.into(),
            name: String::new(),
            samples,
            percent: 0.0,
            deciders: vec![(format!("{key}::f"), samples)],
        };
        let mut table = SubsystemTable {
            rows: vec![row("kong", 600), row("socket_io", 300), row("http", 100)],
            total: Some(1000),
            ..SubsystemTable::default()
        };
        table.measures.insert("kong_calls".into(), (550, 55.0));
        let report = CpuReport {
            layout: Some(Layout::Ours),
            samples: Some(1000),
            subsystems: Some(table),
            ..CpuReport::default()
        };
        let shares = shares(&report);
        assert_eq!(shares.method, Method::WholeStack);
        assert_eq!(shares.percent(Subsystem::KongLookups), 60.0);
        assert_eq!(
            shares.get(Subsystem::KongLookups).unwrap().severity,
            Some(Severity::Critical)
        );
        assert_eq!(shares.get(Subsystem::SocketIo).unwrap().severity, None);
        assert_eq!(shares.kong_calls_percent, Some(55.0));
        assert_eq!(shares.get(Subsystem::Http).unwrap().top[0].1, 10.0);
    }

    #[test]
    fn too_few_samples_judge_nothing() {
        let report = CpuReport {
            layout: Some(Layout::Ours),
            samples: Some(12),
            hot: vec![hot("tiny_http::conn::serve", 100.0)],
            ..CpuReport::default()
        };
        let shares = shares(&report);
        assert!(!shares.judged);
        assert!(shares.subsystems.iter().all(|s| s.severity.is_none()));
    }
}
