//! In-process CPU and heap profiling: the `Profiler`, single owner of every profiling session.
//!
//! Owns the session lifecycle. One session (CPU, heap or both) runs at a time; a second
//! `start` gets `ProfilingError::Busy`. Each session has its own thread, which is the only
//! place a `cpu::CpuCollector` (the SIGPROF sampler) ever lives: it arms the sampler, drains
//! its table and ticks the heap growth timeline once per second, and on stop (or when
//! `seconds` run out) takes the heap's last point, stops sampling, then symbolizes, renders
//! and writes the artifacts atomically. So report building and symbolization never run on a
//! request thread, and `stop()` only waits for that thread's result. Callers (the `/debug`
//! handler, the SLA monitor, serve's shutdown) all go through this type; nothing else may
//! touch the CPU sampler or the allocator's sampler.
//!
//! The session thread runs inside an `alloc::ProfilerScope`: what it allocates is the
//! profiler's own memory, counted apart from the service's heap. When a session ends its
//! memory goes back: the sampler's tables, the parsed debug info (`release_freed_memory`).
//!
//! Submodules: `session` (the session thread), `alloc` (the global allocator: exact counters,
//! sampled sites), `heap` (timeline, unbiasing), `cpu` (the SIGPROF sampler), `symbols`,
//! `cpu_report`/`heap_report` (Markdown), `pprof_out` (gzip protobuf), `flamegraph` (SVG), `artifacts` (names, atomic writes),
//! `workload` (self-check endpoints' hot function and planted allocation).

pub mod alloc;
pub mod artifacts;
pub mod attribution;
pub mod cpu;
pub mod cpu_report;
pub mod flamegraph;
pub mod heap;
pub mod heap_report;
pub mod pprof_out;
mod session;
pub mod symbols;
pub mod workload;

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

pub use artifacts::{ArtifactKind, Naming, ReportFile, check_writable};

use crate::process;
use crate::profiling::alloc::HeapStats;
use crate::profiling::cpu::{CpuCollector, CpuProfile, SamplerStats};
use crate::profiling::heap::{HeapEnd, HeapPoint, HeapProfile, Phase, Timeline};
use crate::profiling::pprof_out::HeapView;
use crate::profiling::session::Session;
pub use crate::profiling::session::{SessionEnd, SessionState};
use crate::profiling::symbols::Symbolizer;

/// Finished sessions remembered for `/debug/profiling/status`.
const HISTORY: usize = 50;
/// Longest `stop()` waits for the session thread to write its files.
const STOP_WAIT: Duration = Duration::from_secs(120);
/// Longest `seconds` a session may ask for (an hour).
pub const MAX_SESSION_SECONDS: u64 = 3600;

#[derive(Clone, Debug)]
pub struct ProfilerSettings {
    /// CPU sampling frequency (`PROFILING_CPU_HZ`, default 99).
    pub cpu_hz: i32,
    /// Default output directory of `/debug` sessions (`PROFILING_OUTPUT_DIR`).
    pub manual_dir: PathBuf,
    /// Mean bytes between heap samples (default 512 KiB, as Go and jemalloc).
    pub heap_sample_rate: u64,
}

