//! The arithmetic of an A/B benchmark: per-pair ratios, their median and spread.
//!
//! Pure: no I/O, no clock. A pair's ratio is `b / a` of two windows measured back to back, so
//! drift and neighbour noise on this shared machine hit both sides of a pair alike; the median
//! of those ratios is what the bench reports, and min–max shows how much they moved.

/// Median and range of a set of values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub count: usize,
}

/// The median (mean of the two middle values for an even count); `None` when nothing is finite.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// Median, min and max of the finite values; `None` when there are none.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let median = median(&finite)?;
    Some(Spread {
        median,
        min: finite.iter().copied().fold(f64::INFINITY, f64::min),
        max: finite.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        count: finite.len(),
    })
}

/// `b / a` for each pair; a pair whose `a` is not positive has no ratio and is left out.
pub fn ratios(pairs: &[(f64, f64)]) -> Vec<f64> {
    pairs
        .iter()
        .filter(|(a, b)| *a > 0.0 && a.is_finite() && b.is_finite())
        .map(|(a, b)| b / a)
        .collect()
}

/// The spread of the per-pair ratios `b / a`.
pub fn ratio_spread(pairs: &[(f64, f64)]) -> Option<Spread> {
    spread(&ratios(pairs))
}

/// What B costs relative to A, in percent, from a ratio of throughputs: 0.98 costs 2 %.
pub fn cost_percent(ratio: f64) -> f64 {
    (1.0 - ratio) * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_even_and_empty_sets() {
        let check = |values: &[f64], expected: Option<f64>| {
            assert_eq!(median(values), expected, "{values:?}");
        };
        check(&[], None);
        check(&[f64::NAN], None);
        check(&[3.0], Some(3.0));
        check(&[5.0, 1.0, 3.0], Some(3.0));
        check(&[4.0, 1.0, 3.0, 2.0], Some(2.5));
        check(&[1.0, f64::NAN, 2.0, 9.0], Some(2.0));
    }

    #[test]
    fn spread_keeps_min_max_and_count() {
        let s = spread(&[0.9, 1.1, 1.0, f64::INFINITY]).unwrap();
        assert_eq!(s.median, 1.0);
        assert_eq!((s.min, s.max, s.count), (0.9, 1.1, 3));
        assert!(spread(&[]).is_none());
    }

    #[test]
    fn ratios_are_per_pair_and_skip_empty_baselines() {
        let pairs = [(100.0, 80.0), (0.0, 50.0), (200.0, 180.0), (50.0, 55.0)];
        assert_eq!(ratios(&pairs), vec![0.8, 0.9, 1.1]);
        let s = ratio_spread(&pairs).unwrap();
        assert!((s.median - 0.9).abs() < 1e-12);
        assert_eq!((s.min, s.max), (0.8, 1.1));
        // The median of ratios is not the ratio of medians: one slow pair does not decide it.
        let skewed = [(100.0, 99.0), (100.0, 98.0), (10.0, 1.0)];
        assert!((ratio_spread(&skewed).unwrap().median - 0.98).abs() < 1e-12);
    }

    #[test]
    fn cost_is_the_missing_share() {
        assert!((cost_percent(0.98) - 2.0).abs() < 1e-9);
        assert!((cost_percent(1.01) + 1.0).abs() < 1e-9);
    }
}
