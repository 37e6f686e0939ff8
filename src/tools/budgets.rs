//! The limits `analyze` judges against: the CPU budget of each subsystem, the symptom flags,
//! the memory limits, and the severity rule that turns measured / limit into a severity.
//!
//! Owns numbers only. Must not build text (that is `recommend` and `advice`) nor decide what a
//! profile measured (that is `categories` and `growth`). Pure.
//!
//! Severity rule. For a budget (a "must stay below" limit: Kong, JWT, JSON, HTTP, memory
//! growth, peak and steady heap, SLA latency) the ratio measured / limit decides: above 2x is
//! critical, above 1.5x high, above 1x medium; at or under the limit there is no finding. Lock
//! contention and allocation churn are symptoms rather than budgets: above 2x their threshold
//! is medium, above 1x low.

use serde::Serialize;

use crate::profiling::attribution::Subsystem;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// How a limit is judged: a budget to stay under, or a symptom threshold to flag above.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    Budget(f64),
    Flag(f64),
}

impl Limit {
    pub fn value(self) -> f64 {
        match self {
            Limit::Budget(v) | Limit::Flag(v) => v,
        }
    }

    /// "below" for budgets, "above" for flag thresholds (the JSON `limit_kind`).
    pub fn kind(self) -> &'static str {
        match self {
            Limit::Budget(_) => "below",
            Limit::Flag(_) => "above",
        }
    }
}

/// The severity rule of the module header; `None` when the limit is not crossed.
pub fn severity(measured: f64, limit: Limit) -> Option<Severity> {
    let value = limit.value();
    if value <= 0.0 || measured <= value {
        return None;
    }
    let ratio = measured / value;
    Some(match limit {
        Limit::Budget(_) if ratio > 2.0 => Severity::Critical,
        Limit::Budget(_) if ratio > 1.5 => Severity::High,
        Limit::Budget(_) => Severity::Medium,
        Limit::Flag(_) if ratio > 2.0 => Severity::Medium,
        Limit::Flag(_) => Severity::Low,
    })
}

/// The CPU budget of a subsystem, in percent of the profile's samples. Socket I/O (inherent to
/// serving), logging, telemetry, the profiler and `Other` have none: they are shown, not judged.
pub fn cpu_budget(subsystem: Subsystem) -> Option<f64> {
    match subsystem {
        Subsystem::KongLookups => Some(15.0),
        Subsystem::JwtSigning => Some(40.0),
        Subsystem::Json => Some(8.0),
        Subsystem::Http => Some(12.0),
        _ => None,
    }
}

/// Symptoms measured across subsystems, flagged above these shares of CPU.
pub const LOCK_CONTENTION_FLAG: f64 = 5.0;
pub const ALLOCATION_FLAG: f64 = 10.0;

/// Below this many samples shares are noise: budgets are not judged.
pub const MIN_SAMPLES_FOR_BUDGETS: u64 = 50;

/// A profile whose samples cover less than this many cores on average (samples / (duration ×
/// frequency)) is nearly empty: with the SLA violated, the time went to waiting, not computing.
pub const NEARLY_EMPTY_CORES: f64 = 0.5;

pub const MIB: f64 = 1024.0 * 1024.0;
/// Memory limits. "MB" in the spec is read as MiB, the unit our heap reports print.
pub const GROWTH_LIMIT_BYTES_PER_HOUR: f64 = 50.0 * MIB;
pub const PEAK_LIMIT_BYTES: f64 = 300.0 * MIB;
pub const STEADY_LIMIT_BYTES: f64 = 200.0 * MIB;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_rule() {
        let cases = [
            (15.0, Limit::Budget(15.0), None),
            (15.1, Limit::Budget(15.0), Some(Severity::Medium)),
            (22.6, Limit::Budget(15.0), Some(Severity::High)),
            (30.1, Limit::Budget(15.0), Some(Severity::Critical)),
            (5.0, Limit::Flag(5.0), None),
            (6.0, Limit::Flag(5.0), Some(Severity::Low)),
            (10.1, Limit::Flag(5.0), Some(Severity::Medium)),
            (90.0, Limit::Flag(5.0), Some(Severity::Medium)),
        ];
        for (measured, limit, expected) in cases {
            assert_eq!(
                severity(measured, limit),
                expected,
                "{measured} vs {limit:?}"
            );
        }
        assert!(Severity::Critical < Severity::Low);
    }

    #[test]
    fn only_the_four_spec_subsystems_have_budgets() {
        let budgeted: Vec<Subsystem> = Subsystem::ALL
            .into_iter()
            .filter(|s| cpu_budget(*s).is_some())
            .collect();
        assert_eq!(
            budgeted,
            [
                Subsystem::KongLookups,
                Subsystem::JwtSigning,
                Subsystem::Json,
                Subsystem::Http
            ]
        );
    }
}
