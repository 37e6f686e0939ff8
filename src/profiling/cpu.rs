//! The CPU sampler: SIGPROF every 1/`frequency` s of process CPU time (`setitimer`
//! `ITIMER_PROF`, as pprof-rs and Go do), a signal handler that walks the interrupted thread's
//! stack with backtrace-rs over libgcc's unwinder (pprof-rs's default unwinder) into a small
//! table, and the session thread draining that table once a second into a map of distinct
//! stacks, then symbolizing them at the end (`CpuProfile`).
//!
//! Only the session thread (see `profiling::mod`) creates a `CpuCollector`, and only one exists
//! at a time (`ProfilingError::Busy` otherwise). Why not pprof-rs's `ProfilerGuard`, whose
//! handler this mirrors: its sample table is 68 MiB, allocated when it is first used and again
//! on every stop, so it stays for good after the first session (issue 11 item 6); and its
//! `build()` resolves a backtrace first, which loads the debug info on the starting thread.
//! Here the tables are sized for one second of samples (about 1 MiB at 99 Hz on two cores),
//! allocated at start and freed at stop; symbols are only resolved when the session ends.
//! pprof-rs still provides the protobuf types and the flamegraph renderer.
//!
//! The handler must be async-signal-safe: it never allocates, locks or blocks. It takes a
//! buffer with a `try_lock` (a sample that finds it taken is dropped and counted, as pprof-rs
//! drops one that finds its lock taken), and `stop` disarms the timer, unpublishes the tables
//! and waits until no handler is inside before freeing them.

use std::cell::UnsafeCell;
use std::collections::{HashMap, HashSet};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
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
/// Deepest stack kept per sample (pprof-rs's default `MAX_DEPTH`).
pub const MAX_DEPTH: usize = 128;
/// Frames of the handler itself (and the unwinder's entry) that may precede the interrupted one.
const HANDLER_FRAMES: usize = 16;
const PROBES: usize = 32;

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

/// What the sampler saw besides the stacks, for the report's metadata.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SamplerStats {
    /// Samples stored.
    pub taken: u64,
    /// Interrupted inside a blocklisted library and skipped (as pprof-rs does).
    pub blocklisted: u64,
    /// Lost: the buffer was being drained or written by another thread's handler.
    pub dropped_busy: u64,
    /// Lost: no free entry within the probe limit (more distinct stacks in a second than fit).
    pub dropped_full: u64,
    /// Bytes of the two buffers (allocated at start, freed at stop).
    pub table_bytes: u64,
}

/// One distinct stack of one thread, as recorded by the handler.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct StackKey {
    thread_id: u64,
    thread_name: [u8; 16],
    /// Interrupted PC first, then return addresses.
    frames: Box<[usize]>,
}

/// A running CPU session. Not `Send`: it lives and dies on the session thread.
pub struct CpuCollector {
    tables: *mut Tables,
    stacks: HashMap<StackKey, u64>,
    frequency: i32,
    started: SystemTime,
    cpu_at_start: f64,
    blocklist: Vec<String>,
    stats: SamplerStats,
}

impl CpuCollector {
    /// Allocates the tables, installs the SIGPROF handler and arms the process-wide timer.
    /// Cheap (well under a millisecond): nothing is symbolized until `finish`.
    pub fn start(frequency: i32) -> Result<CpuCollector, ProfilingError> {
        if frequency <= 0 {
            return Err(ProfilingError::Pprof(format!(
                "sampling frequency must be positive, got {frequency}"
            )));
        }
        if OWNED.swap(true, Ordering::AcqRel) {
            return Err(ProfilingError::Busy);
        }
        let blocklist: Vec<String> = if glibc_has_safe_unwinder() {
            BLOCKLIST.iter().map(|s| s.to_string()).collect()
        } else {
            BLOCKLIST_OLD_LIBC.iter().map(|s| s.to_string()).collect()
        };
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let tables = Box::into_raw(Box::new(Tables::new(
            table_capacity(frequency, cpus),
            blocked_ranges(&blocklist),
        )));
        let collector = CpuCollector {
            tables,
            stacks: HashMap::new(),
            frequency,
            started: SystemTime::now(),
            cpu_at_start: process::cpu_seconds(),
            blocklist,
            stats: SamplerStats::default(),
        };
        ACTIVE.store(tables, Ordering::SeqCst);
        if let Err(err) = install_handler() {
            // `collector` drops here: unpublishes and frees the tables, releases `OWNED`.
            drop(collector);
            return Err(ProfilingError::Pprof(format!(
                "cannot install the SIGPROF handler: {err}"
            )));
        }
        set_timer(frequency);
        Ok(collector)
    }

