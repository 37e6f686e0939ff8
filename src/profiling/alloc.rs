//! The process allocator: `CountingAlloc`, a `GlobalAlloc` over `System` that keeps heap
//! counters at all times and, only while a heap session runs, samples allocation sites.
//!
//! Owns every static the heap profiler needs: per-thread counter slots, the sampled-site table
//! and the set of live sampled blocks. Everything here runs *inside* malloc, so this module must
//! not: block (the site table is taken with `try_lock`; a busy table drops the sample and counts
//! it), allocate on its own behalf, panic, format text, resolve symbols, or use a lazily
//! initialised or `Drop` thread-local (registering a TLS destructor can allocate).
//!
//! Cost model (PROFILING.md §2.2, §2.6):
//! - Always: one `%fs`-relative thread-local access, a byte countdown and its compare, then
//!   plain adds (owner-only relaxed load + store, no read-modify-write) to this thread's own
//!   64-byte counter slot. No locks, no shared cache line. Counts are therefore exact whoever
//!   reads them: a block one thread allocates and another frees is in both sums at once.
//! - Every 64 KiB allocated (or freed) per thread, the slow path adds the thread's net bytes
//!   to a shared live total with one `fetch_add` plus `fetch_max` for the peak, so only the
//!   peak is approximate: within `PEAK_SLACK_PER_THREAD` per thread (stated in the report).
//! - While sampling: the countdown also stops at the next sample point (Poisson over bytes,
//!   on average once per 512 KiB); the slow path walks frame pointers (~0.2 µs) and records
//!   the site. Frees look the pointer up in a lock-free open-addressing set.
//!
//! The profiler's own memory (its sample tables, symbol data, report building) is not the
//! service's heap. A thread inside a `ProfilerScope` (the session thread, a debug request
//! building a heap profile) allocates *tagged* blocks: a 16-byte header in front of the block
//! whose second word is `tag_word(ptr)`, a value with bit 3 set. Tagged blocks are counted in
//! their own counters (`profiler_stats`), never sampled, and a free is charged to the bucket its
//! block was counted in, whichever thread frees it and whether or not it is in a scope: the
//! word just before a block is glibc's chunk size field, a multiple of 16 plus three flag bits,
//! so bit 3 of it is always clear and a service block can never carry the tag. Cost: one byte
//! of the thread's state tested on allocation; on free, once a scope was ever entered, one load
//! of the word glibc's `free` reads next anyway and one compare. Off glibc (no such guarantee)
//! scopes do nothing and the profiler's memory counts as the service's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use Ordering::{Acquire, Relaxed, Release};

/// Heap counters since process start (all zero when `CountingAlloc` is not installed): exact,
/// the peak excepted (within `PEAK_SLACK_PER_THREAD` per thread). `heap_stats` gives the service's (the profiler's own
/// allocations excluded), `profiler_stats` the profiler's. Within one value `live_bytes ==
/// bytes_allocated - bytes_freed` and `live_blocks() == allocations - frees`, so two values
/// taken at a session's start and stop also give its allocations, frees and growth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    pub live_bytes: u64,
    /// High-water mark of `live_bytes`, within `PEAK_SLACK_PER_THREAD` per thread.
    pub peak_bytes: u64,
    pub allocations: u64,
    pub frees: u64,
    pub bytes_allocated: u64,
    pub bytes_freed: u64,
}

impl HeapStats {
    pub fn live_blocks(&self) -> u64 {
        self.allocations.saturating_sub(self.frees)
    }
}

/// Default mean bytes between samples (Go's `MemProfileRate`, jemalloc's `lg_prof_sample=19`).
pub const DEFAULT_SAMPLE_RATE: u64 = 512 * 1024;
/// A thread adds its net bytes to the shared live total (and the peak is checked) every this
/// many bytes allocated or freed.
pub const PEAK_SLACK_PER_THREAD: u64 = 64 * 1024;
const PUBLISH_EVERY: i64 = PEAK_SLACK_PER_THREAD as i64;
/// Most frames kept per sampled stack.
pub const MAX_FRAMES: usize = 64;

const SLOTS: usize = 512;
const SITES: usize = 2048;
const LIVE_CAP: usize = 1 << 14;
const PROBE_LIMIT: usize = 64;
const EMPTY: usize = 0;
const TOMBSTONE: usize = 1;

pub struct CountingAlloc;

impl CountingAlloc {
    pub const fn new() -> CountingAlloc {
        CountingAlloc
    }
}

impl Default for CountingAlloc {
    fn default() -> Self {
        CountingAlloc::new()
    }
}

