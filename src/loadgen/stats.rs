//! Latency and status statistics: a log-bucketed histogram with microsecond resolution and
//! per-endpoint counters, recorded per virtual user and merged at the end.
//!
//! Pure data and arithmetic: no I/O, no clock, no threads. Each VU owns its own recorder, so
//! the hot path never shares a cache line; `merge` combines them after the run.

use serde::Serialize;

/// Sub-buckets per power of two: 256 gives a relative error under 0.4 %, and every value
/// below 512 µs is exact.
const SUB_BITS: u32 = 8;
const SUB: usize = 1 << SUB_BITS;
/// Latencies are clamped at 2^27 µs (about 134 s), longer than any request timeout.
const MAX_BITS: u32 = 27;
const BUCKETS: usize = ((MAX_BITS - SUB_BITS) as usize + 2) * SUB;

/// Counts of latencies in microseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    pub fn record(&mut self, micros: u64) {
        let value = micros.min((1 << MAX_BITS) - 1);
        self.counts[bucket(value)] += 1;
        self.total += 1;
        self.min = self.min.min(micros);
        self.max = self.max.max(micros);
        self.sum += u128::from(micros);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn min(&self) -> u64 {
        if self.total == 0 { 0 } else { self.min }
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// Nearest-rank percentile (`p` in 0-100) in microseconds: the smallest recorded value
    /// with at least p % of the samples at or below it, reported as its bucket's midpoint
    /// (exact below 512 µs) and never above the true maximum.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, high) = bucket_range(index);
                return (low + (high - low) / 2).clamp(self.min(), self.max);
            }
        }
        self.max
    }
}

/// Bucket of a value: exact below 2·SUB, then SUB buckets per power of two.
fn bucket(value: u64) -> usize {
    if value < (2 * SUB) as u64 {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros();
    let shift = msb - SUB_BITS;
    shift as usize * SUB + (value >> shift) as usize
}

/// Inclusive value range of a bucket.
fn bucket_range(index: usize) -> (u64, u64) {
    if index < 2 * SUB {
        return (index as u64, index as u64);
    }
    let shift = (index / SUB - 1) as u32;
    let mantissa = (index - shift as usize * SUB) as u64;
    let low = mantissa << shift;
    (low, low + (1 << shift) - 1)
}

/// Everything recorded for one endpoint.
#[derive(Clone, Default)]
pub struct EndpointStats {
    pub latency: Histogram,
    /// (status, count), in first-seen order; a handful of entries at most.
    pub statuses: Vec<(u16, u64)>,
    /// Requests that got no HTTP reply (connect, I/O or parse failures).
    pub transport_errors: u64,
}

impl EndpointStats {
    /// A reply with `status` after `micros`.
    pub fn record(&mut self, status: u16, micros: u64) {
        self.latency.record(micros);
        match self.statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, count)) => *count += 1,
            None => self.statuses.push((status, 1)),
        }
    }

    /// A request that failed without a reply; its time is not a latency sample.
    pub fn record_transport_error(&mut self) {
        self.transport_errors += 1;
    }

    pub fn merge(&mut self, other: &EndpointStats) {
        self.latency.merge(&other.latency);
        for &(status, count) in &other.statuses {
            match self.statuses.iter_mut().find(|(s, _)| *s == status) {
                Some((_, mine)) => *mine += count,
                None => self.statuses.push((status, count)),
            }
        }
        self.transport_errors += other.transport_errors;
    }

    /// Replies plus transport errors.
    pub fn requests(&self) -> u64 {
        self.latency.count() + self.transport_errors
    }

    pub fn successes(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(status, _)| (200..300).contains(status))
            .map(|(_, count)| count)
            .sum()
    }

    /// Non-2xx replies plus transport errors.
    pub fn errors(&self) -> u64 {
        self.requests() - self.successes()
    }

    /// Statuses sorted ascending.
    pub fn sorted_statuses(&self) -> Vec<(u16, u64)> {
        let mut statuses = self.statuses.clone();
        statuses.sort_unstable();
        statuses
    }
}

/// Latency figures in milliseconds, as reports show them.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct LatencyMs {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl LatencyMs {
    pub fn of(histogram: &Histogram) -> LatencyMs {
        let ms = |micros: u64| micros as f64 / 1000.0;
        LatencyMs {
            min: ms(histogram.min()),
            mean: histogram.mean() / 1000.0,
            p50: ms(histogram.percentile(50.0)),
            p90: ms(histogram.percentile(90.0)),
            p95: ms(histogram.percentile(95.0)),
            p99: ms(histogram.percentile(99.0)),
            max: ms(histogram.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bounded() {
        let mut previous = None;
        for value in (0..5000u64).chain([65_535, 65_536, 1 << 20, (1 << MAX_BITS) - 1]) {
            let index = bucket(value);
            assert!(index < BUCKETS, "{value}");
            let (low, high) = bucket_range(index);
            assert!(low <= value && value <= high, "{value} in [{low},{high}]");
            // Relative width stays under 1/SUB.
            assert!(
                (high - low) as f64 <= value as f64 / SUB as f64 + 1.0,
                "{value}"
            );
            if value < 5000 {
                if let Some(prev) = previous {
                    assert!(index == prev || index == prev + 1, "{value}");
                }
                previous = Some(index);
            }
        }
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let check = |values: &[u64], p: f64, expected: u64| {
            let mut h = Histogram::new();
            for &v in values {
                h.record(v);
            }
            assert_eq!(h.percentile(p), expected, "p{p} of {values:?}");
        };
        let hundred: Vec<u64> = (1..=100).collect();
        check(&hundred, 50.0, 50);
        check(&hundred, 95.0, 95);
        check(&hundred, 99.0, 99);
        check(&hundred, 100.0, 100);
        check(&hundred, 0.0, 1);
        check(&[7], 99.0, 7);
        check(&[], 95.0, 0);
        // Two samples: p50 is the first, p95 the second.
        check(&[10, 400], 50.0, 10);
        check(&[10, 400], 95.0, 400);
    }

    #[test]
    fn large_values_are_within_half_a_percent() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1000); // 1 ms .. 10 s
        }
        for (p, exact) in [
            (50.0, 5_000_000.0),
            (95.0, 9_500_000.0),
            (99.0, 9_900_000.0),
        ] {
            let got = h.percentile(p) as f64;
            assert!(
                (got - exact).abs() / exact < 0.005,
                "p{p}: {got} vs {exact}"
            );
        }
        assert_eq!(h.max(), 10_000_000);
        assert_eq!(h.min(), 1000);
    }

    #[test]
    fn merging_adds_counts_and_statuses() {
        let mut a = EndpointStats::default();
        a.record(200, 100);
        a.record(401, 200);
        let mut b = EndpointStats::default();
        b.record(200, 300);
        b.record_transport_error();
        a.merge(&b);
        assert_eq!(a.requests(), 4);
        assert_eq!(a.successes(), 2);
        assert_eq!(a.errors(), 2);
        assert_eq!(a.sorted_statuses(), vec![(200, 2), (401, 1)]);
        assert_eq!(a.latency.percentile(100.0), 300);
    }
}