    /// Moves the samples of the last second out of the signal handler's table (called by the
    /// session thread once a second): the handler writes one buffer while this drains the other.
    pub fn drain(&mut self) {
        if self.tables.is_null() {
            return;
        }
        // SAFETY: the tables live until `stop`, which only this owner calls.
        let tables = unsafe { &*self.tables };
        let old = tables.current.load(Ordering::Relaxed) & 1;
        tables.current.store(old ^ 1, Ordering::Release);
        tables.buffers[old].drain_into(&mut self.stacks);
    }

    /// Disarms the timer, waits for any handler still running, drains and frees the tables.
    fn stop(&mut self) {
        if self.tables.is_null() {
            return;
        }
        set_timer(0);
        ACTIVE.store(std::ptr::null_mut(), Ordering::SeqCst);
        // A handler increments `IN_HANDLER` before it reads `ACTIVE` (both SeqCst): either it
        // saw null, or we see it here and wait for it to leave.
        while IN_HANDLER.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
        ignore_signal();
        // SAFETY: no handler can reach the tables any more; we own them again.
        let tables = unsafe { Box::from_raw(self.tables) };
        self.tables = std::ptr::null_mut();
        for buffer in &tables.buffers {
            buffer.drain_into(&mut self.stacks);
        }
        self.stats = SamplerStats {
            taken: tables.taken.load(Ordering::Relaxed),
            blocklisted: tables.blocklisted.load(Ordering::Relaxed),
            dropped_busy: tables.dropped_busy.load(Ordering::Relaxed),
            dropped_full: tables.dropped_full.load(Ordering::Relaxed),
            table_bytes: tables.bytes(),
        };
        drop(tables);
        OWNED.store(false, Ordering::Release);
    }

    /// Stops sampling, then symbolizes every distinct stack.
    pub fn finish(self, symbols: &mut Symbolizer) -> Result<CpuProfile, ProfilingError> {
        self.finish_with_stats(symbols).map(|(profile, _)| profile)
    }

    /// `finish`, plus what the sampler lost or skipped.
    pub fn finish_with_stats(
        mut self,
        symbols: &mut Symbolizer,
    ) -> Result<(CpuProfile, SamplerStats), ProfilingError> {
        let cpu_seconds = (process::cpu_seconds() - self.cpu_at_start).max(0.0);
        let duration = SystemTime::now()
            .duration_since(self.started)
            .unwrap_or_default();
        self.stop();
        let stacks = std::mem::take(&mut self.stacks);
        let mut out = Vec::with_capacity(stacks.len());
        for (key, count) in stacks {
            let name_len = key.thread_name.iter().position(|b| *b == 0).unwrap_or(16);
            out.push(CpuStack {
                frames: resolve_sample(symbols, &key.frames),
                thread_name: String::from_utf8_lossy(&key.thread_name[..name_len]).into_owned(),
                thread_id: key.thread_id,
                count,
            });
        }
        let profile = CpuProfile {
            stacks: out,
            frequency: self.frequency,
            started: self.started,
            duration,
            cpu_seconds,
            blocklist: std::mem::take(&mut self.blocklist),
        };
        Ok((profile, self.stats))
    }
}