// SAFETY: every method forwards to `System` with the caller's layout and pointer unchanged;
// the bookkeeping around it never touches the returned memory.
unsafe impl GlobalAlloc for CountingAlloc {
    // Counted before the call, so the common case ends in a tail call to malloc and saves no
    // registers; an allocation that fails (the process then aborts) is counted as made.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if in_profiler_scope() {
            return unsafe { profiler_alloc(layout, false) };
        }
        if count_alloc(layout.size()) {
            return unsafe { alloc_on_slow_path(layout, false) };
        }
        // `System.alloc`'s own test, with the rare over-aligned case out of line so this
        // function needs no saved registers before its tail call.
        if layout.align() <= MALLOC_ALIGN && layout.align() <= layout.size() {
            // SAFETY: malloc guarantees MALLOC_ALIGN, which covers this layout.
            unsafe { libc::malloc(layout.size()).cast() }
        } else {
            unsafe { system_alloc_aligned(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if in_profiler_scope() {
            return unsafe { profiler_alloc(layout, true) };
        }
        if count_alloc(layout.size()) {
            return unsafe { alloc_on_slow_path(layout, true) };
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_profiler_block(ptr) {
            return unsafe { profiler_dealloc(ptr, layout) };
        }
        // Untrack before the memory goes back: afterwards another thread may get the same
        // address, sample it, and we would remove its entry instead of ours.
        untrack_if_sampling(ptr);
        count_free(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A block stays in the bucket it was counted in, whoever grows it.
        if is_profiler_block(ptr) {
            return unsafe { profiler_realloc(ptr, layout, new_size) };
        }
        // Counted as one free plus one allocation, so live blocks stay allocations − frees.
        untrack_if_sampling(ptr);
        let new_ptr = unsafe { System.realloc(ptr, layout, new_size) };
        if new_ptr.is_null() {
            return new_ptr;
        }
        count_free(layout.size());
        if count_alloc(new_size) {
            with_state(|state| alloc_slow(state, new_ptr, new_size));
        }
        new_ptr
    }
}

/// What glibc's malloc aligns every block to on x86-64 and aarch64 (std's `MIN_ALIGN`).
const MALLOC_ALIGN: usize = 16;

#[cold]
#[inline(never)]
unsafe fn system_alloc_aligned(layout: Layout) -> *mut u8 {
    unsafe { System.alloc(layout) }
}

/// The allocation whose size ran this thread's countdown out: allocate, then publish and
/// maybe sample it.
#[cold]
#[inline(never)]
unsafe fn alloc_on_slow_path(layout: Layout, zeroed: bool) -> *mut u8 {
    let ptr = if zeroed {
        unsafe { System.alloc_zeroed(layout) }
    } else {
        unsafe { System.alloc(layout) }
    };
    with_state(|state| alloc_slow(state, ptr, layout.size()));
    ptr
}

// ---------------------------------------------------------------------------------------------
// Counters.

#[repr(align(64))]
struct Slot {
    allocs: AtomicU64,
    frees: AtomicU64,
    bytes_allocated: AtomicU64,
    bytes_freed: AtomicU64,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            allocs: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            bytes_allocated: AtomicU64::new(0),
            bytes_freed: AtomicU64::new(0),
        }
    }
}

/// One slot per thread (the first `SLOTS` threads); later threads share the last slot with
/// real read-modify-write atomics. Slots outlive their threads so totals never drift.
static SLOT_TABLE: [Slot; SLOTS + 1] = [const { Slot::new() }; SLOTS + 1];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
/// Sum of the net bytes threads added at their slow paths: live bytes minus what each thread
/// did since (at most `PEAK_SLACK_PER_THREAD` each); only feeds the peak.
static PUBLISHED_LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

struct ThreadState {
    /// Slot index + 1; 0 until the thread's first slow path.
    slot: Cell<usize>,
    /// `&SLOT_TABLE[slot - 1]`, null until then: the fast paths write through it.
    slot_ptr: Cell<*const Slot>,
    /// The slot's `bytes_allocated - bytes_freed` when this thread last added to
    /// `PUBLISHED_LIVE`.
    live_mark: Cell<i64>,
    /// Bytes this thread may still allocate before the slow path; starts at 0 so the first
    /// allocation takes it (and gets the thread a slot). Positive only while the thread owns
    /// its slot: a thread on the shared overflow slot takes the slow path every time.
    alloc_left: Cell<i64>,
    /// What `alloc_left` was last set to: `alloc_budget - alloc_left` bytes since then.
    alloc_budget: Cell<i64>,
    /// Bytes this thread may still free before its slow path; the same rules.
    free_left: Cell<i64>,
    /// Bytes until the next sample, valid while `sample_epoch` is the current session's.
    sample_left: Cell<i64>,
    sample_epoch: Cell<u64>,
    /// xorshift state; 0 until the thread first samples.
    rng: Cell<u64>,
    /// Set while this thread is in the sampling slow path (re-entrancy guard).
    busy: Cell<bool>,
    /// Depth of `ProfilerScope`s entered on this thread; non-zero means allocations are tagged.
    profiler_scope: Cell<u32>,
    stack_low: Cell<usize>,
    stack_high: Cell<usize>,
}

impl ThreadState {
    const fn new() -> ThreadState {
        ThreadState {
            slot: Cell::new(0),
            slot_ptr: Cell::new(std::ptr::null()),
            live_mark: Cell::new(0),
            alloc_left: Cell::new(0),
            alloc_budget: Cell::new(0),
            free_left: Cell::new(0),
            sample_left: Cell::new(0),
            sample_epoch: Cell::new(0),
            rng: Cell::new(0),
            busy: Cell::new(false),
            profiler_scope: Cell::new(0),
            stack_low: Cell::new(0),
            stack_high: Cell::new(0),
        }
    }
}

thread_local! {
    // const-initialised and without `Drop`: access is a plain TLS offset, never allocates.
    static STATE: ThreadState = const { ThreadState::new() };
}

/// This thread's state. `LocalKey::with` with the whole counting body as its closure was not
/// inlined, so every allocation paid an indirect call to the key's accessor; a closure that
/// only returns the address is, and the access becomes one `%fs`-relative load.
#[inline(always)]
fn with_state<R>(body: impl FnOnce(&ThreadState) -> R) -> R {
    let state: *const ThreadState = STATE.with(|state| state as *const ThreadState);
    // SAFETY: `STATE` is const-initialised and has no destructor, so its storage is valid for
    // as long as this thread runs, and `ThreadState` is only ever touched by its own thread.
    body(unsafe { &*state })
}

#[inline(always)]
fn slot_of(state: &ThreadState) -> usize {
    let slot = state.slot.get();
    if slot != 0 {
        return slot - 1;
    }
    take_slot(state)
}

/// Slots whose thread has exited: bit `i % 64` of word `i / 64` set means slot `i` is free.
/// tiny_http starts a thread per connection, so without recycling a long-running server would
/// soon push every new thread onto the shared, contended overflow slot.
static RECYCLED: [AtomicU64; SLOTS / 64] = [const { AtomicU64::new(0) }; SLOTS / 64];

/// Gives a slot back when its thread exits.
struct SlotLease {
    index: Cell<usize>,
}

impl Drop for SlotLease {
    fn drop(&mut self) {
        let index = self.index.get();
        if index >= SLOTS {
            return;
        }
        // Destructors of other thread-locals may still allocate after this one: from now on
        // they count in the shared overflow slot, always on the slow path, so a recycled slot
        // never has two writers.
        let _ = STATE.try_with(|state| {
            publish_live(state, index, 0);
            state.slot.set(SLOTS + 1);
            state.slot_ptr.set(&SLOT_TABLE[SLOTS]);
            state.alloc_left.set(0);
            state.alloc_budget.set(0);
            state.free_left.set(0);
        });
        RECYCLED[index / 64].fetch_or(1 << (index % 64), Release);
    }
}

thread_local! {
    static SLOT_LEASE: SlotLease = const { SlotLease { index: Cell::new(usize::MAX) } };
}

#[cold]
fn take_slot(state: &ThreadState) -> usize {
    let index = fresh_or_recycled_slot();
    let slot = &SLOT_TABLE[index];
    // A recycled slot keeps its last owner's totals (already in `PUBLISHED_LIVE`).
    state.live_mark.set(net_bytes(slot));
    state.slot_ptr.set(slot);
    state.slot.set(index + 1);
    if index < SLOTS {
        // The first touch registers the lease's destructor, which allocates (glibc's
        // `__cxa_thread_atexit_impl` callocs); that nested call finds the slot already set.
        let _ = SLOT_LEASE.try_with(|lease| lease.index.set(index));
    }
    index
}

/// A recycled slot if there is one (so threads that come and go keep reusing a few slots),
/// else a fresh one, else the shared overflow slot.
fn fresh_or_recycled_slot() -> usize {
    for (word_index, word) in RECYCLED.iter().enumerate() {
        let mut bits = word.load(Acquire);
        while bits != 0 {
            let bit = bits.trailing_zeros();
            match word.compare_exchange_weak(bits, bits & !(1 << bit), Acquire, Acquire) {
                Ok(_) => return word_index * 64 + bit as usize,
                Err(now) => bits = now,
            }
        }
    }
    if NEXT_SLOT.load(Relaxed) < SLOTS {
        let index = NEXT_SLOT.fetch_add(1, Relaxed);
        if index < SLOTS {
            return index;
        }
    }
    SLOTS
}

/// Adds to a counter of a slot this thread owns: a plain load and store, no read-modify-write.
#[inline(always)]
fn add_own(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(by), Relaxed);
}

fn net_bytes(slot: &Slot) -> i64 {
    slot.bytes_allocated
        .load(Relaxed)
        .wrapping_sub(slot.bytes_freed.load(Relaxed)) as i64
}

/// Counts one allocation of `size` bytes; true when the countdown ran out and the caller must
/// take `alloc_slow` (which counts it) with the new block.
#[inline(always)]
fn count_alloc(size: usize) -> bool {
    with_state(|state| {
        let left = state.alloc_left.get() - size as i64;
        state.alloc_left.set(left);
        if left <= 0 {
            return true;
        }
        // SAFETY: a positive budget is only set by `alloc_slow` once the thread owns a slot,
        // and cleared before it gives the slot up; slots are statics.
        let slot = unsafe { &*state.slot_ptr.get() };
        add_own(&slot.allocs, 1);
        add_own(&slot.bytes_allocated, size as u64);
        false
    })
}

