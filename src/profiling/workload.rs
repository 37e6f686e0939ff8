//! Diagnostics workloads behind `/debug/workload/*`: a profiler self-check that plants a known
//! hot function (`spin_cpu`) and a known allocation (`retain_mib`), so a human or a test can
//! confirm the CPU and heap reports attribute time and memory to the right place.
//!
//! Owns only the retained-memory list (held by the `Profiler`, not a static). Must not be
//! reachable in production: the router hides every `/debug/*` path there.

use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest spin one request may ask for.
pub const MAX_SPIN_MS: u64 = 10_000;
/// Largest single retain request, in MiB.
pub const MAX_RETAIN_MIB: usize = 256;
/// Cap on everything retained at once, so a loop of requests cannot exhaust the memory budget.
pub const MAX_RETAINED_TOTAL_MIB: usize = 512;

/// Burns CPU on the calling thread for `duration`. Never inlined, and the clock is read only
/// every few thousand iterations, so samples land in this function's own frame (`vdso` clock
/// reads are on the profiler's blocklist and would otherwise be dropped).
#[inline(never)]
pub fn spin_cpu(duration: Duration) -> u64 {
    let start = Instant::now();
    let mut acc: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rounds = 0u64;
    while start.elapsed() < duration {
        // Plain shifts and xors only: no calls even in debug builds, so the time is self time
        // of this frame rather than of `Range::next` or `wrapping_mul`.
        let mut i = 0u32;
        while i < 20_000 {
            acc ^= acc << 13;
            acc ^= acc >> 7;
            acc ^= acc << 17;
            i += 1;
        }
        acc = black_box(acc);
        rounds += 1;
    }
    black_box(acc);
    rounds
}

/// Memory kept alive on purpose until `release`.
#[derive(Default)]
pub struct Retained {
    blocks: Mutex<Vec<Vec<u8>>>,
}

impl Retained {
    /// Keeps `mib` MiB alive; returns the total now retained in MiB, or `None` when the cap
    /// would be exceeded.
    pub fn retain(&self, mib: usize) -> Option<usize> {
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let held: usize = blocks.iter().map(Vec::len).sum::<usize>() / (1024 * 1024);
        if held + mib > MAX_RETAINED_TOTAL_MIB {
            return None;
        }
        blocks.push(retain_mib(mib));
        Some(held + mib)
    }

    /// Frees everything retained; returns the MiB released.
    pub fn release(&self) -> usize {
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let held: usize = blocks.iter().map(Vec::len).sum::<usize>() / (1024 * 1024);
        blocks.clear();
        blocks.shrink_to_fit();
        held
    }

    pub fn retained_mib(&self) -> usize {
        let blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        blocks.iter().map(Vec::len).sum::<usize>() / (1024 * 1024)
    }
}

/// Allocates `mib` MiB as one block and writes every byte, so the pages are resident (a zeroed
/// allocation would stay untouched copy-on-write zero pages and never show in RSS). This is
/// the frame the heap report must name for the planted allocation.
#[inline(never)]
pub fn retain_mib(mib: usize) -> Vec<u8> {
    let block = vec![0xA5u8; mib * 1024 * 1024];
    black_box(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_runs_for_the_requested_time() {
        let start = Instant::now();
        let rounds = spin_cpu(Duration::from_millis(30));
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert!(rounds >= 1);
    }

    #[test]
    fn retain_and_release() {
        let retained = Retained::default();
        assert_eq!(retained.retain(2), Some(2));
        assert_eq!(retained.retain(1), Some(3));
        assert_eq!(retained.retained_mib(), 3);
        assert_eq!(retained.retain(MAX_RETAINED_TOTAL_MIB), None);
        assert_eq!(retained.release(), 3);
        assert_eq!(retained.retained_mib(), 0);
    }
}