impl Drop for CpuCollector {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Entries per buffer: room for twice the samples one second can bring (a sample per
/// 1/`frequency` s of CPU on each core), so probes stay short.
fn table_capacity(frequency: i32, cpus: usize) -> usize {
    let per_second = frequency.clamp(1, 1000) as usize * cpus.clamp(1, 64);
    (2 * per_second).next_power_of_two().clamp(256, 8192)
}

/// Set while a `CpuCollector` exists: one sampler per process (the timer is process-wide).
static OWNED: AtomicBool = AtomicBool::new(false);
/// The running session's tables, null otherwise. Read by the signal handler.
static ACTIVE: AtomicPtr<Tables> = AtomicPtr::new(std::ptr::null_mut());
/// Handlers currently running (any thread).
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

struct Tables {
    buffers: [Buffer; 2],
    /// The buffer handlers write into (0 or 1); the other is drained.
    current: AtomicUsize,
    /// Executable address ranges of blocklisted libraries, `(start, end)`.
    blocked: Vec<(usize, usize)>,
    taken: AtomicU64,
    blocklisted: AtomicU64,
    dropped_busy: AtomicU64,
    dropped_full: AtomicU64,
}

impl Tables {
    fn new(capacity: usize, blocked: Vec<(usize, usize)>) -> Tables {
        Tables {
            buffers: [Buffer::new(capacity), Buffer::new(capacity)],
            current: AtomicUsize::new(0),
            blocked,
            taken: AtomicU64::new(0),
            blocklisted: AtomicU64::new(0),
            dropped_busy: AtomicU64::new(0),
            dropped_full: AtomicU64::new(0),
        }
    }

    fn bytes(&self) -> u64 {
        (self.buffers.len() * self.buffers[0].entries.len() * std::mem::size_of::<Entry>()) as u64
    }

    /// Called by the handler with the interrupted context: async-signal-safe.
    fn record(&self, ucontext: *mut c_void) {
        let pc = interrupted_pc(ucontext);
        if pc != 0
            && self
                .blocked
                .iter()
                .any(|(start, end)| pc > *start && pc < *end)
        {
            self.blocklisted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut all = [0usize; MAX_DEPTH + HANDLER_FRAMES];
        let mut count = 0;
        // SAFETY: the unwinder only reads this thread's stack; nothing else in the process
        // unwinds concurrently on this thread (we interrupted it). pprof-rs does the same.
        unsafe {
            backtrace::trace_unsynchronized(|frame| {
                all[count] = frame.ip() as usize;
                count += 1;
                count < all.len()
            });
        }
        // Drop the handler's own frames: the stack proper starts at the interrupted PC.
        let first = all[..count.min(HANDLER_FRAMES)]
            .iter()
            .position(|ip| *ip == pc)
            .unwrap_or(0);
        let frames = &all[first..count.min(first + MAX_DEPTH)];
        let mut name = [0u8; 16];
        // SAFETY: PR_GET_NAME writes at most 16 bytes into the buffer; a plain syscall.
        unsafe {
            libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr());
        }
        // SAFETY: pthread_self only reads the thread pointer.
        let thread_id = unsafe { libc::pthread_self() } as u64;
        let buffer = &self.buffers[self.current.load(Ordering::Acquire) & 1];
        match buffer.add(thread_id, &name, frames) {
            Added::Yes => self.taken.fetch_add(1, Ordering::Relaxed),
            Added::Busy => self.dropped_busy.fetch_add(1, Ordering::Relaxed),
            Added::Full => self.dropped_full.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// One distinct (thread, stack) of the current second. All-zero is an empty entry.
#[repr(C)]
struct Entry {
    /// 0 while empty.
    hash: u64,
    count: u64,
    thread_id: u64,
    depth: u32,
    thread_name: [u8; 16],
    frames: [usize; MAX_DEPTH],
}

/// An open-addressing table behind a spin flag that the handler only ever `try`s.
struct Buffer {
    lock: AtomicBool,
    entries: Box<[UnsafeCell<Entry>]>,
}

// SAFETY: `entries` is only touched while `lock` is held.
unsafe impl Sync for Buffer {}

enum Added {
    Yes,
    Busy,
    Full,
}

impl Buffer {
    fn new(capacity: usize) -> Buffer {
        let layout = std::alloc::Layout::array::<UnsafeCell<Entry>>(capacity)
            .expect("a table of at most 8192 entries");
        // SAFETY: every field of `Entry` is an integer or an array of them, so all-zero is a
        // valid (empty) entry; the box owns exactly the allocation of `layout`. Zeroed memory
        // (fresh pages) also stays out of RSS until a sample lands in it.
        let entries = unsafe {
            let first = std::alloc::alloc_zeroed(layout).cast::<UnsafeCell<Entry>>();
            if first.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            Box::from_raw(std::ptr::slice_from_raw_parts_mut(first, capacity))
        };
        Buffer {
            lock: AtomicBool::new(false),
            entries,
        }
    }

    fn add(&self, thread_id: u64, name: &[u8; 16], frames: &[usize]) -> Added {
        if self
            .lock
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Added::Busy;
        }
        let hash = stack_hash(thread_id, frames);
        let mask = self.entries.len() - 1;
        let mut index = hash as usize & mask;
        let mut added = Added::Full;
        for _ in 0..PROBES {
            // SAFETY: we hold the lock.
            let entry = unsafe { &mut *self.entries[index].get() };
            if entry.hash == 0 {
                entry.hash = hash;
                entry.count = 1;
                entry.thread_id = thread_id;
                entry.thread_name = *name;
                entry.depth = frames.len() as u32;
                entry.frames[..frames.len()].copy_from_slice(frames);
                added = Added::Yes;
                break;
            }
            if entry.hash == hash
                && entry.thread_id == thread_id
                && entry.depth as usize == frames.len()
                && entry.frames[..frames.len()] == *frames
            {
                entry.count += 1;
                added = Added::Yes;
                break;
            }
            index = (index + 1) & mask;
        }
        self.lock.store(false, Ordering::Release);
        added
    }

    /// Moves every entry into `stacks` and empties the buffer (waits for a handler inside).
    fn drain_into(&self, stacks: &mut HashMap<StackKey, u64>) {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        for cell in self.entries.iter() {
            // SAFETY: we hold the lock.
            let entry = unsafe { &mut *cell.get() };
            if entry.hash == 0 {
                continue;
            }
            let key = StackKey {
                thread_id: entry.thread_id,
                thread_name: entry.thread_name,
                frames: entry.frames[..entry.depth as usize].into(),
            };
            *stacks.entry(key).or_insert(0) += entry.count;
            entry.hash = 0;
        }
        self.lock.store(false, Ordering::Release);
    }
}

fn stack_hash(thread_id: u64, frames: &[usize]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ thread_id;
    for frame in frames {
        hash = (hash ^ *frame as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash.max(1)
}

extern "C" fn on_sigprof(_signal: libc::c_int, _info: *mut libc::siginfo_t, ucontext: *mut c_void) {
    // SAFETY: errno is this thread's; saved and restored around everything we do.
    let errno = unsafe { *libc::__errno_location() };
    IN_HANDLER.fetch_add(1, Ordering::SeqCst);
    let tables = ACTIVE.load(Ordering::SeqCst);
    if !tables.is_null() {
        // SAFETY: `stop` frees the tables only after `ACTIVE` is null and no handler is inside.
        unsafe { (*tables).record(ucontext) };
    }
    IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// The program counter the signal interrupted, 0 when unknown.
fn interrupted_pc(ucontext: *mut c_void) -> usize {
    if ucontext.is_null() {
        return 0;
    }
    let context = ucontext.cast::<libc::ucontext_t>();
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    // SAFETY: the kernel passes a valid ucontext_t to an SA_SIGINFO handler.
    let pc = unsafe { (*context).uc_mcontext.gregs[libc::REG_RIP as usize] as usize };
    #[cfg(all(target_arch = "aarch64", target_os = "linux"))]
    // SAFETY: as above.
    let pc = unsafe { (*context).uc_mcontext.pc as usize };
    #[cfg(not(any(
        all(target_arch = "x86_64", target_os = "linux"),
        all(target_arch = "aarch64", target_os = "linux")
    )))]
    let pc = {
        let _ = context;
        0
    };
    pc
}

fn install_handler() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction with our handler, SA_SIGINFO (three-argument form) and
    // SA_RESTART (interrupted blocking calls restart where the kernel allows it).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigprof as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGPROF, &action, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A SIGPROF still pending after the timer is disarmed must not kill the process (the default
/// action), so the disposition becomes "ignore" rather than the default.
fn ignore_signal() {
    // SAFETY: setting a disposition has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGPROF, libc::SIG_IGN);
    }
}

/// Arms `ITIMER_PROF` at `frequency` Hz of process CPU time; 0 disarms it.
fn set_timer(frequency: i32) {
    let micros = if frequency > 0 {
        (1_000_000 / i64::from(frequency)).max(1)
    } else {
        0
    };
    let interval = libc::timeval {
        tv_sec: (micros / 1_000_000) as libc::time_t,
        tv_usec: (micros % 1_000_000) as libc::suseconds_t,
    };
    let timer = libc::itimerval {
        it_interval: interval,
        it_value: interval,
    };
    // SAFETY: setitimer reads the struct we own.
    unsafe {
        libc::setitimer(libc::ITIMER_PROF, &timer, std::ptr::null_mut());
    }
}

/// Executable mappings whose path contains one of `names` (`/proc/self/maps`, read once at
/// start: libraries loaded later are not covered, as with pprof-rs's blocklist).
fn blocked_ranges(names: &[String]) -> Vec<(usize, usize)> {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return Vec::new();
    };
    parse_blocked_ranges(&maps, names)
}

fn parse_blocked_ranges(maps: &str, names: &[String]) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            let path = fields.nth(3)?;
            if !perms.contains('x') || !names.iter().any(|name| path.contains(name.as_str())) {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some((
                usize::from_str_radix(start, 16).ok()?,
                usize::from_str_radix(end, 16).ok()?,
            ))
        })
        .collect()
}

