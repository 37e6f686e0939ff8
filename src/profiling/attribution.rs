//! Which subsystem each CPU sample belongs to, decided on the whole stack: the rules behind the
//! CPU report's `## Subsystems (Whole Stack)` section and the leaf-only fallback `analyze` uses
//! for profiles without that section.
//!
//! Owns the frame → subsystem table (`classify_frame`), the socket-call and symptom patterns,
//! and `attribute`, which charges every sample to exactly one subsystem. Pure: function names
//! in, counts out; no I/O, no clock, no pprof types, so tests feed it synthetic stacks. Must
//! not know report layouts (that is `cpu_report` for writing, `tools::report` for reading).
//!
//! The rule. Walk a stack from the leaf outwards; the first frame that names a subsystem
//! decides (a frame of this service, or of a dependency we know the purpose of). Frames that
//! name none (std, core, alloc, libc, the kernel side of `send`/`recv`/`futex`/`malloc`, small
//! utility crates) are transparent, so their time goes to the subsystem that called them. A
//! socket call (`send`, `recv`, `read`, `write`, …) whose caller is HTTP is the inherent cost
//! of serving and goes to `SocketIo`; any other system call under HTTP (futex wake/wait when a
//! connection thread hands a request to a worker, poll) goes to `HttpKernel`, so `Http` is
//! the user-space part of serving; under Kong it all stays Kong. A stack with no naming frame
//! at all (a thread being created or torn down, a failed unwind) is charged by its thread's
//! name (see `thread_subsystem`), and otherwise to `Other`. Shares add up to 100 %.

use std::collections::HashMap;

/// Where a CPU sample's time went. `ALL` is the report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subsystem {
    KongLookups,
    JwtSigning,
    Json,
    Http,
    HttpKernel,
    SocketIo,
    Handlers,
    Logging,
    Telemetry,
    /// OpenTelemetry spans on the request path and the OTLP export threads.
    Otel,
    Profiler,
    Other,
}

impl Subsystem {
    pub const ALL: [Subsystem; 12] = [
        Subsystem::KongLookups,
        Subsystem::JwtSigning,
        Subsystem::Json,
        Subsystem::Http,
        Subsystem::HttpKernel,
        Subsystem::SocketIo,
        Subsystem::Handlers,
        Subsystem::Logging,
        Subsystem::Telemetry,
        Subsystem::Otel,
        Subsystem::Profiler,
        Subsystem::Other,
    ];

    /// The stable key written in the report's `Key` column and in `analyze --format json`.
    pub fn key(self) -> &'static str {
        match self {
            Subsystem::KongLookups => "kong",
            Subsystem::JwtSigning => "jwt",
            Subsystem::Json => "json",
            Subsystem::Http => "http",
            Subsystem::HttpKernel => "http_kernel",
            Subsystem::SocketIo => "socket_io",
            Subsystem::Handlers => "handlers",
            Subsystem::Logging => "logging",
            Subsystem::Telemetry => "telemetry",
            Subsystem::Otel => "otel",
            Subsystem::Profiler => "profiler",
            Subsystem::Other => "other",
        }
    }

    pub fn from_key(key: &str) -> Option<Subsystem> {
        Subsystem::ALL.into_iter().find(|s| s.key() == key)
    }

    /// The name people read.
    pub fn name(self) -> &'static str {
        match self {
            Subsystem::KongLookups => "Kong lookups",
            Subsystem::JwtSigning => "JWT signing",
            Subsystem::Json => "JSON",
            Subsystem::Http => "HTTP",
            Subsystem::HttpKernel => "HTTP kernel, thread hand-off",
            Subsystem::SocketIo => "Socket I/O, inherent",
            Subsystem::Handlers => "Endpoint logic",
            Subsystem::Logging => "Logging",
            Subsystem::Telemetry => "Metrics and SLA monitor",
            Subsystem::Otel => "OpenTelemetry export",
            Subsystem::Profiler => "Profiler",
            Subsystem::Other => "Other",
        }
    }

    /// What is charged here, for the report's `Covers` column.
    pub fn covers(self) -> &'static str {
        match self {
            Subsystem::KongLookups => {
                "kong::* (cache, store, client), ureq, rustls, DNS and resolver threads under them"
            }
            Subsystem::JwtSigning => "jwt::*, jsonwebtoken, hmac, sha2 (SHA intrinsics too)",
            Subsystem::Json => "serde_json",
            Subsystem::Http => {
                "tiny_http, server::*, http::* (routing, adapter, responses): the user-space part"
            }
            Subsystem::HttpKernel => {
                "other syscalls under HTTP: futex wake/wait handing requests to workers, poll"
            }
            Subsystem::SocketIo => "send/recv on the served sockets (under HTTP, not under kong)",
            Subsystem::Handlers => {
                "handlers::* own code (tokens, health, openapi) outside Kong, JWT and JSON"
            }
            Subsystem::Logging => "log, env_logger, logging::*",
            Subsystem::Telemetry => "metrics::*, monitor::*, handlers::metrics",
            Subsystem::Otel => {
                "telemetry::*, opentelemetry* (spans on the request path), and all of the SDK's \
                 OpenTelemetry.* export threads (encoding, ureq, sockets)"
            }
            Subsystem::Profiler => "profiling::*, pprof, backtrace, gimli, addr2line, inferno",
            Subsystem::Other => "stacks that name no subsystem",
        }
    }
}