#[inline(always)]
fn count_free(size: usize) {
    with_state(|state| {
        let left = state.free_left.get() - size as i64;
        state.free_left.set(left);
        if left <= 0 {
            free_slow(state, size);
            return;
        }
        // SAFETY: as in `count_alloc`, for `free_left`.
        let slot = unsafe { &*state.slot_ptr.get() };
        add_own(&slot.frees, 1);
        add_own(&slot.bytes_freed, size as u64);
    });
}

#[inline(always)]
fn untrack_if_sampling(ptr: *mut u8) {
    if SAMPLING.load(Relaxed) && LIVE_SAMPLES.load(Relaxed) > 0 {
        untrack(ptr as usize);
    }
}

/// Bytes between slow paths: 0 (every call) for a thread on the shared overflow slot.
fn publish_every(state: &ThreadState) -> i64 {
    if state.slot.get() > SLOTS {
        0
    } else {
        PUBLISH_EVERY
    }
}

/// Counts one event into this thread's slot (taking one first if needed: that can allocate and
/// so re-enter, which is why the slot is looked up before anything is counted).
fn count_slow(state: &ThreadState, frees: bool, size: usize) -> usize {
    let index = slot_of(state);
    let slot = &SLOT_TABLE[index];
    let (count, bytes) = if frees {
        (&slot.frees, &slot.bytes_freed)
    } else {
        (&slot.allocs, &slot.bytes_allocated)
    };
    if index < SLOTS {
        add_own(count, 1);
        add_own(bytes, size as u64);
    } else {
        count.fetch_add(1, Relaxed);
        bytes.fetch_add(size as u64, Relaxed);
    }
    index
}

/// Adds this thread's net bytes since its last slow path to `PUBLISHED_LIVE` and checks the
/// peak. On the shared overflow slot that is the current event's `delta` alone.
fn publish_live(state: &ThreadState, index: usize, delta: i64) {
    let delta = if index < SLOTS {
        let net = net_bytes(&SLOT_TABLE[index]);
        let delta = net.wrapping_sub(state.live_mark.get());
        state.live_mark.set(net);
        delta
    } else {
        delta
    };
    if delta != 0 {
        let live = PUBLISHED_LIVE.fetch_add(delta, Relaxed) + delta;
        if live > 0 {
            PEAK.fetch_max(live as u64, Relaxed);
        }
    }
}

#[cold]
#[inline(never)]
fn free_slow(state: &ThreadState, size: usize) {
    let index = count_slow(state, true, size);
    publish_live(state, index, -(size as i64));
    state.free_left.set(publish_every(state));
}

/// The allocation countdown ran out: count the block, publish, and while a heap session runs,
/// decide whether this block is the one that crosses the next sample point.
#[cold]
#[inline(never)]
fn alloc_slow(state: &ThreadState, ptr: *mut u8, size: usize) {
    let since_budget = state.alloc_budget.get() - state.alloc_left.get();
    let index = count_slow(state, false, size);
    publish_live(state, index, size as i64);
    let mut budget = publish_every(state);
    if SAMPLING.load(Acquire) && !state.busy.get() {
        let rate = SAMPLE_RATE.load(Relaxed);
        let epoch = SAMPLE_EPOCH.load(Relaxed);
        let left = if state.sample_epoch.get() == epoch {
            state.sample_left.get() - since_budget
        } else {
            // This thread's first slow path in this session: a fresh gap (memoryless, so
            // starting it now is unbiased) that this block already counts against.
            state.sample_epoch.set(epoch);
            exponential_gap(next_random(state), rate) - size as i64
        };
        let left = if left <= 0 {
            if !ptr.is_null() {
                sample(state, ptr as usize, size);
            }
            exponential_gap(next_random(state), rate)
        } else {
            left
        };
        state.sample_left.set(left);
        // Stop again exactly where the next sample point falls (a thread on the shared slot
        // stops at every allocation anyway).
        if budget > 0 {
            budget = budget.min(left).max(1);
        }
    }
    state.alloc_budget.set(budget);
    state.alloc_left.set(budget);
}

/// The service's counters, summed over every thread's slot. Also folds the current live size
/// into the peak, so a reader never sees `peak < live`.
pub fn heap_stats() -> HeapStats {
    let mut stats = HeapStats::default();
    for slot in SLOT_TABLE.iter() {
        // Frees before allocations: a slot that counts between the two loads then looks as if
        // it had more live, never fewer, of its own thread's blocks.
        stats.frees += slot.frees.load(Relaxed);
        stats.allocations += slot.allocs.load(Relaxed);
        stats.bytes_freed += slot.bytes_freed.load(Relaxed);
        stats.bytes_allocated += slot.bytes_allocated.load(Relaxed);
    }
    stats.live_bytes = stats.bytes_allocated.saturating_sub(stats.bytes_freed);
    let peak = PEAK.fetch_max(stats.live_bytes, Relaxed);
    stats.peak_bytes = peak.max(stats.live_bytes);
    stats
}

/// How many counter slots were ever handed out (bounds the peak error).
pub fn counted_threads() -> usize {
    NEXT_SLOT.load(Relaxed).min(SLOTS + 1)
}

/// Slots handed out fresh so far (never more than `SLOTS`); recycled ones are not counted.
#[cfg(test)]
fn fresh_slots_used() -> usize {
    NEXT_SLOT.load(Relaxed).min(SLOTS)
}

// ---------------------------------------------------------------------------------------------
// Sampling.

static SAMPLING: AtomicBool = AtomicBool::new(false);
/// Bumped by every `start_sampling`, so each thread draws a fresh first gap per session.
static SAMPLE_EPOCH: AtomicU64 = AtomicU64::new(0);
static SAMPLE_RATE: AtomicU64 = AtomicU64::new(DEFAULT_SAMPLE_RATE);
static SAMPLES: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static LIVE_SAMPLES: AtomicI64 = AtomicI64::new(0);
static RNG_SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
/// Guards inserts into the site table and the live set (lookups and removals are lock-free).
static SITE_LOCK: AtomicBool = AtomicBool::new(false);

struct Site {
    /// 0 while the entry is free; otherwise the stack hash (never 0).
    hash: AtomicU64,
    depth: AtomicU32,
    frames: [AtomicUsize; MAX_FRAMES],
    alloc_count: AtomicU64,
    alloc_bytes: AtomicU64,
    free_count: AtomicU64,
    free_bytes: AtomicU64,
}

impl Site {
    const fn new() -> Site {
        Site {
            hash: AtomicU64::new(0),
            depth: AtomicU32::new(0),
            frames: [const { AtomicUsize::new(0) }; MAX_FRAMES],
            alloc_count: AtomicU64::new(0),
            alloc_bytes: AtomicU64::new(0),
            free_count: AtomicU64::new(0),
            free_bytes: AtomicU64::new(0),
        }
    }
}

struct LiveEntry {
    /// `EMPTY`, `TOMBSTONE` or the sampled block's address.
    ptr: AtomicUsize,
    /// `site << 40 | size`.
    meta: AtomicU64,
}

// Zero-initialised statics live in .bss: they cost RSS only for the pages a session touches.
static SITE_TABLE: [Site; SITES] = [const { Site::new() }; SITES];
static LIVE_SET: [LiveEntry; LIVE_CAP] = [const {
    LiveEntry {
        ptr: AtomicUsize::new(EMPTY),
        meta: AtomicU64::new(0),
    }
}; LIVE_CAP];