/// Symbolizes one sample and cuts off the profiler's own frames should any be left (the handler
/// already starts the stack at the interrupted PC): everything up to and including the signal
/// handler plus the signal trampoline after it, and any leftover `backtrace::`/`pprof::`
/// frames at the leaf.
pub fn resolve_sample(symbols: &mut Symbolizer, ips: &[usize]) -> Vec<FrameInfo> {
    let resolved: Vec<_> = ips.iter().map(|ip| symbols.resolve(*ip)).collect();
    let handler = resolved.iter().position(|frames| {
        frames.iter().any(|f| {
            f.function.ends_with("perf_signal_handler") || f.function.ends_with("cpu::on_sigprof")
        })
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
        || function.starts_with("auth_service::profiling::cpu::")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiling::alloc::tests::{SAMPLER_TESTS, this_thread_allocations};

    #[test]
    fn blocklisted_ranges_come_from_executable_mappings() {
        let maps = "\
55d0c0000000-55d0c0100000 r-xp 00000000 08:01 11 /work/target/auth-service
7f0000000000-7f0000010000 r--p 00000000 08:01 12 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1
7f0000010000-7f0000020000 r-xp 00010000 08:01 12 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1
7fff00000000-7fff00002000 r-xp 00000000 00:00 0 [vdso]
7fff00002000-7fff00003000 rw-p 00000000 00:00 0
";
        let names: Vec<String> = BLOCKLIST.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            parse_blocked_ranges(maps, &names),
            [
                (0x7f00_0001_0000, 0x7f00_0002_0000),
                (0x7fff_0000_0000, 0x7fff_0000_2000)
            ]
        );
    }

    #[test]
    fn tables_are_sized_for_a_second_of_samples() {
        assert_eq!(table_capacity(99, 2), 512);
        assert_eq!(table_capacity(99, 1), 256);
        assert_eq!(table_capacity(1000, 64), 8192);
        // About 1 MiB for both buffers at the default rate on two cores.
        let bytes = 2 * table_capacity(99, 2) * std::mem::size_of::<Entry>();
        assert!(bytes < 1200 * 1024, "{bytes}");
    }

    /// The handler runs inside whatever it interrupts, malloc included: it must never allocate.
    /// A thread that spins without allocating, sampled dozens of times, allocates nothing.
    #[test]
    fn the_signal_handler_does_not_allocate_and_stop_frees_everything() {
        let _serial = SAMPLER_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let collector = start_when_free(250);
        assert!(matches!(CpuCollector::start(99), Err(ProfilingError::Busy)));
        // SAFETY: pthread_self only reads the thread pointer.
        let me = unsafe { libc::pthread_self() } as u64;
        let before = this_thread_allocations();
        crate::profiling::workload::spin_cpu(Duration::from_millis(400));
        let after = this_thread_allocations();
        let mut symbols = Symbolizer::new();
        let (profile, stats) = collector.finish_with_stats(&mut symbols).unwrap();
        let mine: u64 = profile
            .stacks
            .iter()
            .filter(|s| s.thread_id == me)
            .map(|s| s.count)
            .sum();
        assert!(
            mine >= 10,
            "only {mine} samples on the spinning thread: {stats:?}"
        );
        assert_eq!(after, before, "{mine} samples allocated");
        assert!(stats.taken >= mine && stats.table_bytes > 0, "{stats:?}");
        // The stacks start at the interrupted function, not in the handler.
        let spin = profile
            .stacks
            .iter()
            .filter(|s| s.thread_id == me)
            .max_by_key(|s| s.count)
            .unwrap();
        assert!(
            spin.frames[0].function.ends_with("workload::spin_cpu"),
            "{:?}",
            &spin.frames[..spin.frames.len().min(4)]
        );
        // The sampler is free again for the next session.
        drop(start_when_free(99));
    }

    /// Other tests of this binary (the debug handler's) run sessions too: wait for our turn.
    fn start_when_free(frequency: i32) -> CpuCollector {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match CpuCollector::start(frequency) {
                Ok(collector) => return collector,
                Err(ProfilingError::Busy) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => panic!("cannot start the sampler: {err}"),
            }
        }
    }
}
