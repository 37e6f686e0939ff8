//! The heap Markdown report (`Heap.<ts>.<pid>.md`): summary, growth over time, top sites by
//! in-use and by allocated bytes, one section per top site with its stack, and metadata.
//!
//! Pure: a function of a `HeapProfile` and the metadata rows, no I/O and no clock. The row
//! names of `## Summary` and the columns of `## Growth Over Time` are a contract with the
//! `analyze` tool:
//!
//! - Everything except the `Profiler …` rows and the `Profiler` column is the *service's* heap:
//!   the profiler's own allocations (sample tables, symbol data, report building) are counted
//!   apart and never appear in live heap, growth or sites.
//! - `## Summary`: `Live heap`, `Live blocks` at the end of the session (stop, before report
//!   building); `Live heap at start` at its start; `Allocations`, `Frees`, `Bytes allocated`,
//!   `Bytes freed` during the session, so `Live heap = Live heap at start + Bytes allocated −
//!   Bytes freed` exactly; `Peak heap` and `Peak RSS` since process start; `RSS` at the end of
//!   the session; `Profiler heap` the profiler's own live heap when the report was written,
//!   `Profiler peak heap` its high-water mark during the session (report building included).
//! - `## Growth Over Time`: `| Time | Live | Δ | Allocs/s | RSS | Profiler | Phase |`. `Phase`
//!   is `session` for points taken while sampling (the last one at stop) and `report` for the
//!   point taken while the profiler builds its reports: judge growth on `session` rows only.

use std::fmt::Write;

use crate::profiling::cpu_report::{format_duration_ns, render_metadata};
use crate::profiling::heap::{HeapPoint, HeapProfile, HeapSite, Phase};

const TOP_SITES: usize = 20;
const DETAIL_SITES: usize = 10;
const DETAIL_FRAMES: usize = 24;
const TIMELINE_ROWS: usize = 120;

/// `12.30 MiB` (binary units, two decimals; plain bytes below 1 KiB).
pub fn format_bytes(bytes: f64) -> String {
    let units = ["KiB", "MiB", "GiB", "TiB"];
    if bytes.abs() < 1024.0 {
        return format!("{bytes:.0} B");
    }
    let mut value = bytes / 1024.0;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", units[unit])
}

/// `12.30 MiB (12897280 bytes)`.
pub fn format_bytes_exact(bytes: u64) -> String {
    format!("{} ({bytes} bytes)", format_bytes(bytes as f64))
}

fn signed_bytes(delta: i64) -> String {
    if delta >= 0 {
        format!("+{}", format_bytes(delta as f64))
    } else {
        format!("-{}", format_bytes(delta.unsigned_abs() as f64))
    }
}

/// `0s`, `1s`, … for the once-per-second ticks; `1.1s` for the final point of a session that
/// did not end on a whole second.
fn time_label(at: std::time::Duration) -> String {
    let seconds = at.as_secs_f64();
    if (seconds - seconds.round()).abs() < 0.05 {
        format!("{}s", seconds.round() as u64)
    } else {
        format!("{seconds:.1}s")
    }
}

/// At most `TIMELINE_ROWS` session points (evenly thinned, the first and the last always kept),
/// then every report point.
fn shown_points(timeline: &[HeapPoint]) -> Vec<&HeapPoint> {
    let session: Vec<&HeapPoint> = timeline
        .iter()
        .filter(|p| p.phase == Phase::Session)
        .collect();
    let stride = session.len().div_ceil(TIMELINE_ROWS).max(1);
    let mut shown: Vec<&HeapPoint> = session.iter().step_by(stride).copied().collect();
    if let Some(last) = session.last()
        && !shown.last().is_some_and(|p| std::ptr::eq(*p, *last))
    {
        shown.push(last);
    }
    shown.extend(timeline.iter().filter(|p| p.phase == Phase::Report));
    shown
}

fn percent(part: f64, whole: f64) -> String {
    if whole <= 0.0 {
        return "0.0%".to_owned();
    }
    format!("{:.1}%", part * 100.0 / whole)
}

fn code(text: &str) -> String {
    format!("`{}`", text.replace('`', "'").replace('|', "\\|"))
}

