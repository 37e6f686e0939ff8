//! The rolling latency window of one route and its nearest-rank percentiles.
//!
//! Pure: no clock, no I/O, no allocation after construction except the caller's scratch
//! buffer. The window holds the last `capacity` latencies in microseconds (a ring); percentiles
//! are computed only from `MIN_SAMPLES` on, so a handful of slow requests after start-up cannot
//! declare a violation.

/// Fewer samples than this give no percentiles (SPEC 6).
pub const MIN_SAMPLES: usize = 10;

/// p95 and p99 of a window, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percentiles {
    pub p95_us: u32,
    pub p99_us: u32,
}

/// The last `capacity` latencies of one route.
#[derive(Clone, Debug)]
pub struct Window {
    ring: Vec<u32>,
    capacity: usize,
    /// Where the next sample goes once the ring is full.
    next: usize,
}

impl Window {
    pub fn new(capacity: usize) -> Window {
        let capacity = capacity.max(1);
        Window {
            ring: Vec::with_capacity(capacity),
            capacity,
            next: 0,
        }
    }

    /// Adds one latency; the oldest falls out once the window is full.
    pub fn push(&mut self, micros: u32) {
        if self.ring.len() < self.capacity {
            self.ring.push(micros);
        } else {
            self.ring[self.next] = micros;
            self.next = (self.next + 1) % self.capacity;
        }
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Nearest-rank p95 and p99, or `None` below `MIN_SAMPLES`. `scratch` is reused between
    /// calls so a tick does not allocate.
    pub fn percentiles(&self, scratch: &mut Vec<u32>) -> Option<Percentiles> {
        if self.ring.len() < MIN_SAMPLES {
            return None;
        }
        scratch.clear();
        scratch.extend_from_slice(&self.ring);
        scratch.sort_unstable();
        Some(Percentiles {
            p95_us: nearest_rank(scratch, 95),
            p99_us: nearest_rank(scratch, 99),
        })
    }
}

/// The nearest-rank percentile of sorted, non-empty `values`: the value at rank
/// `ceil(p / 100 × n)` (1-based), computed in integers so n = 100 gives exactly rank 95.
pub fn nearest_rank(sorted: &[u32], percent: u32) -> u32 {
    let n = sorted.len();
    debug_assert!(n > 0 && (1..=100).contains(&percent));
    let rank = (percent as usize * n).div_ceil(100).clamp(1, n);
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `values` pushed in order into a window of `capacity` → expected (p95, p99).
    fn check(capacity: usize, values: &[u32], expected: Option<(u32, u32)>) {
        let mut window = Window::new(capacity);
        for value in values {
            window.push(*value);
        }
        let got = window
            .percentiles(&mut Vec::new())
            .map(|p| (p.p95_us, p.p99_us));
        assert_eq!(got, expected, "capacity {capacity}, values {values:?}");
    }

    fn range(from: u32, to: u32) -> Vec<u32> {
        (from..=to).collect()
    }

    #[test]
    fn nearest_rank_table() {
        // (n values 1..=n, percent, expected): rank = ceil(p/100 × n).
        let cases: &[(u32, u32, u32)] = &[
            (1, 95, 1),
            (10, 95, 10), // ceil(9.5) = 10
            (10, 99, 10), // ceil(9.9) = 10
            (10, 50, 5),
            (20, 95, 19),
            (20, 99, 20),
            (100, 95, 95), // exactly 95, not 96
            (100, 99, 99),
            (101, 95, 96), // ceil(95.95)
            (1000, 99, 990),
        ];
        for &(n, percent, expected) in cases {
            let sorted = range(1, n);
            assert_eq!(
                nearest_rank(&sorted, percent),
                expected,
                "n={n} p={percent}"
            );
        }
    }

    #[test]
    fn window_table() {
        // Below ten samples there is nothing to judge.
        check(100, &range(1, 9), None);
        // n = 10: both percentiles are the maximum.
        check(100, &range(1, 10), Some((10, 10)));
        // Order does not matter.
        check(100, &[10, 1, 9, 2, 8, 3, 7, 4, 6, 5], Some((10, 10)));
        // n = 100.
        check(100, &range(1, 100), Some((95, 99)));
        // One outlier in 100 moves p99's neighbour only when it is among the top 1 %.
        let mut one_slow = vec![5; 99];
        one_slow.push(500_000);
        check(100, &one_slow, Some((5, 5)));
        let mut two_slow = vec![5; 98];
        two_slow.extend([500_000, 500_000]);
        check(100, &two_slow, Some((5, 500_000)));
    }

    #[test]
    fn the_ring_rolls_over() {
        // 10 slow samples, then 10 fast ones in a window of 10: only the fast ones remain.
        let mut values = vec![900_000; 10];
        values.extend(range(1, 10));
        check(10, &values, Some((10, 10)));
        // 150 values in a window of 100 keep 51..=150.
        check(100, &range(1, 150), Some((145, 149)));
        let mut window = Window::new(10);
        for value in 0..25 {
            window.push(value);
        }
        assert_eq!(window.len(), 10);
    }
}