/// How a function name is matched.
#[derive(Clone, Copy, Debug)]
enum Pattern {
    /// A Rust path prefix on `::` boundaries: `sha2` matches `sha2::x`, not `sha2x::x`.
    Module(&'static str),
    /// A C symbol after dropping `__`, `GI_` and `libc_` decorations: `write` matches
    /// `__GI___libc_write`.
    Symbol(&'static str),
    /// A C symbol family: `memcpy` matches `__memcpy_avx_unaligned_erms`.
    SymbolPrefix(&'static str),
}

use Pattern::{Module, Symbol, SymbolPrefix};

/// Frames that are transparent although a rule below would match them: the allocator wrapper
/// is allocation on behalf of whoever called `malloc`.
const TRANSPARENT: &[Pattern] = &[Module("auth_service::profiling::alloc")];

/// Frame → subsystem, first match wins (so the more specific module comes first).
const RULES: &[(Pattern, Subsystem)] = &[
    // The profiler itself, and its debug endpoints and self-check workload.
    (Module("auth_service::profiling"), Subsystem::Profiler),
    (Module("auth_service::handlers::debug"), Subsystem::Profiler),
    (Module("pprof"), Subsystem::Profiler),
    (Module("backtrace"), Subsystem::Profiler),
    (Module("gimli"), Subsystem::Profiler),
    (Module("addr2line"), Subsystem::Profiler),
    (Module("inferno"), Subsystem::Profiler),
    (Module("flate2"), Subsystem::Profiler),
    (Module("miniz_oxide"), Subsystem::Profiler),
    (Module("findshlibs"), Subsystem::Profiler),
    (Module("rustc_demangle"), Subsystem::Profiler),
    (Module("cpp_demangle"), Subsystem::Profiler),
    (Symbol("perf_signal_handler"), Subsystem::Profiler),
    // Kong: our client, cache and store, and the HTTP client stack under them.
    (Module("auth_service::kong"), Subsystem::KongLookups),
    (Module("auth_service::kong_sim"), Subsystem::KongLookups),
    (Module("ureq"), Subsystem::KongLookups),
    (Module("ureq_proto"), Subsystem::KongLookups),
    (Module("rustls"), Subsystem::KongLookups),
    (Module("rustls_pki_types"), Subsystem::KongLookups),
    (Module("webpki"), Subsystem::KongLookups),
    (Module("ring"), Subsystem::KongLookups),
    // The credential cache's LRU: cache work, not lock contention.
    (Module("lru"), Subsystem::KongLookups),
    // JWT signing, SHA-256 intrinsics included (inlined into sha2, they keep core's path).
    (Module("auth_service::jwt"), Subsystem::JwtSigning),
    (Module("jsonwebtoken"), Subsystem::JwtSigning),
    (Module("hmac"), Subsystem::JwtSigning),
    (Module("sha2"), Subsystem::JwtSigning),
    (Module("digest"), Subsystem::JwtSigning),
    (Module("block_buffer"), Subsystem::JwtSigning),
    (Module("core::core_arch::x86::sha"), Subsystem::JwtSigning),
    (
        Module("core::core_arch::x86_64::sha"),
        Subsystem::JwtSigning,
    ),
    (
        Module("core::core_arch::aarch64::sha"),
        Subsystem::JwtSigning,
    ),
    (Module("serde_json"), Subsystem::Json),
    (Module("auth_service::logging"), Subsystem::Logging),
    (Module("log"), Subsystem::Logging),
    (Module("env_logger"), Subsystem::Logging),
    // OpenTelemetry: our spans and the SDK. `prost` names no subsystem: its encoders run for
    // the pprof writer and the OTLP exporter alike, and the frame above them decides.
    (Module("auth_service::telemetry"), Subsystem::Otel),
    (Module("opentelemetry"), Subsystem::Otel),
    (Module("opentelemetry_sdk"), Subsystem::Otel),
    (Module("opentelemetry_otlp"), Subsystem::Otel),
    (Module("opentelemetry_proto"), Subsystem::Otel),
    (Module("opentelemetry_http"), Subsystem::Otel),
    (Module("auth_service::metrics"), Subsystem::Telemetry),
    (Module("auth_service::monitor"), Subsystem::Telemetry),
    (
        Module("auth_service::handlers::metrics"),
        Subsystem::Telemetry,
    ),
    (Module("tiny_http"), Subsystem::Http),
    (Module("auth_service::server"), Subsystem::Http),
    (Module("auth_service::http"), Subsystem::Http),
    // The endpoints' own logic; their Kong, JWT and JSON work is charged there first.
    (Module("auth_service::handlers"), Subsystem::Handlers),
];

/// Socket system calls: on a served socket (under HTTP) the inherent cost of serving.
const SOCKET_CALLS: &[Pattern] = &[
    Symbol("send"),
    Symbol("sendto"),
    Symbol("sendmsg"),
    Symbol("sendmmsg"),
    Symbol("recv"),
    Symbol("recvfrom"),
    Symbol("recvmsg"),
    Symbol("recvmmsg"),
    Symbol("read"),
    Symbol("readv"),
    Symbol("write"),
    Symbol("writev"),
    Symbol("accept"),
    Symbol("accept4"),
    Symbol("shutdown"),
];

/// System-call wrappers other than socket I/O: the kernel part of waking, parking and
/// creating threads, and of memory mapping.
const SYSCALLS: &[Pattern] = &[
    Symbol("syscall"),
    SymbolPrefix("futex"),
    SymbolPrefix("lll_lock_wait"),
    Symbol("epoll_wait"),
    Symbol("poll"),
    Symbol("ppoll"),
    Symbol("select"),
    Symbol("nanosleep"),
    Symbol("clock_nanosleep"),
    Symbol("sched_yield"),
    Symbol("close"),
    Symbol("mmap"),
    Symbol("mmap64"),
    Symbol("munmap"),
    Symbol("mprotect"),
    Symbol("madvise"),
    Symbol("ioctl"),
    Symbol("fcntl"),
    Symbol("getrandom"),
    Symbol("clone"),
    Symbol("clone3"),
    Symbol("sigaltstack"),
    Symbol("internal_signal_restore_set"),
    SymbolPrefix("pthread_disable_asynccancel"),
    SymbolPrefix("pthread_enable_asynccancel"),
];

/// The allocator: libc's malloc family, Rust's allocation shims and our counting wrapper.
const ALLOCATOR: &[Pattern] = &[
    Module("auth_service::profiling::alloc"),
    Module("alloc::alloc"),
    Module("__rustc"),
    Symbol("malloc"),
    Symbol("free"),
    Symbol("cfree"),
    Symbol("realloc"),
    Symbol("calloc"),
    Symbol("int_malloc"),
    Symbol("int_free"),
    Symbol("int_realloc"),
    Symbol("malloc_consolidate"),
    Symbol("sysmalloc"),
    Symbol("unlink_chunk"),
    SymbolPrefix("tcache"),
    SymbolPrefix("rust_alloc"),
    SymbolPrefix("rust_dealloc"),
    SymbolPrefix("rust_realloc"),
    SymbolPrefix("rdl_"),
];

/// Frames that only run while a thread starts or exits: its signal stack being set up or
/// freed, the signal mask restored after `clone`, std's start trampoline.
pub fn is_thread_lifecycle(function: &str) -> bool {
    const PARTS: [&str; 6] = [
        "stack_overflow::",
        "thread_start",
        "ThreadInit",
        "start_thread",
        "internal_signal_restore_set",
        "clone3",
    ];
    PARTS.iter().any(|p| function.contains(p))
}

/// Frames that only exist while a thread waits for a contended lock (not condvar waits: a
/// worker sleeping until the next request is idle, not contending).
pub fn is_lock_contended(function: &str) -> bool {
    function.contains("lock_contended")
        || function.contains("::lock_slow")
        || function.starts_with("parking_lot_core::parking_lot::park")
        || (!function.contains("::") && c_symbol(function).starts_with("lll_lock_wait"))
}

/// The subsystem a frame names, or `None` when it is transparent. For trait impls
/// (`<A as B>::f`) the self type `A` is tried first, then the trait `B`; drop glue
/// (`core::ptr::drop_in_place<T>`) is judged by `T`.
pub fn classify_frame(function: &str) -> Option<Subsystem> {
    for subject in subjects(function) {
        if TRANSPARENT.iter().any(|p| matches(*p, subject)) {
            return None;
        }
        if let Some((_, subsystem)) = RULES.iter().find(|(p, _)| matches(*p, subject)) {
            return Some(*subsystem);
        }
    }
    None
}

/// True for `send`, `recv`, `write`, … (libc names in any decoration).
pub fn is_socket_call(function: &str) -> bool {
    SOCKET_CALLS.iter().any(|p| matches(*p, function))
}

/// True for a system-call wrapper other than socket I/O (`syscall` for futex, `poll`, `mmap`).
pub fn is_syscall(function: &str) -> bool {
    SYSCALLS.iter().any(|p| matches(*p, function))
}

/// True for a frame of the allocator (libc malloc family, Rust shims, our counting wrapper).
pub fn is_allocator(function: &str) -> bool {
    subjects(function)
        .into_iter()
        .any(|subject| ALLOCATOR.iter().any(|p| matches(*p, subject)))
}

/// The subsystem of a stack that names none, from the name of the thread it ran on.
/// `lifecycle`: the stack is a thread being created or torn down (`is_thread_lifecycle`). Such
/// a thread has not set its own name yet (or never does), so it carries its creator's: our
/// workers create threads only inside ureq, which resolves every Kong address on a fresh
/// thread, so thread start/exit on `worker-*`/`ops-*` threads is Kong's.
pub fn thread_subsystem(thread: &str, lifecycle: bool) -> Option<Subsystem> {
    if thread.starts_with("http-") {
        Some(Subsystem::Http)
    } else if thread.starts_with("worker-") || thread.starts_with("ops-") {
        // A worker's own stacks always pass `server::pool`; anything else is a failed unwind.
        lifecycle.then_some(Subsystem::KongLookups)
    } else if thread.starts_with("kong-") {
        Some(Subsystem::KongLookups)
    } else if thread == "sla-monitor" {
        Some(Subsystem::Telemetry)
    } else if thread.starts_with("profiler") {
        Some(Subsystem::Profiler)
    } else {
        None
    }
}

/// How one sample was charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Charge {
    pub subsystem: Subsystem,
    /// Index (leaf = 0) of the frame that decided, `None` when the thread name or nothing did.
    pub decided_by: Option<usize>,
    /// Kong time spent calling Kong (client, HTTP stack, sockets, resolver threads) rather than
    /// in the cache: the part a higher cache hit rate removes.
    pub kong_call: bool,
    /// The leaf is in the allocator (malloc, free, the counting wrapper, …).
    pub allocation: bool,
    /// The thread was waiting for a contended lock.
    pub lock_contention: bool,
}

/// The SDK names its export threads `OpenTelemetry.Traces.BatchProcessor` and
/// `OpenTelemetry.Metrics.PeriodicReader`; everything they run is export, even the ureq and
/// socket frames that would otherwise read as Kong or HTTP.
fn is_otel_export_thread(thread: &str) -> bool {
    thread.starts_with("OpenTelemetry")
}

/// Charges one stack (`frames` leaf first) that ran on `thread`.
pub fn charge(frames: &[&str], thread: &str) -> Charge {
    if is_otel_export_thread(thread) {
        return Charge {
            subsystem: Subsystem::Otel,
            decided_by: None,
            kong_call: false,
            allocation: leaf_in_allocator(frames),
            lock_contention: frames.iter().any(|f| is_lock_contended(f)),
        };
    }
    let (mut socket, mut syscall) = (false, false);
    let mut decided = None;
    for (index, function) in frames.iter().enumerate() {
        if let Some(subsystem) = classify_frame(function) {
            decided = Some((index, subsystem));
            break;
        }
        socket |= is_socket_call(function);
        syscall |= is_syscall(function);
    }
    let (subsystem, decided_by) = match decided {
        Some((index, subsystem)) => (subsystem, Some(index)),
        None => (
            thread_subsystem(thread, frames.iter().any(|f| is_thread_lifecycle(f)))
                .unwrap_or(Subsystem::Other),
            None,
        ),
    };
    let subsystem = match subsystem {
        Subsystem::Http if socket => Subsystem::SocketIo,
        Subsystem::Http if syscall => Subsystem::HttpKernel,
        other => other,
    };
    let kong_call = subsystem == Subsystem::KongLookups
        && (socket
            || decided_by.is_none()
            || frames.iter().any(|f| {
                subjects(f).into_iter().any(|s| {
                    [
                        "auth_service::kong::client",
                        "ureq",
                        "ureq_proto",
                        "rustls",
                        "ring",
                    ]
                    .iter()
                    .any(|m| matches(Module(m), s))
                })
            }));
    Charge {
        subsystem,
        decided_by,
        kong_call,
        allocation: leaf_in_allocator(frames),
        lock_contention: frames.iter().any(|f| is_lock_contended(f)),
    }
}

/// The leaf, or the libc frames right above it (a `memcpy` inside `realloc`), is allocator code.
fn leaf_in_allocator(frames: &[&str]) -> bool {
    for function in frames {
        if is_allocator(function) {
            return true;
        }
        // Unnamed libc internals (`memcpy`, `mmap`) between the leaf and the allocator.
        if function.contains("::") || function.starts_with('<') {
            return false;
        }
    }
    false
}

/// Samples per subsystem, with the frames that decided them.
#[derive(Clone, Debug, Default)]
pub struct Attribution {
    pub samples: u64,
    /// One entry per `Subsystem::ALL`, in that order.
    pub shares: Vec<Share>,
    /// Kong samples spent calling Kong (see `Charge::kong_call`).
    pub kong_calls: u64,
    /// Samples whose leaf is the allocator, whatever subsystem they were charged to.
    pub allocation: u64,
    /// Samples waiting for a contended lock.
    pub lock_contention: u64,
    /// Samples charged by their thread's name because no frame named a subsystem.
    pub by_thread_name: u64,
    /// The stacks charged to `Other`, most samples first (leaf → root, shortened).
    pub other_stacks: Vec<(String, u64)>,
}

#[derive(Clone, Debug)]
pub struct Share {
    pub subsystem: Subsystem,
    pub samples: u64,
    /// The deciding frames, most samples first; `(thread <name>)` when the thread name decided.
    pub deciders: Vec<(String, u64)>,
}

impl Attribution {
    pub fn share(&self, subsystem: Subsystem) -> &Share {
        self.shares
            .iter()
            .find(|s| s.subsystem == subsystem)
            .expect("one share per subsystem")
    }
}

/// Frames of an `Other` stack shown in the report.
const OTHER_STACK_FRAMES: usize = 6;

/// Attributes every `(frames leaf first, thread name, sample count)`.
pub fn attribute<'a, I, F>(stacks: I) -> Attribution
where
    I: IntoIterator<Item = (F, &'a str, u64)>,
    F: AsRef<[&'a str]>,
{
    let mut counts: HashMap<Subsystem, u64> = HashMap::new();
    let mut deciders: HashMap<Subsystem, HashMap<String, u64>> = HashMap::new();
    let mut other: HashMap<String, u64> = HashMap::new();
    let mut out = Attribution::default();
    for (frames, thread, count) in stacks {
        let frames = frames.as_ref();
        let charge = charge(frames, thread);
        out.samples += count;
        *counts.entry(charge.subsystem).or_default() += count;
        let decider = match charge.decided_by {
            Some(index) => frames[index].to_owned(),
            None => {
                out.by_thread_name += count;
                format!("(thread {})", thread_family(thread))
            }
        };
        *deciders
            .entry(charge.subsystem)
            .or_default()
            .entry(decider)
            .or_default() += count;
        if charge.kong_call {
            out.kong_calls += count;
        }
        if charge.allocation {
            out.allocation += count;
        }
        if charge.lock_contention {
            out.lock_contention += count;
        }
        if charge.subsystem == Subsystem::Other {
            let shown: Vec<&str> = frames.iter().take(OTHER_STACK_FRAMES).copied().collect();
            let key = format!("{} (thread {})", shown.join(" ← "), thread_family(thread));
            *other.entry(key).or_default() += count;
        }
    }
    out.shares = Subsystem::ALL
        .iter()
        .map(|&subsystem| Share {
            subsystem,
            samples: counts.get(&subsystem).copied().unwrap_or(0),
            deciders: sorted(deciders.remove(&subsystem).unwrap_or_default()),
        })
        .collect();
    out.other_stacks = sorted(other);
    out
}

/// `worker-3` → `worker-*`, so per-thread names do not split one kind of thread.
fn thread_family(thread: &str) -> String {
    match thread.rsplit_once('-') {
        Some((family, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{family}-*")
        }
        _ if thread.is_empty() => "unnamed".to_owned(),
        _ => thread.to_owned(),
    }
}

fn sorted(map: HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = map.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

fn strip_reference(s: &str) -> &str {
    let mut s = s.trim();
    for prefix in ["&mut ", "&", "*const ", "*mut ", "dyn ", "impl "] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.trim_start();
        }
    }
    s
}

/// The paths a function name is judged by: `<&mut serde_json::Ser as serde::Serializer>::f`
/// → [`serde_json::Ser`, `serde::Serializer`]; `core::ptr::drop_in_place<tiny_http::Writer>`
/// → [`tiny_http::Writer`]; anything else → [itself].
fn subjects(function: &str) -> Vec<&str> {
    for glue in ["core::ptr::drop_in_place<", "core::ptr::drop_in_place::<"] {
        if let Some(inner) = function.strip_prefix(glue) {
            return vec![strip_reference(inner.strip_suffix('>').unwrap_or(inner))];
        }
    }
    let Some(inner) = function.strip_prefix('<') else {
        return vec![function];
    };
    // Find the `>` closing the leading `<`, and a top-level ` as ` before it.
    let mut depth = 0usize;
    let mut as_at = None;
    let mut close = inner.len();
    for (i, c) in inner.char_indices() {
        match c {
            '<' => depth += 1,
            '>' if depth == 0 => {
                close = i;
                break;
            }
            '>' => depth -= 1,
            ' ' if depth == 0 && as_at.is_none() && inner[i..].starts_with(" as ") => {
                as_at = Some(i)
            }
            _ => {}
        }
    }
    match as_at {
        Some(at) => vec![
            strip_reference(&inner[..at]),
            strip_reference(&inner[at + 4..close]),
        ],
        None => vec![strip_reference(&inner[..close])],
    }
}

fn matches(pattern: Pattern, subject: &str) -> bool {
    match pattern {
        Module(prefix) => subject
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::") || rest.starts_with('<')),
        Symbol(name) => !subject.contains("::") && c_symbol(subject) == name,
        SymbolPrefix(name) => !subject.contains("::") && c_symbol(subject).starts_with(name),
    }
}

/// `__GI___libc_write@GLIBC_2.2.5` → `write`.
fn c_symbol(name: &str) -> &str {
    let name = name.split('@').next().unwrap_or(name);
    let mut name = name.trim_start_matches('_');
    if let Some(rest) = name.strip_prefix("GI_") {
        name = rest.trim_start_matches('_');
    }
    if let Some(rest) = name.strip_prefix("libc_") {
        name = rest;
    }
    name
}

#[cfg(test)]
#[path = "attribution_tests.rs"]
mod tests;