/// One allocation site as sampled: raw counts of the sampled allocations (not yet unbiased).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SampledSite {
    /// Return addresses, innermost first (the allocator's own frames included).
    pub frames: Vec<usize>,
    pub alloc_count: u64,
    pub alloc_bytes: u64,
    pub free_count: u64,
    pub free_bytes: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SamplingStats {
    pub active: bool,
    pub rate: u64,
    pub samples: u64,
    pub dropped: u64,
    pub live_samples: u64,
}

/// Clears the site table and starts sampling with mean `rate` bytes between samples.
pub fn start_sampling(rate: u64) {
    SAMPLING.store(false, Relaxed);
    lock_sites();
    // Only entries in use are written: the tables are zero-initialised statics (1.4 MB), and
    // a page never written stays out of RSS.
    for site in SITE_TABLE.iter() {
        if site.hash.load(Relaxed) != 0 {
            site.hash.store(0, Relaxed);
            site.depth.store(0, Relaxed);
            site.alloc_count.store(0, Relaxed);
            site.alloc_bytes.store(0, Relaxed);
            site.free_count.store(0, Relaxed);
            site.free_bytes.store(0, Relaxed);
        }
    }
    for entry in LIVE_SET.iter() {
        if entry.ptr.load(Relaxed) != EMPTY {
            entry.ptr.store(EMPTY, Relaxed);
        }
    }
    LIVE_SAMPLES.store(0, Relaxed);
    SAMPLES.store(0, Relaxed);
    DROPPED.store(0, Relaxed);
    SAMPLE_RATE.store(rate.max(1), Relaxed);
    SAMPLE_EPOCH.fetch_add(1, Relaxed);
    unlock_sites();
    SAMPLING.store(true, Release);
}

/// Stops sampling; the site table keeps its contents until the next `start_sampling`.
pub fn stop_sampling() {
    SAMPLING.store(false, Release);
}

pub fn sampling_stats() -> SamplingStats {
    SamplingStats {
        active: SAMPLING.load(Relaxed),
        rate: SAMPLE_RATE.load(Relaxed),
        samples: SAMPLES.load(Relaxed),
        dropped: DROPPED.load(Relaxed),
        live_samples: LIVE_SAMPLES.load(Relaxed).max(0) as u64,
    }
}

/// Copies the sampled sites out. Spins for the site lock: only report code calls this, never
/// the allocator, and allocations that sample meanwhile are dropped and counted, not blocked.
pub fn snapshot_sites() -> Vec<SampledSite> {
    let mut raw = Vec::new();
    lock_sites();
    for site in SITE_TABLE.iter() {
        if site.hash.load(Relaxed) == 0 {
            continue;
        }
        let depth = site.depth.load(Relaxed) as usize;
        let mut frames = [0usize; MAX_FRAMES];
        for (out, frame) in frames.iter_mut().zip(&site.frames).take(depth) {
            *out = frame.load(Relaxed);
        }
        raw.push((
            frames,
            depth,
            site.alloc_count.load(Relaxed),
            site.alloc_bytes.load(Relaxed),
            site.free_count.load(Relaxed),
            site.free_bytes.load(Relaxed),
        ));
    }
    unlock_sites();
    // Build the Vecs after unlocking so our own allocations cannot be dropped as samples.
    raw.into_iter()
        .filter(|entry| entry.2 > 0)
        .map(
            |(frames, depth, alloc_count, alloc_bytes, free_count, free_bytes)| SampledSite {
                frames: frames[..depth].to_vec(),
                alloc_count,
                alloc_bytes,
                free_count,
                free_bytes,
            },
        )
        .collect()
}

fn lock_sites() {
    while SITE_LOCK
        .compare_exchange_weak(false, true, Acquire, Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
    }
}

fn try_lock_sites() -> bool {
    SITE_LOCK
        .compare_exchange(false, true, Acquire, Relaxed)
        .is_ok()
}

fn unlock_sites() {
    SITE_LOCK.store(false, Release);
}

/// Exponential gap with the given mean: inter-arrival time of a Poisson process over bytes.
pub fn exponential_gap(uniform_bits: u64, mean: u64) -> i64 {
    // 53 random bits → u in (0, 1]; -ln(u) is Exp(1).
    let u = ((uniform_bits >> 11) + 1) as f64 / (1u64 << 53) as f64;
    (-u.ln() * mean as f64) as i64 + 1
}

fn next_random(state: &ThreadState) -> u64 {
    let mut x = state.rng.get();
    if x == 0 {
        // splitmix64 of a global counter mixed with the TLS address: distinct per thread.
        let mut z = RNG_SEED.fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed)
            ^ (state as *const ThreadState as u64);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x = (z ^ (z >> 31)) | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    state.rng.set(x);
    x
}

/// Records this block as a sample; allocations made meanwhile are counted, never sampled.
fn sample(state: &ThreadState, ptr: usize, size: usize) {
    state.busy.set(true);
    let mut frames = [0usize; MAX_FRAMES];
    let depth = capture_stack(state, &mut frames);
    record_sample(ptr, size, &frames[..depth]);
    state.busy.set(false);
}

fn record_sample(ptr: usize, size: usize, frames: &[usize]) {
    if !try_lock_sites() {
        DROPPED.fetch_add(1, Relaxed);
        return;
    }
    let recorded = match find_or_insert_site(frames) {
        Some(site_index) if insert_live(ptr, site_index, size) => {
            let site = &SITE_TABLE[site_index];
            site.alloc_count.fetch_add(1, Relaxed);
            site.alloc_bytes.fetch_add(size as u64, Relaxed);
            LIVE_SAMPLES.fetch_add(1, Relaxed);
            true
        }
        _ => false,
    };
    unlock_sites();
    if recorded {
        SAMPLES.fetch_add(1, Relaxed);
    } else {
        DROPPED.fetch_add(1, Relaxed);
    }
}

