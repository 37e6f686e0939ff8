//! Heap sessions outside the allocator: the growth timeline (live bytes and RSS once per
//! second) and turning the allocator's raw sampled sites into unbiased, symbolized sites
//! (`HeapProfile`) for the Markdown and pprof writers.
//!
//! The allocator (`alloc.rs`) only counts; everything that allocates, resolves symbols or reads
//! /proc lives here and runs on the session thread or a debug request, inside a
//! `ProfilerScope`, so none of it is counted as the service's heap.
//!
//! What the figures mean (the heap Markdown states the same):
//! - "live", "allocations", sites: the service's own heap. The profiler's allocations (its
//!   sample tables, symbol data, report building) are counted apart (`alloc::profiler_stats`).
//! - A timeline point of `Phase::Session` is taken while the session samples; the last one at
//!   stop, before any report building. `Phase::Report` points are taken while the profiler
//!   builds its reports and are not part of the service's growth.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::process;
use crate::profiling::alloc::{self, HeapStats};
use crate::profiling::symbols::{FrameInfo, Symbolizer};

/// Points kept in a timeline (one per second: a full hour).
const TIMELINE_CAP: usize = 3600;

/// When a timeline point was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// While the session sampled (the last such point is taken at stop).
    Session,
    /// While the profiler built its reports: says what report building costs in RSS, and is
    /// not part of the service's growth.
    Report,
}

impl Phase {
    /// The `Phase` cell of the Markdown growth table.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Session => "session",
            Phase::Report => "report",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeapPoint {
    pub at: Duration,
    /// The service's live heap (the profiler's own allocations excluded).
    pub live_bytes: u64,
    /// The service's allocations since process start.
    pub allocations: u64,
    pub rss_bytes: u64,
    /// The profiler's own live heap.
    pub profiler_bytes: u64,
    pub phase: Phase,
}

/// Live bytes and RSS sampled by the session thread while a heap session runs.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub points: Vec<HeapPoint>,
}

impl Timeline {
    /// Records a point of the sampling phase.
    pub fn record(&mut self, at: Duration) {
        self.record_phase(at, Phase::Session);
    }

    pub fn record_phase(&mut self, at: Duration, phase: Phase) {
        let stats = alloc::heap_stats();
        let point = HeapPoint {
            at,
            live_bytes: stats.live_bytes,
            allocations: stats.allocations,
            rss_bytes: process::resident_bytes(),
            profiler_bytes: alloc::profiler_stats().live_bytes,
            phase,
        };
        if self.points.len() >= TIMELINE_CAP {
            // Keep the start and thin out the rest rather than dropping the beginning.
            let keep: Vec<HeapPoint> = self.points.iter().step_by(2).copied().collect();
            self.points = keep;
        }
        self.points.push(point);
    }
}

/// One allocation site after unbiasing: estimates of what was really allocated there.
#[derive(Clone, Debug, PartialEq)]
pub struct HeapSite {
    /// Leaf first, allocator plumbing removed; `frames[0]` is the attributed function.
    pub frames: Vec<FrameInfo>,
    pub alloc_objects: f64,
    pub alloc_bytes: f64,
    pub inuse_objects: f64,
    pub inuse_bytes: f64,
    /// Raw sampled allocations behind the estimate.
    pub samples: u64,
}

impl HeapSite {
    pub fn function(&self) -> &str {
        self.frames
            .first()
            .map(|f| f.function.as_str())
            .unwrap_or(crate::profiling::symbols::UNKNOWN)
    }

    pub fn location(&self) -> String {
        self.frames
            .first()
            .map(FrameInfo::location)
            .unwrap_or_else(|| crate::profiling::symbols::UNKNOWN.to_owned())
    }
}

/// The service's counters and the RSS at the end of a session, taken at stop before any report
/// building.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeapEnd {
    pub at: SystemTime,
    pub stats: HeapStats,
    pub rss_bytes: u64,
}