impl Default for ProfilerSettings {
    fn default() -> Self {
        ProfilerSettings {
            cpu_hz: cpu::DEFAULT_HZ,
            manual_dir: PathBuf::from("profiles/current"),
            heap_sample_rate: alloc::DEFAULT_SAMPLE_RATE,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    Cpu,
    Heap,
    Both,
}

impl SessionKind {
    pub fn parse(text: &str) -> Option<SessionKind> {
        match text {
            "cpu" => Some(SessionKind::Cpu),
            "heap" => Some(SessionKind::Heap),
            "both" => Some(SessionKind::Both),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Cpu => "cpu",
            SessionKind::Heap => "heap",
            SessionKind::Both => "both",
        }
    }

    pub fn has_cpu(self) -> bool {
        matches!(self, SessionKind::Cpu | SessionKind::Both)
    }

    pub fn has_heap(self) -> bool {
        matches!(self, SessionKind::Heap | SessionKind::Both)
    }
}

/// Why an SLA session was started; written into the reports' metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct SlaContext {
    pub route: String,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub threshold_p95_ms: f64,
    pub threshold_p99_ms: f64,
    pub window_samples: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Trigger {
    /// `/debug/profiling/start`.
    Manual,
    /// serve's `--cpu-prof*`/`--heap-prof*` flags: written when the process exits.
    Exit,
    /// `/debug/pprof/profile`: bytes returned to the caller.
    Pprof,
    /// The SLA monitor.
    Sla(SlaContext),
}

impl Trigger {
    pub fn kind(&self) -> TriggerKind {
        match self {
            Trigger::Manual => TriggerKind::Manual,
            Trigger::Exit => TriggerKind::Exit,
            Trigger::Pprof => TriggerKind::Pprof,
            Trigger::Sla(_) => TriggerKind::Sla,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TriggerKind {
    Manual,
    Exit,
    Pprof,
    Sla,
}

impl TriggerKind {
    pub const ALL: [TriggerKind; 4] = [
        TriggerKind::Manual,
        TriggerKind::Exit,
        TriggerKind::Pprof,
        TriggerKind::Sla,
    ];

    /// The metadata value and metric label: `manual`, `sigterm`, `pprof`, `sla`.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Manual => "manual",
            TriggerKind::Exit => "sigterm",
            TriggerKind::Pprof => "pprof",
            TriggerKind::Sla => "sla",
        }
    }

    fn index(self) -> usize {
        match self {
            TriggerKind::Manual => 0,
            TriggerKind::Exit => 1,
            TriggerKind::Pprof => 2,
            TriggerKind::Sla => 3,
        }
    }
}

/// Which files a session writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Formats {
    pub cpu_md: bool,
    pub cpu_pprof: bool,
    pub cpu_svg: bool,
    pub heap_md: bool,
    pub heap_pprof: bool,
}

impl Formats {
    pub fn all() -> Formats {
        Formats {
            cpu_md: true,
            cpu_pprof: true,
            cpu_svg: true,
            heap_md: true,
            heap_pprof: true,
        }
    }

    pub fn none() -> Formats {
        Formats::default()
    }

    fn wants(self, kind: ArtifactKind) -> bool {
        match kind {
            ArtifactKind::CpuMarkdown => self.cpu_md,
            ArtifactKind::CpuPprof => self.cpu_pprof,
            ArtifactKind::CpuSvg => self.cpu_svg,
            ArtifactKind::HeapMarkdown => self.heap_md,
            ArtifactKind::HeapPprof => self.heap_pprof,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutputSpec {
    pub dir: PathBuf,
    pub naming: Naming,
    pub formats: Formats,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SessionRequest {
    pub kind: SessionKind,
    pub trigger: Trigger,
    pub output: OutputSpec,
    /// Auto-stop after this many seconds (artifacts are written as on `stop`).
    pub seconds: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SessionInfo {
    /// `profile-<epoch ms>-<hex>`.
    pub id: String,
    pub kind: SessionKind,
    pub trigger: TriggerKind,
    pub started: SystemTime,
    /// ISO-8601 UTC of `started`.
    pub started_at: String,
    pub seconds: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Artifact {
    pub kind: ArtifactKind,
    pub path: PathBuf,
}

#[derive(Clone, Debug)]
pub struct FinishedSession {
    pub info: SessionInfo,
    pub ending: SessionEnd,
    pub ended_at: String,
    pub duration: Duration,
    /// Files written, in the order CPU md, pb.gz, svg, heap md, pb.gz.
    pub artifacts: Vec<Artifact>,
    pub cpu_samples: Option<u64>,
    pub heap_samples: Option<u64>,
    /// The gzipped CPU pprof, kept in memory for `Trigger::Pprof` sessions only.
    pub cpu_pprof_gz: Option<Arc<Vec<u8>>>,
    /// Artifacts that could not be built or written (also logged).
    pub errors: Vec<String>,
}

impl FinishedSession {
    pub fn state(&self) -> SessionState {
        match self.ending {
            _ if !self.errors.is_empty() => SessionState::Failed,
            SessionEnd::Completed => SessionState::Completed,
            SessionEnd::Stopped => SessionState::Stopped,
        }
    }

    pub fn artifact_paths(&self) -> Vec<PathBuf> {
        self.artifacts.iter().map(|a| a.path.clone()).collect()
    }
}

/// What `Profiler::cleanup` removed.
#[derive(Debug)]
pub struct Cleaned {
    pub reports: usize,
    pub sessions: usize,
    /// The session cleanup stopped, if one was running.
    pub stopped: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ProfilerStatus {
    pub active: Option<SessionInfo>,
    /// Finished sessions, oldest first (at most 50).
    pub sessions: Vec<FinishedSession>,
    pub last: Option<FinishedSession>,
}

/// An artifact listed by `/debug/profiling/reports`.
#[derive(Clone, Debug)]
pub struct ReportEntry {
    pub session_id: Option<String>,
    pub file: ReportFile,
}

#[derive(Clone, Debug)]
pub enum ProfilingError {
    Busy,
    InvalidRequest(String),
    Io {
        path: PathBuf,
        source: Arc<io::Error>,
    },
    Pprof(String),
    Flamegraph(String),
    Spawn(Arc<io::Error>),
    SessionFailed(String),
    Timeout,
}

impl fmt::Display for ProfilingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProfilingError::Busy => f.write_str("a profiling session is already running"),
            ProfilingError::InvalidRequest(why) => write!(f, "invalid profiling request: {why}"),
            ProfilingError::Io { path, .. } => write!(f, "cannot write {}", path.display()),
            ProfilingError::Pprof(why) => write!(f, "cpu profiler failed: {why}"),
            ProfilingError::Flamegraph(why) => write!(f, "flamegraph rendering failed: {why}"),
            ProfilingError::Spawn(_) => f.write_str("cannot start the profiling thread"),
            ProfilingError::SessionFailed(why) => write!(f, "profiling session failed: {why}"),
            ProfilingError::Timeout => {
                f.write_str("timed out waiting for the profiling session to finish")
            }
        }
    }
}

impl StdError for ProfilingError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ProfilingError::Io { source, .. } | ProfilingError::Spawn(source) => {
                Some(source.as_ref())
            }
            _ => None,
        }
    }
}

/// The process's profiler. Cheap to share (`Arc<Profiler>`); all methods take `&self`.
pub struct Profiler {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ProfilerSettings,
    state: Mutex<State>,
    /// Shared by sessions and debug requests; the DWARF cache is loaded once per process.
    symbols: Mutex<Symbolizer>,
    totals: [AtomicU64; 4],
    retained: workload::Retained,
}

#[derive(Default)]
struct State {
    active: Option<ActiveSession>,
    history: VecDeque<FinishedSession>,
    /// Start of the heap session whose sites the allocator currently holds.
    heap_sites_from: Option<HeapOrigin>,
}

#[derive(Clone)]
struct HeapOrigin {
    started: SystemTime,
    stats_at_start: HeapStats,
    /// Set once the session stopped: its counters at stop.
    end: Option<HeapEnd>,
    timeline: Vec<HeapPoint>,
    /// A stopped session's sites no longer change (frees are only tracked while sampling), so
    /// its pprof is encoded once, `[in-use, allocated]`: a scraper polling `/debug/pprof/heap`
    /// then never makes the profiler load the debug info again.
    pprof: Option<[Arc<Vec<u8>>; 2]>,
}

struct ActiveSession {
    info: SessionInfo,
    commands: Sender<Command>,
    completion: Arc<Completion>,
}

enum Command {
    Stop { extra: Vec<(String, String)> },
}

/// The session thread's result, waited for by every `stop()` caller.
#[derive(Default)]
struct Completion {
    result: Mutex<Option<Result<FinishedSession, ProfilingError>>>,
    ready: Condvar,
}

impl Completion {
    fn set(&self, result: Result<FinishedSession, ProfilingError>) {
        *lock(&self.result) = Some(result);
        self.ready.notify_all();
    }

    /// Waits for the session's reports, which can take seconds: a request worker hands its
    /// turn at the queue to a spare one first (`blocking::section`).
    fn wait(&self, limit: Duration) -> Result<FinishedSession, ProfilingError> {
        crate::blocking::section(|| self.wait_for(limit))
    }

    fn wait_for(&self, limit: Duration) -> Result<FinishedSession, ProfilingError> {
        let deadline = Instant::now() + limit;
        let mut result = lock(&self.result);
        loop {
            if let Some(done) = result.as_ref() {
                return done.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ProfilingError::Timeout);
            }
            result = match self.ready.wait_timeout(result, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// A poisoned lock only means another thread panicked mid-update; our state stays usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Profiler {
    pub fn new(settings: ProfilerSettings) -> Arc<Profiler> {
        Arc::new(Profiler {
            inner: Arc::new(Inner {
                settings,
                state: Mutex::new(State::default()),
                symbols: Mutex::new(Symbolizer::new()),
                totals: Default::default(),
                retained: workload::Retained::default(),
            }),
        })
    }

    pub fn settings(&self) -> &ProfilerSettings {
        &self.inner.settings
    }

    /// Starts a session; returns once sampling is armed. `Busy` while another session runs.
    pub fn start(&self, request: SessionRequest) -> Result<SessionInfo, ProfilingError> {
        self.start_session(request).map(|(info, _)| info)
    }

    fn start_session(
        &self,
        request: SessionRequest,
    ) -> Result<(SessionInfo, Arc<Completion>), ProfilingError> {
        if let Some(seconds) = request.seconds
            && !(1..=MAX_SESSION_SECONDS).contains(&seconds)
        {
            return Err(ProfilingError::InvalidRequest(format!(
                "seconds must be 1..={MAX_SESSION_SECONDS}"
            )));
        }
        let mut state = lock(&self.inner.state);
        if state.active.is_some() {
            return Err(ProfilingError::Busy);
        }
        let started = SystemTime::now();
        let since_epoch = started
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let mut random = [0u8; 4];
        crate::ids::fill_random(&mut random);
        let info = SessionInfo {
            id: format!(
                "profile-{}-{:08x}",
                since_epoch.as_millis(),
                u32::from_le_bytes(random)
            ),
            kind: request.kind,
            trigger: request.trigger.kind(),
            started,
            started_at: crate::timefmt::iso8601_millis(
                since_epoch.as_secs() as i64,
                since_epoch.subsec_millis(),
            ),
            seconds: request.seconds,
        };
        let (commands, commands_rx) = crossbeam_channel::bounded(4);
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let completion = Arc::new(Completion::default());
        let session = Session {
            inner: Arc::clone(&self.inner),
            request,
            info: info.clone(),
            completion: Arc::clone(&completion),
        };
        thread::Builder::new()
            .name("profiler-session".into())
            .spawn(move || session.run(commands_rx, ready_tx))
            .map_err(|err| ProfilingError::Spawn(Arc::new(err)))?;
        // Marked active before sampling is armed so a concurrent start is refused.
        state.active = Some(ActiveSession {
            info: info.clone(),
            commands,
            completion: Arc::clone(&completion),
        });
        drop(state);
        // Arming takes about a millisecond (nothing is symbolized until the end); a worker's
        // turn is handed over meanwhile all the same.
        let armed = crate::blocking::section(|| ready_rx.recv()).unwrap_or_else(|_| {
            Err(ProfilingError::SessionFailed(
                "session thread exited early".into(),
            ))
        });
        match armed {
            Ok(()) => {
                self.inner.totals[info.trigger.index()].fetch_add(1, Ordering::Relaxed);
                log::info!(
                    "profiling session {} started (type {}, trigger {})",
                    info.id,
                    info.kind.as_str(),
                    info.trigger.as_str()
                );
                Ok((info, completion))
            }
            Err(err) => {
                let mut state = lock(&self.inner.state);
                if state.active.as_ref().map(|a| &a.info.id) == Some(&info.id) {
                    state.active = None;
                }
                Err(err)
            }
        }
    }

    /// Stops the running session, waits for its artifacts and returns them. `Ok(None)` when
    /// nothing runs.
    pub fn stop(&self) -> Result<Option<FinishedSession>, ProfilingError> {
        self.stop_with_metadata(Vec::new())
    }

    /// `stop`, with `extra` rows appended to the reports' metadata tables.
    pub fn stop_with_metadata(
        &self,
        extra: Vec<(String, String)>,
    ) -> Result<Option<FinishedSession>, ProfilingError> {
        let (commands, completion) = {
            let state = lock(&self.inner.state);
            match &state.active {
                Some(active) => (active.commands.clone(), Arc::clone(&active.completion)),
                None => return Ok(None),
            }
        };
        // The session may be finishing on its own (auto-stop) and no longer listening; then
        // its completion still arrives and we return that.
        let _ = commands.try_send(Command::Stop { extra });
        completion.wait(STOP_WAIT).map(Some)
    }

    pub fn is_active(&self) -> bool {
        lock(&self.inner.state).active.is_some()
    }

    pub fn active_session(&self) -> Option<SessionInfo> {
        lock(&self.inner.state)
            .active
            .as_ref()
            .map(|a| a.info.clone())
    }

    pub fn status(&self) -> ProfilerStatus {
        let state = lock(&self.inner.state);
        ProfilerStatus {
            active: state.active.as_ref().map(|a| a.info.clone()),
            sessions: state.history.iter().cloned().collect(),
            last: state.history.back().cloned(),
        }
    }

    /// Sessions started successfully, by trigger (`profiling_sessions_total{trigger}`).
    pub fn sessions_total(&self, trigger: TriggerKind) -> u64 {
        self.inner.totals[trigger.index()].load(Ordering::Relaxed)
    }

    /// Runs a CPU session of `seconds` without writing files and returns the gzipped pprof
    /// (`/debug/pprof/profile`). Blocks the caller for the duration.
    pub fn cpu_pprof_for(&self, seconds: u64) -> Result<Vec<u8>, ProfilingError> {
        let request = SessionRequest {
            kind: SessionKind::Cpu,
            trigger: Trigger::Pprof,
            output: OutputSpec {
                dir: self.inner.settings.manual_dir.clone(),
                naming: Naming::Standard,
                formats: Formats::none(),
            },
            seconds: Some(seconds),
        };
        let (_, completion) = self.start_session(request)?;
        let finished = completion.wait(Duration::from_secs(seconds) + STOP_WAIT)?;
        match finished.cpu_pprof_gz {
            Some(bytes) => Ok(bytes.as_ref().clone()),
            None => Err(ProfilingError::SessionFailed(
                finished
                    .errors
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "no profile was produced".into()),
            )),
        }
    }

    /// The sampled heap as gzipped pprof: the running heap session, else the last one, else an
    /// empty sample set carrying the exact counters (`/debug/pprof/heap`, `/allocs`). Built in
    /// a `ProfilerScope`: its symbolization and the bytes are the profiler's memory.
    pub fn heap_pprof(&self, view: HeapView) -> Vec<u8> {
        let _scope = alloc::ProfilerScope::enter();
        let encoded = lock(&self.inner.state)
            .heap_sites_from
            .as_ref()
            .and_then(|origin| origin.pprof.clone());
        if let Some([in_use, allocated]) = encoded {
            let bytes = match view {
                HeapView::InUse => in_use,
                HeapView::Allocated => allocated,
            };
            return bytes.as_ref().clone();
        }
        let profile = self.heap_snapshot();
        pprof_out::heap_pprof_gz(&profile, view)
    }

    /// See `heap_pprof`.
    pub fn heap_snapshot(&self) -> HeapProfile {
        let _scope = alloc::ProfilerScope::enter();
        let origin = lock(&self.inner.state).heap_sites_from.clone();
        match origin {
            Some(origin) => {
                let mut symbols = lock(&self.inner.symbols);
                let profile = heap::snapshot(
                    origin.started,
                    origin.stats_at_start,
                    origin.end,
                    origin.timeline,
                    &mut symbols,
                );
                // Symbols resolved for a debug request are not kept: the session's are not.
                if !self.is_active() {
                    *symbols = Symbolizer::new();
                    drop(symbols);
                    release_freed_memory();
                }
                profile
            }
            None => {
                let stats = alloc::heap_stats();
                HeapProfile {
                    started: SystemTime::now(),
                    duration: Duration::ZERO,
                    stats,
                    stats_at_start: stats,
                    profiler: alloc::profiler_stats(),
                    rss_bytes: process::resident_bytes(),
                    peak_rss_bytes: process::peak_resident_bytes(),
                    rate: self.inner.settings.heap_sample_rate,
                    samples: 0,
                    dropped: 0,
                    threads: alloc::counted_threads(),
                    timeline: Vec::new(),
                    sites: Vec::new(),
                }
            }
        }
    }

    /// Artifacts on disk: the manual directory plus every remembered session's files.
    pub fn reports(&self) -> Vec<ReportEntry> {
        let sessions: Vec<(String, Vec<Artifact>)> = lock(&self.inner.state)
            .history
            .iter()
            .map(|s| (s.info.id.clone(), s.artifacts.clone()))
            .collect();
        let session_of = |path: &Path| {
            sessions
                .iter()
                .find(|(_, artifacts)| artifacts.iter().any(|a| a.path == path))
                .map(|(id, _)| id.clone())
        };
        let mut entries: Vec<ReportEntry> = artifacts::list_dir(&self.inner.settings.manual_dir)
            .into_iter()
            .map(|file| ReportEntry {
                session_id: session_of(&file.path),
                file,
            })
            .collect();
        for (id, artifacts) in &sessions {
            for artifact in artifacts {
                if entries.iter().any(|e| e.file.path == artifact.path) {
                    continue;
                }
                let Ok(meta) = std::fs::metadata(&artifact.path) else {
                    continue;
                };
                entries.push(ReportEntry {
                    session_id: Some(id.clone()),
                    file: ReportFile {
                        path: artifact.path.clone(),
                        file_name: artifact
                            .path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        kind: if artifact.kind.is_cpu() {
                            "cpu"
                        } else {
                            "heap"
                        },
                        size: meta.len(),
                        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    },
                });
            }
        }
        entries.sort_by_key(|entry| std::cmp::Reverse(entry.file.modified));
        entries
    }

    /// Deletes every listed report and forgets finished sessions (the active one stays).
    /// Returns (reports deleted, sessions forgotten).
    /// Stops a running session (its artifacts are written first, so a session is never cut
    /// off half-written), then deletes every report and forgets the session history.
    pub fn cleanup(&self) -> Result<Cleaned, ProfilingError> {
        let stopped = self.stop()?.map(|finished| finished.info.id);
        let mut reports = 0;
        for entry in self.reports() {
            if std::fs::remove_file(&entry.file.path).is_ok() {
                reports += 1;
            }
        }
        let mut state = lock(&self.inner.state);
        let sessions = state.history.len();
        state.history.clear();
        Ok(Cleaned {
            reports,
            sessions,
            stopped,
        })
    }

    /// The `/debug/workload/retain` memory.
    pub fn retained(&self) -> &workload::Retained {
        &self.inner.retained
    }
}

fn iso(at: SystemTime) -> String {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    crate::timefmt::iso8601_millis(since.as_secs() as i64, since.subsec_millis())
}

#[cfg(test)]
mod tests;

/// A session frees tens of MB at once (sample tables, symbol data, report buffers); glibc keeps
/// freed memory mapped, so without a trim a finished session would hold RSS up indefinitely.
/// The backtrace crate's symbol cache (over 100 MB of parsed debug info of this binary) is
/// dropped too, and the next session parses again when it writes its reports (a fraction of a
/// second on the session thread, off the request path; starting a session parses nothing).
fn release_freed_memory() {
    backtrace::clear_symbol_cache();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the OS; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
