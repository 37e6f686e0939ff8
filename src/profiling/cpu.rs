//! The CPU sampler: owns the pprof-rs `ProfilerGuard` for one session and turns its raw
//! samples into symbolized stacks (`CpuProfile`).
//!
//! Only the session thread (see `profiling::mod`) creates a `CpuCollector`, so there is exactly
//! one guard owner in the process. The report is taken with `build_unresolved` (a short read
//! lock and a copy) *before* the guard is dropped (dropping wipes the data), and symbols are
//! resolved afterwards, outside pprof's lock, so the signal handler never waits on us.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use crate::process;
use crate::profiling::ProfilingError;
use crate::profiling::symbols::{FrameInfo, Symbolizer};

/// Default sampling rate: Go's 100 Hz, off by one to avoid lockstep with periodic work, and
/// below `CONFIG_HZ` (250) so the process-wide itimer really delivers it (PROFILING.md §1.6).
pub const DEFAULT_HZ: i32 = 99;
/// On glibc ≥ 2.35 with libgcc ≥ 12 the unwinder is async-signal-safe, so only these need
/// skipping; the README's longer list would drop every sample whose leaf is in glibc.
pub const BLOCKLIST: [&str; 2] = ["libgcc", "vdso"];
/// Older or non-glibc C libraries: the conservative list from the pprof-rs README.
pub const BLOCKLIST_OLD_LIBC: [&str; 4] = ["libc", "libgcc", "pthread", "vdso"];
pub const UNWINDER: &str = "backtrace (libgcc)";

/// One distinct stack with its sample count. Frames are leaf first, inlined calls expanded
/// (innermost first), with the profiler's own signal-handling frames removed.
#[derive(Clone, Debug)]
pub struct CpuStack {
    pub frames: Vec<FrameInfo>,
    pub thread_name: String,
    pub thread_id: u64,
    pub count: u64,
}

/// Everything a CPU report needs, independent of pprof-rs types (so tests can build one).
#[derive(Clone, Debug)]
pub struct CpuProfile {
    pub stacks: Vec<CpuStack>,
    pub frequency: i32,
    pub started: SystemTime,
    pub duration: Duration,
    /// User + system CPU of the whole process during the session (getrusage delta).
    pub cpu_seconds: f64,
    pub blocklist: Vec<String>,
}

impl CpuProfile {
    pub fn samples(&self) -> u64 {
        self.stacks.iter().map(|s| s.count).sum()
    }

    pub fn threads(&self) -> usize {
        self.stacks
            .iter()
            .map(|s| s.thread_id)
            .collect::<HashSet<_>>()
            .len()
    }

    /// Nanoseconds one sample stands for.
    pub fn period_ns(&self) -> f64 {
        1e9 / f64::from(self.frequency.max(1))
    }
}

/// A running CPU session. Not `Send`: it lives and dies on the session thread.
pub struct CpuCollector {
    guard: pprof::ProfilerGuard<'static>,
    frequency: i32,
    started: SystemTime,
    cpu_at_start: f64,
    blocklist: Vec<String>,
}

impl CpuCollector {
    /// Arms the process-wide SIGPROF timer. pprof-rs first resolves a backtrace, which loads
    /// debug info (~0.2 s in release, over 100 MB RSS, PROFILING.md §1.3) every time: the
    /// symbol cache is dropped after each session (`release_freed_memory`).
    pub fn start(frequency: i32) -> Result<CpuCollector, ProfilingError> {
        let blocklist: Vec<String> = if glibc_has_safe_unwinder() {
            BLOCKLIST.iter().map(|s| s.to_string()).collect()
        } else {
            BLOCKLIST_OLD_LIBC.iter().map(|s| s.to_string()).collect()
        };
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(frequency)
            .blocklist(&blocklist)
            .build()
            .map_err(|err| match err {
                pprof::Error::Running => ProfilingError::Busy,
                other => ProfilingError::Pprof(other.to_string()),
            })?;
        Ok(CpuCollector {
            guard,
            frequency,
            started: SystemTime::now(),
            cpu_at_start: process::cpu_seconds(),
            blocklist,
        })
    }

    /// Copies the samples out, stops the timer, then symbolizes.
    pub fn finish(self, symbols: &mut Symbolizer) -> Result<CpuProfile, ProfilingError> {
        let unresolved = self
            .guard
            .report()
            .build_unresolved()
            .map_err(|err| ProfilingError::Pprof(err.to_string()));
        let cpu_seconds = (process::cpu_seconds() - self.cpu_at_start).max(0.0);
        let duration = SystemTime::now()
            .duration_since(self.started)
            .unwrap_or_default();
        drop(self.guard);
        let unresolved = unresolved?;
        let mut stacks = Vec::with_capacity(unresolved.data.len());
        for (frames, count) in unresolved.data.iter() {
            if *count <= 0 {
                continue;
            }
            let ips: Vec<usize> = frames.frames.iter().map(|f| f.ip() as usize).collect();
            let thread_name =
                String::from_utf8_lossy(&frames.thread_name[..frames.thread_name_length])
                    .into_owned();
            stacks.push(CpuStack {
                frames: resolve_sample(symbols, &ips),
                thread_name,
                thread_id: frames.thread_id,
                count: *count as u64,
            });
        }
        Ok(CpuProfile {
            stacks,
            frequency: self.frequency,
            started: self.started,
            duration,
            cpu_seconds,
            blocklist: self.blocklist,
        })
    }
}

/// Symbolizes one sample and cuts off the profiler's own frames: everything up to and including
/// `perf_signal_handler` plus the signal trampoline after it (as pprof-rs does), and any
/// leftover `backtrace::`/`pprof::` frames at the leaf.
pub fn resolve_sample(symbols: &mut Symbolizer, ips: &[usize]) -> Vec<FrameInfo> {
    let resolved: Vec<_> = ips.iter().map(|ip| symbols.resolve(*ip)).collect();
    let handler = resolved.iter().position(|frames| {
        frames
            .iter()
            .any(|f| f.function.ends_with("perf_signal_handler"))
    });
    let skip = match handler {
        Some(at) => at + 2,
        None => 0,
    };
    let mut out: Vec<FrameInfo> = resolved
        .iter()
        .skip(skip)
        .flat_map(|frames| frames.iter().cloned())
        .collect();
    let profiler_frames = out
        .iter()
        .take_while(|f| is_profiler_frame(&f.function))
        .count();
    out.drain(..profiler_frames);
    out
}

fn is_profiler_frame(function: &str) -> bool {
    function.starts_with("backtrace::")
        || function.starts_with("pprof::")
        || function.starts_with("<pprof::")
        || function == "__restore_rt"
}

/// True on glibc ≥ 2.35, whose `_dl_find_object` makes libgcc's unwinder signal-safe.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_has_safe_unwinder() -> bool {
    // SAFETY: returns a pointer to a static NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    let version = version.to_string_lossy();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (2, 35)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_has_safe_unwinder() -> bool {
    false
}