impl HeapEnd {
    pub fn now() -> HeapEnd {
        HeapEnd {
            at: SystemTime::now(),
            stats: alloc::heap_stats(),
            rss_bytes: process::resident_bytes(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct HeapProfile {
    pub started: SystemTime,
    /// From start to the end point (stop), report building not included.
    pub duration: Duration,
    /// The service's counters at the end of the session (totals since process start; the
    /// session's own are `stats` minus `stats_at_start`).
    pub stats: HeapStats,
    /// The service's counters when the session started.
    pub stats_at_start: HeapStats,
    /// The profiler's own counters when this profile was built (report building included).
    pub profiler: HeapStats,
    /// Whole-process RSS at the end of the session.
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub rate: u64,
    pub samples: u64,
    pub dropped: u64,
    pub threads: usize,
    pub timeline: Vec<HeapPoint>,
    /// Sorted by in-use bytes, then allocated bytes.
    pub sites: Vec<HeapSite>,
}

/// Go's `scaleHeapSample`: a block of average size `avg` is sampled with probability
/// `1 - exp(-avg/rate)`, so counts and bytes are divided by that.
pub fn unbias(count: u64, bytes: u64, rate: u64) -> (f64, f64) {
    if count == 0 || bytes == 0 {
        return (0.0, 0.0);
    }
    if rate <= 1 {
        return (count as f64, bytes as f64);
    }
    let avg = bytes as f64 / count as f64;
    let scale = 1.0 / (1.0 - (-avg / rate as f64).exp());
    (count as f64 * scale, bytes as f64 * scale)
}

/// Frames of the allocation machinery between the allocator and the code that asked for
/// memory; the first frame that is none of these is the one a site is attributed to.
pub fn is_alloc_plumbing(function: &str) -> bool {
    const PREFIXES: [&str; 16] = [
        // The global-allocator shims; newer compilers name them `__rustc::__rust_alloc`.
        "__rustc::",
        "auth_service::profiling::alloc::",
        "<auth_service::profiling::alloc::CountingAlloc",
        "__rust_alloc",
        "__rust_realloc",
        "__rust_alloc_zeroed",
        "__rdl_",
        "__rg_",
        "alloc::",
        "<alloc::",
        "core::",
        "<core::",
        "std::alloc::",
        "std::thread::local::",
        "hashbrown::raw::",
        "<hashbrown::raw::",
    ];
    PREFIXES.iter().any(|p| function.starts_with(p))
        || (function.starts_with('<') && function.contains(" as alloc::"))
}

/// Symbolizes and unbiases the sampled sites; sites with the same attributed function and
/// location are merged (their heaviest stack is kept for the details).
pub fn build_sites(
    raw: &[alloc::SampledSite],
    rate: u64,
    symbols: &mut Symbolizer,
) -> Vec<HeapSite> {
    let mut merged: HashMap<(String, String), (HeapSite, f64)> = HashMap::new();
    for site in raw {
        let mut frames: Vec<FrameInfo> = site
            .frames
            .iter()
            .flat_map(|ip| symbols.resolve(*ip).iter().cloned().collect::<Vec<_>>())
            .collect();
        // Drop the allocator's own frames and the std/alloc plumbing above them, but keep the
        // plumbing if nothing else is left (then at least the stack says where it ended).
        let plumbing = frames
            .iter()
            .take_while(|f| is_alloc_plumbing(&f.function))
            .count();
        if plumbing < frames.len() {
            frames.drain(..plumbing);
        }
        if frames.is_empty() {
            frames.push(FrameInfo::unknown());
        }
        let (alloc_objects, alloc_bytes) = unbias(site.alloc_count, site.alloc_bytes, rate);
        let (inuse_objects, inuse_bytes) = unbias(
            site.alloc_count.saturating_sub(site.free_count),
            site.alloc_bytes.saturating_sub(site.free_bytes),
            rate,
        );
        let key = (frames[0].function.clone(), frames[0].location());
        let weight = alloc_bytes;
        let entry = merged.entry(key).or_insert_with(|| {
            (
                HeapSite {
                    frames: frames.clone(),
                    alloc_objects: 0.0,
                    alloc_bytes: 0.0,
                    inuse_objects: 0.0,
                    inuse_bytes: 0.0,
                    samples: 0,
                },
                -1.0,
            )
        });
        if weight > entry.1 {
            entry.0.frames = frames;
            entry.1 = weight;
        }
        entry.0.alloc_objects += alloc_objects;
        entry.0.alloc_bytes += alloc_bytes;
        entry.0.inuse_objects += inuse_objects;
        entry.0.inuse_bytes += inuse_bytes;
        entry.0.samples += site.alloc_count;
    }
    let mut sites: Vec<HeapSite> = merged.into_values().map(|(site, _)| site).collect();
    sites.sort_by(|a, b| {
        b.inuse_bytes
            .total_cmp(&a.inuse_bytes)
            .then(b.alloc_bytes.total_cmp(&a.alloc_bytes))
            .then(a.function().cmp(b.function()))
    });
    sites
}

/// Builds a profile from the allocator's sampled sites (a running or the last session): counters
/// as of `end` (a finished session's stop), or of now while it runs.
pub fn snapshot(
    started: SystemTime,
    stats_at_start: HeapStats,
    end: Option<HeapEnd>,
    timeline: Vec<HeapPoint>,
    symbols: &mut Symbolizer,
) -> HeapProfile {
    let sampling = alloc::sampling_stats();
    let raw = alloc::snapshot_sites();
    let end = end.unwrap_or_else(HeapEnd::now);
    HeapProfile {
        started,
        duration: end.at.duration_since(started).unwrap_or_default(),
        stats: end.stats,
        stats_at_start,
        profiler: alloc::profiler_stats(),
        rss_bytes: end.rss_bytes,
        // ru_maxrss is sampled by the kernel and can trail the current RSS slightly.
        peak_rss_bytes: process::peak_resident_bytes().max(end.rss_bytes),
        rate: sampling.rate,
        samples: sampling.samples,
        dropped: sampling.dropped,
        threads: alloc::counted_threads(),
        timeline,
        sites: build_sites(&raw, sampling.rate, symbols),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbiasing_matches_go() {
        // A block far larger than the rate is always sampled: no scaling.
        let (objects, bytes) = unbias(1, 8 << 20, 512 * 1024);
        assert!((objects - 1.0).abs() < 1e-6 && (bytes - (8 << 20) as f64).abs() < 1.0);
        // Small blocks: 10 samples of 1 KiB at 512 KiB stand for ~5125 blocks.
        let (objects, _) = unbias(10, 10 * 1024, 512 * 1024);
        assert!((objects - 5125.0).abs() < 1.0, "{objects}");
        assert_eq!(unbias(0, 0, 512 * 1024), (0.0, 0.0));
    }

    #[test]
    fn plumbing_is_recognised() {
        for name in [
            "alloc::raw_vec::RawVec<T,A>::grow_one",
            "__rust_alloc",
            "<auth_service::profiling::alloc::CountingAlloc as core::alloc::global::GlobalAlloc>::alloc",
            "auth_service::profiling::alloc::sample_slow",
            "<u8 as alloc::vec::spec_from_elem::SpecFromElem>::from_elem",
        ] {
            assert!(is_alloc_plumbing(name), "{name}");
        }
        assert!(!is_alloc_plumbing(
            "auth_service::profiling::workload::retain_mib"
        ));
    }
}