/// Caller holds the site lock.
fn find_or_insert_site(frames: &[usize]) -> Option<usize> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for frame in frames {
        hash = (hash ^ *frame as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let hash = hash.max(1);
    let start = (hash as usize) % SITES;
    for probe in 0..PROBE_LIMIT {
        let index = (start + probe) % SITES;
        let site = &SITE_TABLE[index];
        let existing = site.hash.load(Relaxed);
        if existing == 0 {
            for (slot, frame) in site.frames.iter().zip(frames) {
                slot.store(*frame, Relaxed);
            }
            site.depth.store(frames.len() as u32, Relaxed);
            site.hash.store(hash, Relaxed);
            return Some(index);
        }
        if existing == hash
            && site.depth.load(Relaxed) as usize == frames.len()
            && site
                .frames
                .iter()
                .zip(frames)
                .all(|(slot, frame)| slot.load(Relaxed) == *frame)
        {
            return Some(index);
        }
    }
    None
}

fn live_home(ptr: usize) -> usize {
    (ptr.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) % LIVE_CAP
}

/// Caller holds the site lock, so it is the only writer of `EMPTY`/`TOMBSTONE` slots.
fn insert_live(ptr: usize, site: usize, size: usize) -> bool {
    let home = live_home(ptr);
    for probe in 0..PROBE_LIMIT {
        let entry = &LIVE_SET[(home + probe) % LIVE_CAP];
        let current = entry.ptr.load(Relaxed);
        if current == EMPTY || current == TOMBSTONE {
            let size = (size as u64).min((1 << 40) - 1);
            entry.meta.store((site as u64) << 40 | size, Relaxed);
            // Release: a lookup that sees the pointer also sees its meta.
            entry.ptr.store(ptr, Release);
            return true;
        }
    }
    false
}

/// Lock-free: claims the entry with a CAS so concurrent frees cannot both count it.
#[inline(never)]
fn untrack(ptr: usize) {
    let home = live_home(ptr);
    for probe in 0..PROBE_LIMIT {
        let index = (home + probe) % LIVE_CAP;
        let entry = &LIVE_SET[index];
        let current = entry.ptr.load(Acquire);
        if current == EMPTY {
            return;
        }
        if current != ptr {
            continue;
        }
        let meta = entry.meta.load(Relaxed);
        if entry
            .ptr
            .compare_exchange(ptr, TOMBSTONE, Relaxed, Relaxed)
            .is_err()
        {
            return;
        }
        LIVE_SAMPLES.fetch_sub(1, Relaxed);
        let site = &SITE_TABLE[(meta >> 40) as usize % SITES];
        site.free_count.fetch_add(1, Relaxed);
        site.free_bytes.fetch_add(meta & ((1 << 40) - 1), Relaxed);
        clear_tombstones(index);
        return;
    }
}

/// Turns tombstones back into empty slots where no probe chain can pass through them (the next
/// slot is empty), so lookups keep stopping early. Only under the site lock (no insert can
/// race); if the lock is busy the tombstone simply stays.
fn clear_tombstones(index: usize) {
    if !try_lock_sites() {
        return;
    }
    let mut at = index;
    for _ in 0..PROBE_LIMIT {
        let next = &LIVE_SET[(at + 1) % LIVE_CAP];
        let entry = &LIVE_SET[at];
        if entry.ptr.load(Relaxed) != TOMBSTONE || next.ptr.load(Relaxed) != EMPTY {
            break;
        }
        entry.ptr.store(EMPTY, Relaxed);
        at = (at + LIVE_CAP - 1) % LIVE_CAP;
    }
    unlock_sites();
}

// ---------------------------------------------------------------------------------------------
// The profiler's own allocations.

/// Set once the first `ProfilerScope` is entered (and the malloc check passed); from then on
/// every free looks for the tag. Never cleared: tagged blocks may live on.
static TAGGING: AtomicBool = AtomicBool::new(false);
/// 0 not checked yet, 1 tagging works here, 2 it does not (not glibc's malloc).
static TAGGING_STATE: AtomicU32 = AtomicU32::new(0);
/// The profiler's counters: one shared slot with real atomics (it is off the request path).
static PROFILER_SLOT: Slot = Slot::new();
static PROFILER_LIVE: AtomicI64 = AtomicI64::new(0);
static PROFILER_PEAK: AtomicU64 = AtomicU64::new(0);
/// Header in front of a tagged block of alignment ≤ 16: `[offset to the malloc'd base, tag]`.
const TAG_HEADER: usize = 16;
/// Tagged blocks this big (alignment ≤ 16) get a mapping of their own, unmapped when freed:
/// through glibc they would stay in a session thread's arena, and freeing glibc's own mmapped
/// chunks raises its mmap and trim thresholds, after which every new session thread's arena
/// keeps over a megabyte resident (`malloc_trim` never trims a thread arena's top).
const PROFILER_MMAP_MIN: usize = 128 * 1024;
/// Set in the header's first word of a mapped block; the rest of the word is the mapping's
/// length (a malloc'd block's first word is its even offset instead).
const MAPPED: usize = 1;
/// Any value with bit 3 set works: glibc's size field never has it.
const TAG_MAGIC: usize = 0x7072_6f66_696c_6572;
const TAG_BIT: usize = 0b1000;

/// Marks the calling thread's allocations as the profiler's while it lives (nests). Enter it
/// around profiler work on threads we own: the session thread, a debug request symbolizing.
pub struct ProfilerScope {
    entered: bool,
    /// Scopes are per thread: not `Send`.
    _thread: std::marker::PhantomData<*const ()>,
}

impl ProfilerScope {
    pub fn enter() -> ProfilerScope {
        let entered = tagging_enabled();
        if entered {
            with_state(|state| state.profiler_scope.set(state.profiler_scope.get() + 1));
        }
        ProfilerScope {
            entered,
            _thread: std::marker::PhantomData,
        }
    }
}

impl Drop for ProfilerScope {
    fn drop(&mut self) {
        if self.entered {
            with_state(|state| state.profiler_scope.set(state.profiler_scope.get() - 1));
        }
    }
}

/// True when allocations in a `ProfilerScope` are kept apart from the service's (glibc's
/// malloc underneath); checked once, outside the allocator.
pub fn tagging_enabled() -> bool {
    match TAGGING_STATE.load(Acquire) {
        1 => true,
        2 => false,
        _ => {
            let works = malloc_keeps_bit_3_clear();
            if works {
                TAGGING.store(true, Release);
            }
            TAGGING_STATE.store(if works { 1 } else { 2 }, Release);
            works
        }
    }
}

/// The tagging relies on glibc's chunk header: the word before every block is the chunk size
/// (a multiple of 16) or'ed with three flag bits. Checked on blocks of each kind (small,
/// medium, mmapped, over-aligned) in case another malloc was preloaded.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn malloc_keeps_bit_3_clear() -> bool {
    let mut works = true;
    for size in [1usize, 24, 200, 5000, 300_000] {
        for align in [0usize, 64] {
            // SAFETY: plain malloc/posix_memalign/free of blocks we own; the header word read is
            // inside glibc's chunk header, mapped whenever the block is.
            unsafe {
                let mut block: *mut libc::c_void = std::ptr::null_mut();
                if align == 0 {
                    block = libc::malloc(size);
                } else if libc::posix_memalign(&mut block, align, size) != 0 {
                    block = std::ptr::null_mut();
                }
                if block.is_null() {
                    return false;
                }
                let word = std::ptr::read_volatile(block.cast::<usize>().sub(1));
                let usable = libc::malloc_usable_size(block);
                works &= word & TAG_BIT == 0 && (word & !0b111) >= usable;
                libc::free(block);
            }
        }
    }
    works
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn malloc_keeps_bit_3_clear() -> bool {
    false
}

#[inline(always)]
fn in_profiler_scope() -> bool {
    with_state(|state| state.profiler_scope.get() != 0)
}

#[inline(always)]
fn tag_word(ptr: *const u8) -> usize {
    (ptr as usize ^ TAG_MAGIC) | TAG_BIT
}

/// Whether `ptr` (a live block of this allocator) is a tagged block.
#[inline(always)]
fn is_profiler_block(ptr: *mut u8) -> bool {
    // SAFETY: every block starts 16-aligned and is preceded by a mapped word: glibc's size field
    // for a service block, our tag for a tagged one (`TAGGING` is only set on glibc).
    TAGGING.load(Relaxed)
        && unsafe { std::ptr::read_volatile(ptr.cast::<usize>().sub(1)) } == tag_word(ptr)
}

fn count_profiler_alloc(size: usize) {
    PROFILER_SLOT.allocs.fetch_add(1, Relaxed);
    PROFILER_SLOT
        .bytes_allocated
        .fetch_add(size as u64, Relaxed);
    let live = PROFILER_LIVE.fetch_add(size as i64, Relaxed) + size as i64;
    if live > 0 {
        PROFILER_PEAK.fetch_max(live as u64, Relaxed);
    }
}

fn count_profiler_free(size: usize) {
    PROFILER_SLOT.frees.fetch_add(1, Relaxed);
    PROFILER_SLOT.bytes_freed.fetch_add(size as u64, Relaxed);
    PROFILER_LIVE.fetch_sub(size as i64, Relaxed);
}

/// A tagged block: header room of the block's alignment (at least 16) in front, so the user
/// pointer keeps its alignment; the header's words are the offset back to the malloc'd base
/// and the tag.
#[cold]
#[inline(never)]
unsafe fn profiler_alloc(layout: Layout, zeroed: bool) -> *mut u8 {
    if layout.align() <= TAG_HEADER && layout.size() >= PROFILER_MMAP_MIN {
        // SAFETY: a fresh private mapping (zero-filled by the kernel) that only we know of.
        let user = unsafe { map_block(layout.size()) };
        if !user.is_null() {
            count_profiler_alloc(layout.size());
            return user;
        }
    }
    let room = layout.align().max(TAG_HEADER);
    let Some(total) = layout.size().checked_add(room) else {
        return std::ptr::null_mut();
    };
    // SAFETY: plain C allocation calls; the header is written inside the block just allocated.
    unsafe {
        let base: *mut u8 = if room == TAG_HEADER {
            if zeroed {
                libc::calloc(1, total).cast()
            } else {
                libc::malloc(total).cast()
            }
        } else {
            let mut block: *mut libc::c_void = std::ptr::null_mut();
            if libc::posix_memalign(&mut block, room, total) != 0 {
                return std::ptr::null_mut();
            }
            if zeroed {
                std::ptr::write_bytes(block.cast::<u8>(), 0, total);
            }
            block.cast()
        };
        if base.is_null() {
            return base;
        }
        let user = base.add(room);
        user.cast::<usize>().sub(2).write(room);
        user.cast::<usize>().sub(1).write(tag_word(user));
        count_profiler_alloc(layout.size());
        user
    }
}

/// A tagged block of its own pages: `[length | MAPPED, tag]`, then the block. Null on failure.
unsafe fn map_block(size: usize) -> *mut u8 {
    let Some(len) = size
        .checked_add(TAG_HEADER)
        .and_then(|n| n.checked_next_multiple_of(4096))
    else {
        return std::ptr::null_mut();
    };
    // SAFETY: an anonymous private mapping; the header is written inside it.
    unsafe {
        let base = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if base == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let user = base.cast::<u8>().add(TAG_HEADER);
        user.cast::<usize>().sub(2).write(len | MAPPED);
        user.cast::<usize>().sub(1).write(tag_word(user));
        user
    }
}

#[cold]
#[inline(never)]
unsafe fn profiler_dealloc(user: *mut u8, layout: Layout) {
    // SAFETY: `user` is a live tagged block, so its header is ours: a mapping's length, or the
    // offset back to the base malloc returned.
    unsafe {
        let first = user.cast::<usize>().sub(2).read();
        // The tag must not outlive the block: memory reused later must never look tagged.
        std::ptr::write_volatile(user.cast::<usize>().sub(1), 0);
        count_profiler_free(layout.size());
        if first & MAPPED != 0 {
            libc::munmap(user.sub(TAG_HEADER).cast(), first & !MAPPED);
        } else {
            libc::free(user.sub(first).cast());
        }
    }
}

#[cold]
#[inline(never)]
unsafe fn profiler_realloc(user: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    // SAFETY: `user` is a live tagged block; on success the old block is gone and its tag
    // cleared, on failure it is left as it was.
    unsafe {
        let first = user.cast::<usize>().sub(2).read();
        if first & MAPPED != 0 && new_size >= PROFILER_MMAP_MIN {
            // Grows or shrinks in place or moves its pages, never copies.
            let len = first & !MAPPED;
            let Some(new_len) = new_size
                .checked_add(TAG_HEADER)
                .and_then(|n| n.checked_next_multiple_of(4096))
            else {
                return std::ptr::null_mut();
            };
            let base = libc::mremap(
                user.sub(TAG_HEADER).cast(),
                len,
                new_len,
                libc::MREMAP_MAYMOVE,
            );
            if base == libc::MAP_FAILED {
                return std::ptr::null_mut();
            }
            let moved = base.cast::<u8>().add(TAG_HEADER);
            moved.cast::<usize>().sub(2).write(new_len | MAPPED);
            moved.cast::<usize>().sub(1).write(tag_word(moved));
            count_profiler_free(layout.size());
            count_profiler_alloc(new_size);
            return moved;
        }
        if first == TAG_HEADER && new_size < PROFILER_MMAP_MIN {
            let Some(total) = new_size.checked_add(TAG_HEADER) else {
                return std::ptr::null_mut();
            };
            let tag = user.cast::<usize>().sub(1);
            std::ptr::write_volatile(tag, 0);
            let base = libc::realloc(user.sub(TAG_HEADER).cast(), total).cast::<u8>();
            if base.is_null() {
                std::ptr::write_volatile(tag, tag_word(user));
                return base;
            }
            let moved = base.add(TAG_HEADER);
            moved.cast::<usize>().sub(1).write(tag_word(moved));
            count_profiler_free(layout.size());
            count_profiler_alloc(new_size);
            return moved;
        }
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let moved = profiler_alloc(new_layout, false);
        if !moved.is_null() {
            std::ptr::copy_nonoverlapping(user, moved, layout.size().min(new_size));
            profiler_dealloc(user, layout);
        }
        moved
    }
}

/// The profiler's own heap since process start (zero when tagging is not available).
pub fn profiler_stats() -> HeapStats {
    let slot = &PROFILER_SLOT;
    let frees = slot.frees.load(Relaxed);
    let bytes_freed = slot.bytes_freed.load(Relaxed);
    let allocations = slot.allocs.load(Relaxed);
    let bytes_allocated = slot.bytes_allocated.load(Relaxed);
    let live_bytes = bytes_allocated.saturating_sub(bytes_freed);
    HeapStats {
        live_bytes,
        peak_bytes: PROFILER_PEAK.load(Relaxed).max(live_bytes),
        allocations,
        frees,
        bytes_allocated,
        bytes_freed,
    }
}

/// Starts the profiler's high-water mark again from its current live heap (each session
/// reports its own peak).
pub fn reset_profiler_peak() {
    PROFILER_PEAK.store(PROFILER_LIVE.load(Relaxed).max(0) as u64, Relaxed);
}

// ---------------------------------------------------------------------------------------------
// Stack capture.

/// Walks the frame-pointer chain (the build sets `-C force-frame-pointers=yes`). Every frame
/// address is checked against this thread's stack bounds, so a broken chain (C code without
/// frame pointers) only ends the walk early and never reads outside the stack.
fn capture_stack(state: &ThreadState, out: &mut [usize; MAX_FRAMES]) -> usize {
    if state.stack_high.get() == 0 {
        let (low, high) = thread_stack_bounds();
        state.stack_low.set(low);
        // 1 marks "unknown" so we do not ask again; no frame can satisfy fp + 16 <= 1.
        state.stack_high.set(high.max(1));
    }
    let (low, high) = (state.stack_low.get(), state.stack_high.get());
    let mut fp = frame_pointer();
    let mut depth = 0;
    while depth < MAX_FRAMES {
        if fp < low || fp.saturating_add(16) > high || !fp.is_multiple_of(8) {
            break;
        }
        // SAFETY: fp is 8-aligned and [fp, fp + 16) lies inside this thread's mapped stack.
        let (next, ret) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        if ret == 0 {
            break;
        }
        out[depth] = ret;
        depth += 1;
        if next <= fp {
            break;
        }
        fp = next;
    }
    depth
}

#[inline(always)]
fn frame_pointer() -> usize {
    let fp: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads a register only.
    unsafe {
        std::arch::asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reads a register only.
    unsafe {
        std::arch::asm!("mov {}, x29", out(reg) fp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        fp = 0;
    }
    fp
}

/// The calling thread's stack as `[low, high)`, or `(0, 0)` when unknown. May allocate inside
/// glibc (affinity mask, /proc/self/maps for the main thread): callers hold the `busy` guard,
/// so those allocations are counted but never sampled.
#[cfg(target_os = "linux")]
fn thread_stack_bounds() -> (usize, usize) {
    // SAFETY: attr is initialised by pthread_getattr_np before use and destroyed after.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return (0, 0);
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        if ok {
            (addr as usize, addr as usize + size)
        } else {
            (0, 0)
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn thread_stack_bounds() -> (usize, usize) {
    (0, 0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Instant;

    /// The sampler state is process-global; tests that start sampling run one at a time.
    pub(crate) static SAMPLER_TESTS: Mutex<()> = Mutex::new(());

    /// Twice as many short-lived threads as there are slots, one after the other: exited
    /// threads give their slot back, so fresh slots are not used up (this test binary runs
    /// with `CountingAlloc` as its global allocator).
    #[test]
    fn exited_threads_give_their_counter_slot_back() {
        for round in 0..2 * SLOTS {
            std::thread::spawn(move || {
                let block = vec![round as u8; 4096];
                std::hint::black_box(&block);
            })
            .join()
            .unwrap();
        }
        assert!(
            fresh_slots_used() < SLOTS,
            "{} of {SLOTS} slots used fresh",
            fresh_slots_used()
        );
    }

    #[test]
    fn poisson_gaps_have_the_requested_mean() {
        let state = ThreadState::new();
        let draws = 200_000;
        let mut sum = 0f64;
        let mut sum_sq = 0f64;
        for _ in 0..draws {
            let gap = exponential_gap(next_random(&state), DEFAULT_SAMPLE_RATE) as f64;
            assert!(gap >= 1.0);
            sum += gap;
            sum_sq += gap * gap;
        }
        let mean = sum / draws as f64;
        let std_dev = (sum_sq / draws as f64 - mean * mean).sqrt();
        let expected = DEFAULT_SAMPLE_RATE as f64;
        // Standard error of the mean is rate/sqrt(n) ≈ 0.22%; allow 2%.
        assert!((mean / expected - 1.0).abs() < 0.02, "mean {mean}");
        // An exponential distribution has std dev == mean.
        assert!((std_dev / expected - 1.0).abs() < 0.05, "std dev {std_dev}");
    }

    #[inline(never)]
    fn allocate_blocks(allocator: &CountingAlloc, layout: Layout, count: usize) -> Vec<usize> {
        // SAFETY: non-zero layout; the caller frees every block with the same layout.
        (0..count)
            .map(|_| unsafe { allocator.alloc(layout) } as usize)
            .collect()
    }

    #[test]
    fn counters_and_sampling_through_the_allocator_api() {
        let _serial = SAMPLER_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let allocator = CountingAlloc::new();
        let before = heap_stats();
        start_sampling(64 * 1024);
        let layout = Layout::from_size_align(4096, 8).unwrap();
        let mut blocks = allocate_blocks(&allocator, layout, 4096);
        let during = heap_stats();
        for block in blocks.drain(..2048) {
            // SAFETY: allocated above with `layout`.
            unsafe { allocator.dealloc(block as *mut u8, layout) };
        }
        stop_sampling();
        let sites = snapshot_sites();
        let stats = sampling_stats();
        for block in blocks.drain(..) {
            // SAFETY: allocated above with `layout`.
            unsafe { allocator.dealloc(block as *mut u8, layout) };
        }
        let after = heap_stats();

        // `CountingAlloc` is also this test binary's global allocator (see the end of this
        // file), so other tests move the counters too: check ranges around our 16 MiB.
        let mib = 1 << 20;
        assert!(during.allocations - before.allocations >= 4096);
        let grew = during.live_bytes as i64 - before.live_bytes as i64;
        assert!((grew - 16 * mib).abs() < 4 * mib, "grew {grew}");
        assert!(during.peak_bytes >= during.live_bytes);
        assert!(after.frees - before.frees >= 4096);
        let net = after.live_bytes as i64 - before.live_bytes as i64;
        assert!(net.abs() < 4 * mib, "net {net}");

        // Our 16 MiB at a 64 KiB mean: ~256 samples expected from `allocate_blocks`.
        let mut symbols = crate::profiling::symbols::Symbolizer::new();
        let ours: Vec<&SampledSite> = sites
            .iter()
            .filter(|site| {
                site.frames.iter().any(|ip| {
                    symbols
                        .resolve(*ip)
                        .iter()
                        .any(|f| f.function.ends_with("alloc::tests::allocate_blocks"))
                })
            })
            .collect();
        let alloc: u64 = ours.iter().map(|s| s.alloc_count).sum();
        let freed: u64 = ours.iter().map(|s| s.free_count).sum();
        assert!((150..400).contains(&alloc), "samples {alloc}");
        assert!(stats.samples >= alloc);
        // About half the sampled blocks were freed while sampling.
        assert!(
            freed > alloc / 4 && freed < alloc * 3 / 4,
            "{freed} of {alloc}"
        );
        assert!(sites.iter().all(|s| !s.frames.is_empty()));
    }

    /// This thread's allocations so far, published and pending (the service's only).
    pub(crate) fn this_thread_allocations() -> u64 {
        with_state(|state| SLOT_TABLE[slot_of(state)].allocs.load(Relaxed))
    }

    const MIB: i64 = 1 << 20;

    fn live(stats: HeapStats) -> i64 {
        stats.live_bytes as i64
    }

    /// Issue 11 item 4: memory the profiler allocates is counted apart, and a free is charged
    /// to the bucket its block was counted in, whichever thread frees it.
    #[test]
    fn profiler_scope_allocations_are_counted_apart() {
        let _serial = SAMPLER_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        assert!(tagging_enabled(), "glibc's malloc should allow tagging");
        let allocator = CountingAlloc::new();
        let layout = Layout::from_size_align(4 << 20, 8).unwrap();
        let service_before = heap_stats();
        let profiler_before = profiler_stats();
        let tagged: Vec<usize> = {
            let _scope = ProfilerScope::enter();
            let _nested = ProfilerScope::enter();
            allocate_blocks(&allocator, layout, 16)
        };
        assert!(tagged.iter().all(|p| is_profiler_block(*p as *mut u8)));
        let service_during = heap_stats();
        let profiler_during = profiler_stats();
        // Other tests allocate meanwhile (this binary's allocator is `CountingAlloc`): ranges.
        let grew = live(profiler_during) - live(profiler_before);
        assert!((64 * MIB..72 * MIB).contains(&grew), "profiler grew {grew}");
        let service_grew = live(service_during) - live(service_before);
        assert!(service_grew.abs() < 8 * MIB, "service grew {service_grew}");

        // Freed by another thread, outside any scope: still the profiler's.
        std::thread::spawn(move || {
            for block in tagged {
                // SAFETY: allocated above with `layout`.
                unsafe { CountingAlloc::new().dealloc(block as *mut u8, layout) };
            }
        })
        .join()
        .unwrap();
        let back = live(profiler_stats()) - live(profiler_before);
        assert!(back.abs() < 8 * MIB, "profiler after free {back}");
        let service_after = live(heap_stats()) - live(service_before);
        assert!(
            service_after.abs() < 8 * MIB,
            "service after free {service_after}"
        );

        // And a service block freed inside a scope stays the service's.
        let service_blocks = allocate_blocks(&allocator, layout, 16);
        let with_blocks = heap_stats();
        {
            let _scope = ProfilerScope::enter();
            for block in service_blocks {
                // SAFETY: allocated above with `layout`.
                unsafe { allocator.dealloc(block as *mut u8, layout) };
            }
        }
        let dropped = live(with_blocks) - live(heap_stats());
        assert!(
            (56 * MIB..72 * MIB).contains(&dropped),
            "service freed {dropped}"
        );
        let profiler_now = live(profiler_stats()) - live(profiler_before);
        assert!(profiler_now.abs() < 8 * MIB, "profiler {profiler_now}");
    }

    #[test]
    fn tagged_blocks_keep_alignment_contents_and_their_tag_through_realloc() {
        let allocator = CountingAlloc::new();
        for align in [1usize, 8, 16, 64, 4096] {
            let layout = Layout::from_size_align(100, align).unwrap();
            let block = {
                let _scope = ProfilerScope::enter();
                // SAFETY: non-zero layout, freed below with the layout it has then.
                unsafe { allocator.alloc_zeroed(layout) }
            };
            assert!(!block.is_null());
            assert!(
                (block as usize).is_multiple_of(align.max(16)),
                "align {align}"
            );
            assert!(is_profiler_block(block));
            // SAFETY: 100 zeroed bytes we own.
            let bytes = unsafe { std::slice::from_raw_parts_mut(block, 100) };
            assert!(bytes.iter().all(|b| *b == 0));
            bytes.copy_from_slice(&[7u8; 100]);
            // Grown outside any scope: a profiler block stays one.
            // SAFETY: `block` was allocated with `layout`.
            let grown = unsafe { allocator.realloc(block, layout, 1 << 20) };
            assert!(!grown.is_null() && is_profiler_block(grown));
            assert!(
                (grown as usize).is_multiple_of(align.max(16)),
                "align {align}"
            );
            // SAFETY: the first 100 bytes were carried over.
            assert!(
                unsafe { std::slice::from_raw_parts(grown, 100) }
                    .iter()
                    .all(|b| *b == 7)
            );
            let grown_layout = Layout::from_size_align(1 << 20, align).unwrap();
            // SAFETY: `grown` has `grown_layout` now.
            unsafe { allocator.dealloc(grown, grown_layout) };
        }
        // Big ones have pages of their own: grown by remapping, shrunk back into malloc.
        let big = Layout::from_size_align(256 << 10, 8).unwrap();
        let block = {
            let _scope = ProfilerScope::enter();
            // SAFETY: non-zero layout, freed below with the layout it has then.
            unsafe { allocator.alloc_zeroed(big) }
        };
        assert!(is_profiler_block(block) && (block as usize).is_multiple_of(16));
        // SAFETY: we own the block at every step and free it with its current size.
        unsafe {
            assert_eq!(block.cast::<usize>().sub(2).read() & MAPPED, MAPPED);
            assert!(
                std::slice::from_raw_parts(block, big.size())
                    .iter()
                    .all(|b| *b == 0)
            );
            block.add(big.size() - 1).write(9);
            let grown = allocator.realloc(block, big, 4 << 20);
            assert!(is_profiler_block(grown) && grown.add(big.size() - 1).read() == 9);
            let shrunk = allocator.realloc(grown, Layout::from_size_align(4 << 20, 8).unwrap(), 64);
            assert!(is_profiler_block(shrunk));
            assert_eq!(shrunk.cast::<usize>().sub(2).read(), TAG_HEADER);
            allocator.dealloc(shrunk, Layout::from_size_align(64, 8).unwrap());
        }
        // Service blocks never look tagged, whatever their size or alignment.
        for (size, align) in [
            (1usize, 1usize),
            (24, 8),
            (4096, 16),
            (300_000, 64),
            (40, 4096),
        ] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero layout, freed right after.
            unsafe {
                let block = allocator.alloc(layout);
                assert!(!is_profiler_block(block), "{size} {align}");
                allocator.dealloc(block, layout);
            }
        }
    }

    /// Issue 11 item 10 ("Live heap 0 B", frees > allocations): a thread's counts used to wait
    /// in thread-local batches of up to 64 KiB, so a block one thread allocated and another
    /// freed could be in the frees and not yet in the allocations. Now another thread sees an
    /// allocation in the owner's slot at once, with no batch to flush.
    #[test]
    fn counts_are_visible_to_other_threads_at_once_issue_11() {
        let (sent, received) = std::sync::mpsc::channel();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let owner = std::thread::spawn(move || {
            let index = with_state(slot_of);
            let slot = &SLOT_TABLE[index];
            let before = (
                slot.allocs.load(Relaxed),
                slot.bytes_allocated.load(Relaxed),
            );
            let blocks: Vec<Vec<u8>> = (0..10).map(|_| vec![1u8; 1000]).collect();
            sent.send((index, before, blocks)).unwrap();
            // Stays alive, allocating nothing more, while the other thread looks.
            wait.recv().unwrap();
        });
        let (index, (allocs, bytes), blocks) = received.recv().unwrap();
        let slot = &SLOT_TABLE[index];
        let allocated = slot.allocs.load(Relaxed) - allocs;
        let grew = slot.bytes_allocated.load(Relaxed) - bytes;
        assert!(
            (11..=20).contains(&allocated),
            "{allocated} allocations seen"
        );
        assert!((10_000..64 * 1024).contains(&grew), "{grew} bytes seen");
        let before_free = heap_stats();
        drop(blocks);
        let after_free = heap_stats();
        assert!(after_free.frees >= before_free.frees + 11);
        // Within one value the counters always agree.
        for stats in [before_free, after_free] {
            assert_eq!(stats.live_bytes, stats.bytes_allocated - stats.bytes_freed);
            assert!(stats.allocations >= stats.frees && stats.peak_bytes >= stats.live_bytes);
        }
        release.send(()).unwrap();
        owner.join().unwrap();
    }

    /// Prints the wrapper's cost per alloc+free pair next to plain `System` (run with
    /// `--nocapture`); asserts only a loose bound so a loaded machine does not fail it.
    #[test]
    fn wrapper_cost_is_small() {
        let _serial = SAMPLER_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        // The state after the first profiling session: frees look for the profiler's tag.
        assert!(tagging_enabled());
        let allocator = CountingAlloc::new();
        let layout = Layout::from_size_align(256, 8).unwrap();
        let rounds = 2_000_000u32;
        let time = |f: &dyn Fn()| {
            let start = Instant::now();
            for _ in 0..rounds {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(rounds)
        };
        // SAFETY (both closures): allocate and immediately free with the same layout.
        let system = time(&|| unsafe {
            let p = System.alloc(layout);
            System.dealloc(std::hint::black_box(p), layout);
        });
        let counting = time(&|| unsafe {
            let p = allocator.alloc(layout);
            allocator.dealloc(std::hint::black_box(p), layout);
        });
        println!("alloc+free: System {system:.1} ns, CountingAlloc {counting:.1} ns");
        // Unoptimized builds do not inline the TLS access; only bound optimized builds.
        if !cfg!(debug_assertions) {
            assert!(counting < system * 5.0 + 50.0, "{counting} vs {system}");
        }
    }

    /// The library's own test binary runs on `CountingAlloc` too, so every unit test (CPU
    /// sessions, symbolization, report rendering, several threads) exercises the real
    /// allocator path: re-entrancy, TLS access inside malloc, frame-pointer walks.
    #[global_allocator]
    static TEST_ALLOCATOR: CountingAlloc = CountingAlloc::new();
}
