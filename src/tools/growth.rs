//! Live-heap growth of a heap profile: a least-squares line through the `## Growth Over Time`
//! timeline, judged against a minimum duration and a noise floor, so that a flat service is
//! never called leaking.
//!
//! Owns which points count (not the session's start-up allocations, not the report-building
//! tail) and what "flat" means. Pure: points in, a fit out; no I/O. Must not judge severity
//! (that is `budgets`/`recommend`).
//!
//! Points left out:
//! * rows the writer marked as taken while the profiler built its report (`report_tail`);
//! * rows after the session's stated end (the Summary's Duration);
//! * up to two last rows that jump away from the rest (more than `OUTLIER_FACTOR` times the
//!   median step, and more than the absolute noise floor): the profiler's report building
//!   allocates there, the service does not;
//! * the first row when it sits in the first second and the next within two: a session starts
//!   by allocating its own tables (pprof's sample buckets) in its first second.

use serde::Serialize;

use crate::tools::report::GrowthPoint;

/// A timeline shorter than this says nothing about an hour: not judged. The default 30 s
/// `profile` run (29 s of timeline) is judged.
pub const MIN_WINDOW_SECONDS: f64 = 20.0;
/// Growth over the window below max(this, `NOISE_FLOOR_FRACTION` of the mean live heap) is flat.
pub const NOISE_FLOOR_BYTES: f64 = 1024.0 * 1024.0;
pub const NOISE_FLOOR_FRACTION: f64 = 0.02;
/// A last step this many times the median step (and above the floor) is the report tail.
pub const OUTLIER_FACTOR: f64 = 5.0;
const MAX_TAIL_OUTLIERS: usize = 2;
/// Points after the stated end by more than this are the report tail.
const END_SLACK_SECONDS: f64 = 0.5;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Growth {
    /// Slope of the least-squares line, bytes per hour.
    pub bytes_per_hour: f64,
    /// First to last point used.
    pub window_seconds: f64,
    pub points_used: usize,
    /// Points left out at the end (marked tail, after the stated end, outlier jumps).
    pub tail_points_dropped: usize,
    pub start_point_dropped: bool,
    /// What the line grows over the window, and the floor it is compared with.
    pub fitted_bytes: f64,
    pub noise_floor_bytes: f64,
    /// Within the noise floor: no growth to speak of, whatever the slope extrapolates to.
    pub flat: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NotJudged {
    /// Fewer than two points remain.
    TooFewPoints,
    /// The points used span less than `MIN_WINDOW_SECONDS`.
    TooShort { window_seconds: f64 },
}

/// The fit over `points` (time order); `session_seconds` is the session's stated duration.
pub fn fit(points: &[GrowthPoint], session_seconds: Option<f64>) -> Result<Growth, NotJudged> {
    let mut used: Vec<&GrowthPoint> = points.iter().filter(|p| !p.report_tail).collect();
    if let Some(end) = session_seconds {
        used.retain(|p| p.time_s <= end + END_SLACK_SECONDS);
    }
    for _ in 0..MAX_TAIL_OUTLIERS {
        if last_step_is_outlier(&used) {
            used.pop();
        }
    }
    let tail_points_dropped = points.len() - used.len();
    let start_point_dropped = match used.as_slice() {
        [first, second, _, ..] => first.time_s < 1.0 && second.time_s <= 2.0,
        _ => false,
    };
    if start_point_dropped {
        used.remove(0);
    }
    let (Some(first), Some(last)) = (used.first(), used.last()) else {
        return Err(NotJudged::TooFewPoints);
    };
    if used.len() < 2 {
        return Err(NotJudged::TooFewPoints);
    }
    let window_seconds = last.time_s - first.time_s;
    if window_seconds < MIN_WINDOW_SECONDS {
        return Err(NotJudged::TooShort { window_seconds });
    }
    let n = used.len() as f64;
    let mean_t = used.iter().map(|p| p.time_s).sum::<f64>() / n;
    let mean_live = used.iter().map(|p| p.live_bytes as f64).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for p in &used {
        let dt = p.time_s - mean_t;
        sxy += dt * (p.live_bytes as f64 - mean_live);
        sxx += dt * dt;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let fitted_bytes = slope * window_seconds;
    let noise_floor_bytes = NOISE_FLOOR_BYTES.max(NOISE_FLOOR_FRACTION * mean_live);
    Ok(Growth {
        bytes_per_hour: slope * 3600.0,
        window_seconds,
        points_used: used.len(),
        tail_points_dropped,
        start_point_dropped,
        fitted_bytes,
        noise_floor_bytes,
        flat: fitted_bytes.abs() < noise_floor_bytes,
    })
}

fn last_step_is_outlier(points: &[&GrowthPoint]) -> bool {
    if points.len() < 4 {
        return false;
    }
    let steps: Vec<f64> = points
        .windows(2)
        .map(|w| w[1].live_bytes as f64 - w[0].live_bytes as f64)
        .collect();
    let (last, before) = steps.split_last().expect("at least three steps");
    let mut magnitudes: Vec<f64> = before.iter().map(|s| s.abs()).collect();
    magnitudes.sort_by(f64::total_cmp);
    let median = magnitudes[magnitudes.len() / 2];
    last.abs() > NOISE_FLOOR_BYTES.max(OUTLIER_FACTOR * median)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn point(time_s: f64, live_bytes: u64) -> GrowthPoint {
        GrowthPoint {
            time_s,
            live_bytes,
            rss_bytes: None,
            report_tail: false,
        }
    }

    fn per_second(seconds: u32, live: impl Fn(u32) -> u64) -> Vec<GrowthPoint> {
        (0..=seconds)
            .map(|s| point(f64::from(s), live(s)))
            .collect()
    }

    #[test]
    fn a_flat_timeline_with_a_report_building_tail_is_flat() {
        // Issue 11 item 5: flat for 35 s, then +13 MiB while the report is built.
        let mut points = per_second(35, |s| 20 * MIB + u64::from(s % 3) * 1000);
        points.push(point(35.6, 33 * MIB));
        let growth = fit(&points, Some(35.6)).unwrap();
        assert!(growth.flat, "{growth:?}");
        assert_eq!(growth.tail_points_dropped, 1);
        // The same tail marked by the writer is left out without the outlier rule.
        let marked: Vec<GrowthPoint> = points
            .iter()
            .cloned()
            .map(|mut p| {
                p.report_tail = p.time_s > 35.0;
                p
            })
            .collect();
        assert!(fit(&marked, None).unwrap().flat);
    }

    #[test]
    fn points_after_the_stated_end_are_left_out() {
        let mut points = per_second(40, |_| 50 * MIB);
        points.push(point(45.0, 70 * MIB));
        points.push(point(46.0, 72 * MIB));
        let growth = fit(&points, Some(40.2)).unwrap();
        assert!(growth.flat && growth.tail_points_dropped == 2, "{growth:?}");
    }

    #[test]
    fn a_steady_leak_is_growth() {
        // 1 MiB every 10 s: the last step is like every other, so nothing is dropped.
        let points = per_second(60, |s| 10 * MIB + u64::from(s) * MIB / 10);
        let growth = fit(&points, Some(60.0)).unwrap();
        assert!(!growth.flat);
        assert_eq!(growth.tail_points_dropped, 0);
        let expected = MIB as f64 / 10.0 * 3600.0;
        assert!(
            (growth.bytes_per_hour / expected - 1.0).abs() < 1e-6,
            "{growth:?}"
        );
    }

    #[test]
    fn start_up_short_and_tiny_timelines() {
        // The profiler's own tables appear in the first second: not service growth.
        let mut points = vec![point(0.0, 10 * MIB)];
        points.extend((1..=40).map(|s| point(f64::from(s), 90 * MIB)));
        let growth = fit(&points, None).unwrap();
        assert!(growth.start_point_dropped && growth.flat);
        assert_eq!(growth.bytes_per_hour, 0.0);
        assert_eq!(
            fit(&per_second(5, |s| u64::from(s) * MIB), None),
            Err(NotJudged::TooShort {
                window_seconds: 4.0
            }),
            "the start-up point is left out, 4 s remain"
        );
        assert_eq!(fit(&[point(0.0, MIB)], None), Err(NotJudged::TooFewPoints));
        // 0.5 MiB over a minute on a 10 MiB heap: under the 1 MiB floor.
        let slow = fit(
            &[point(0.0, 10 * MIB), point(60.0, 10 * MIB + MIB / 2)],
            None,
        )
        .unwrap();
        assert!(slow.flat);
        let two_mib = fit(
            &[
                point(0.0, 10 * MIB),
                point(30.0, 11 * MIB),
                point(60.0, 12 * MIB),
            ],
            None,
        )
        .unwrap();
        assert!(!two_mib.flat);
        assert_eq!(two_mib.bytes_per_hour, 120.0 * MIB as f64);
    }
}