pub fn render(profile: &HeapProfile, metadata: &[(String, String)]) -> String {
    let stats = &profile.stats;
    let start = &profile.stats_at_start;
    let mut out = String::with_capacity(16 * 1024);
    out.push_str("# Heap Profile\n\n");
    out.push_str("## Summary\n\n");
    out.push_str("| Metric | Value |\n");
    out.push_str("|--------|-------|\n");
    let rows = [
        ("Live heap", format_bytes_exact(stats.live_bytes)),
        ("Live heap at start", format_bytes_exact(start.live_bytes)),
        ("Peak heap", format_bytes_exact(stats.peak_bytes)),
        ("RSS", format_bytes_exact(profile.rss_bytes)),
        ("Peak RSS", format_bytes_exact(profile.peak_rss_bytes)),
        (
            "Allocations",
            stats
                .allocations
                .wrapping_sub(start.allocations)
                .to_string(),
        ),
        ("Frees", stats.frees.wrapping_sub(start.frees).to_string()),
        ("Live blocks", stats.live_blocks().to_string()),
        (
            "Bytes allocated",
            format_bytes_exact(stats.bytes_allocated.wrapping_sub(start.bytes_allocated)),
        ),
        (
            "Bytes freed",
            format_bytes_exact(stats.bytes_freed.wrapping_sub(start.bytes_freed)),
        ),
        (
            "Profiler heap",
            format_bytes_exact(profile.profiler.live_bytes),
        ),
        (
            "Profiler peak heap",
            format_bytes_exact(profile.profiler.peak_bytes),
        ),
        ("Sampling rate", format_bytes_exact(profile.rate)),
        ("Samples", profile.samples.to_string()),
        ("Dropped samples", profile.dropped.to_string()),
        (
            "Duration",
            format_duration_ns(profile.duration.as_nanos() as f64),
        ),
    ];
    for (metric, value) in rows {
        let _ = writeln!(out, "| {metric} | {value} |");
    }
    out.push_str(
        "\nThe service's heap: the profiler's own allocations (sample tables, symbol data, report \
         building) are counted apart as Profiler heap, taken while this report was built and \
         given back when the session ends, and are in no other row, the growth or the sites. \
         Allocations, frees and bytes are counted from start to stop; Live heap and Live blocks \
         at stop; peaks since process start.\n\n",
    );

    out.push_str("## Growth Over Time\n\n");
    out.push_str("| Time | Live | Δ | Allocs/s | RSS | Profiler | Phase |\n");
    out.push_str("|-----:|-----:|--:|---------:|----:|---------:|-------|\n");
    let mut previous: Option<&HeapPoint> = None;
    for point in shown_points(&profile.timeline) {
        let (delta, rate) = match previous {
            Some(prev) => {
                let seconds = (point.at.as_secs_f64() - prev.at.as_secs_f64()).max(1e-9);
                (
                    point.live_bytes as i64 - prev.live_bytes as i64,
                    point.allocations.saturating_sub(prev.allocations) as f64 / seconds,
                )
            }
            None => (0, 0.0),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {} | {} |",
            time_label(point.at),
            format_bytes(point.live_bytes as f64),
            signed_bytes(delta),
            rate,
            format_bytes(point.rss_bytes as f64),
            format_bytes(point.profiler_bytes as f64),
            point.phase.as_str()
        );
        previous = Some(point);
    }
    if profile.timeline.iter().any(|p| p.phase == Phase::Report) {
        out.push_str(
            "\nRows with Phase `report` were taken while the profiler built its reports: growth \
             is judged on `session` rows only.\n",
        );
    }
    out.push('\n');

    let inuse_total: f64 = profile.sites.iter().map(|s| s.inuse_bytes).sum();
    let alloc_total: f64 = profile.sites.iter().map(|s| s.alloc_bytes).sum();
    let mut by_alloc: Vec<&HeapSite> = profile.sites.iter().collect();
    by_alloc.sort_by(|a, b| b.alloc_bytes.total_cmp(&a.alloc_bytes));
    let by_inuse: Vec<&HeapSite> = profile
        .sites
        .iter()
        .filter(|s| s.inuse_bytes > 0.0)
        .collect();
    for (title, sites) in [
        ("## Top Allocation Sites (In-Use)", &by_inuse),
        ("## Top Allocation Sites (Allocated)", &by_alloc),
    ] {
        let _ = writeln!(out, "{title}\n");
        out.push_str("| In-use% | In-use | Objects | Alloc% | Allocated | Function | Location |\n");
        out.push_str("|--------:|-------:|--------:|-------:|----------:|----------|----------|\n");
        for site in sites.iter().take(TOP_SITES) {
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {} | {} | {} |",
                percent(site.inuse_bytes, inuse_total),
                format_bytes(site.inuse_bytes),
                site.inuse_objects,
                percent(site.alloc_bytes, alloc_total),
                format_bytes(site.alloc_bytes),
                code(site.function()),
                code(&site.location())
            );
        }
        out.push('\n');
    }

    out.push_str("## Site Details\n\n");
    let mut detailed: Vec<&HeapSite> = Vec::new();
    for site in by_inuse.iter().take(DETAIL_SITES).chain(by_alloc.iter()) {
        if detailed.len() >= DETAIL_SITES {
            break;
        }
        if !detailed.iter().any(|d| std::ptr::eq(*d, *site)) {
            detailed.push(site);
        }
    }
    for site in detailed {
        let _ = writeln!(out, "### {}", code(site.function()));
        let _ = writeln!(
            out,
            "{} | In-use: {} ({:.0} objects) | Allocated: {} ({:.0} objects) | Samples: {}\n",
            code(&site.location()),
            format_bytes(site.inuse_bytes),
            site.inuse_objects,
            format_bytes(site.alloc_bytes),
            site.alloc_objects,
            site.samples
        );
        for (depth, frame) in site.frames.iter().take(DETAIL_FRAMES).enumerate() {
            let _ = writeln!(
                out,
                "{}. {} {}",
                depth + 1,
                code(&frame.function),
                code(&frame.location())
            );
        }
        if site.frames.len() > DETAIL_FRAMES {
            let _ = writeln!(out, "{}. …", DETAIL_FRAMES + 1);
        }
        out.push('\n');
    }

    render_metadata(&mut out, metadata);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiling::alloc::HeapStats;
    use crate::profiling::symbols::FrameInfo;
    use std::time::{Duration, SystemTime};

    #[test]
    fn bytes_are_formatted() {
        assert_eq!(format_bytes_exact(12_897_280), "12.30 MiB (12897280 bytes)");
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(524_288.0), "512.00 KiB");
        assert_eq!(signed_bytes(-1_048_576), "-1.00 MiB");
    }

    fn point(seconds: f64, live_mib: u64, allocations: u64, phase: Phase) -> HeapPoint {
        HeapPoint {
            at: Duration::from_secs_f64(seconds),
            live_bytes: live_mib << 20,
            allocations,
            rss_bytes: (live_mib + 16) << 20,
            profiler_bytes: if phase == Phase::Report {
                40 << 20
            } else {
                1 << 20
            },
            phase,
        }
    }

    fn profile() -> HeapProfile {
        let site = HeapSite {
            frames: vec![FrameInfo {
                function: "auth_service::profiling::workload::retain_mib".into(),
                file: Some("src/profiling/workload.rs".into()),
                line: 70,
            }],
            alloc_objects: 1.0,
            alloc_bytes: 8.0 * 1048576.0,
            inuse_objects: 1.0,
            inuse_bytes: 8.0 * 1048576.0,
            samples: 1,
        };
        HeapProfile {
            started: SystemTime::UNIX_EPOCH,
            duration: Duration::from_secs(2),
            stats: HeapStats {
                live_bytes: 12_897_280,
                peak_bytes: 13_000_000,
                allocations: 100,
                frees: 40,
                bytes_allocated: 20_000_000,
                bytes_freed: 7_102_720,
            },
            stats_at_start: HeapStats {
                live_bytes: 4_194_304,
                peak_bytes: 5_000_000,
                allocations: 10,
                frees: 5,
                bytes_allocated: 5_000_000,
                bytes_freed: 805_696,
            },
            profiler: HeapStats {
                live_bytes: 3 << 20,
                peak_bytes: 40 << 20,
                ..HeapStats::default()
            },
            rss_bytes: 30 << 20,
            peak_rss_bytes: 31 << 20,
            rate: 524_288,
            samples: 3,
            dropped: 0,
            threads: 2,
            timeline: vec![
                point(0.0, 4, 10, Phase::Session),
                point(1.0, 12, 110, Phase::Session),
                point(1.5, 12, 110, Phase::Session),
                point(1.9, 12, 130, Phase::Report),
            ],
            sites: vec![site],
        }
    }

    #[test]
    fn layout_has_every_section() {
        let md = render(&profile(), &[("trigger".into(), "manual".into())]);
        for part in [
            "# Heap Profile\n\n## Summary\n\n| Metric | Value |\n|--------|-------|\n| Live heap | 12.30 MiB (12897280 bytes) |\n| Live heap at start | 4.00 MiB (4194304 bytes) |\n",
            "| Allocations | 90 |\n| Frees | 35 |\n| Live blocks | 60 |\n",
            "| Profiler heap | 3.00 MiB (3145728 bytes) |\n| Profiler peak heap | 40.00 MiB (41943040 bytes) |\n",
            "| Sampling rate | 512.00 KiB (524288 bytes) |\n",
            "| Dropped samples | 0 |\n| Duration | 2.00s |\n",
            "## Growth Over Time\n\n| Time | Live | Δ | Allocs/s | RSS | Profiler | Phase |\n",
            "| 0s | 4.00 MiB | +0 B | 0 | 20.00 MiB | 1.00 MiB | session |\n| 1s | 12.00 MiB | +8.00 MiB | 100 | 28.00 MiB | 1.00 MiB | session |\n| 1.5s | 12.00 MiB | +0 B | 0 | 28.00 MiB | 1.00 MiB | session |\n| 1.9s | 12.00 MiB | +0 B | 50 | 28.00 MiB | 40.00 MiB | report |\n",
            "Rows with Phase `report` were taken while the profiler built its reports",
            "## Top Allocation Sites (In-Use)\n\n| In-use% | In-use | Objects | Alloc% | Allocated | Function | Location |\n",
            "| 100.0% | 8.00 MiB | 1 | 100.0% | 8.00 MiB | `auth_service::profiling::workload::retain_mib` | `src/profiling/workload.rs:70` |\n",
            "## Top Allocation Sites (Allocated)\n",
            "### `auth_service::profiling::workload::retain_mib`\n",
            "1. `auth_service::profiling::workload::retain_mib` `src/profiling/workload.rs:70`\n",
            "## Profile Metadata\n\n| Field | Value |\n|-------|-------|\n| trigger | manual |\n",
        ] {
            assert!(md.contains(part), "missing {part:?} in\n{md}");
        }
    }

    /// The byte rows of `## Summary` as numbers.
    fn summary_bytes(md: &str, metric: &str) -> u64 {
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {metric} | ")))
            .unwrap_or_else(|| panic!("no {metric} row in\n{md}"));
        let cell = row.split('|').nth(2).unwrap_or_default();
        crate::tools::units::parse_bytes(cell).unwrap_or_else(|| panic!("unreadable {row}")) as u64
    }

    /// Issue 11 item 10: the summary's heap rows are one consistent set of counters.
    #[test]
    fn summary_rows_add_up_issue_11() {
        let md = render(&profile(), &[]);
        let live = summary_bytes(&md, "Live heap");
        let at_start = summary_bytes(&md, "Live heap at start");
        let allocated = summary_bytes(&md, "Bytes allocated");
        let freed = summary_bytes(&md, "Bytes freed");
        assert_eq!(live, at_start + allocated - freed, "{md}");
    }

    #[test]
    fn long_timelines_keep_the_last_session_point_and_every_report_point() {
        let mut timeline: Vec<HeapPoint> = (0..=300)
            .map(|s| point(f64::from(s), 4, 0, Phase::Session))
            .collect();
        timeline.push(point(300.4, 4, 0, Phase::Report));
        let shown = shown_points(&timeline);
        assert!(shown.len() <= TIMELINE_ROWS + 2, "{}", shown.len());
        assert_eq!(shown[0].at, Duration::ZERO);
        assert_eq!(shown[shown.len() - 2].at, Duration::from_secs(300));
        assert_eq!(shown[shown.len() - 1].phase, Phase::Report);
    }
}
