//! The CPU Markdown report (`CPU.<ts>.<pid>.md`): Bun's section names and columns, a real
//! indented call tree as Deno writes it, then our own sections after Bun's: `## Subsystems
//! (Whole Stack)` (every sample charged to one subsystem, `profiling::attribution`), `## Our
//! Functions (Total Time)` (this service's functions by cumulative time, zero self time
//! included), `## Profile Metadata`, and a last line `<!-- end of CPU profile: N samples -->`
//! that tells a complete file from a truncated one.
//!
//! Pure: a function of a `CpuProfile` and the metadata rows, no I/O and no clock. The layout
//! is a contract with the `analyze` tool (`tools::report`); change it only together with that
//! parser.
//!
//! Rows are keyed by **function** (not function + line as Bun does), which reads better for
//! Rust where one hot function is often sampled on many lines; the Location column shows the
//! line sampled most often. Total time counts each function once per sample, so recursion is
//! not double counted.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use crate::profiling::attribution::{self, Attribution, Subsystem};
use crate::profiling::cpu::CpuProfile;
use crate::profiling::symbols::{FrameInfo, UNKNOWN};

/// Levels of the call tree below the trimmed root (pass-through frames do not count).
const TREE_MAX_DEPTH: usize = 12;
const TREE_MIN_SHARE: f64 = 0.005;
const DETAILS: usize = 10;
const DETAIL_EDGES: usize = 10;
/// Rows of `## Our Functions (Total Time)`.
const OUR_FUNCTIONS: usize = 25;
/// Deciding frames listed per subsystem, and `Other` stacks listed.
const DECIDERS: usize = 3;
const OTHER_STACKS: usize = 8;

/// The last line of a complete CPU report (`analyze` refuses a file without it, or with a
/// count that disagrees with the summary).
pub fn end_marker(samples: u64) -> String {
    format!("<!-- end of CPU profile: {samples} samples -->")
}

/// Prefix of `end_marker`, for readers.
pub const END_MARKER_PREFIX: &str = "<!-- end of CPU profile: ";

/// Per-function totals derived from the samples.
#[derive(Debug, Default, Clone)]
pub struct FunctionStats {
    pub name: String,
    pub self_samples: u64,
    pub total_samples: u64,
    pub location: String,
    pub called_by: Vec<(String, u64)>,
    pub calls: Vec<(String, u64)>,
}

/// The numbers behind the report (also used by tests and the status endpoint).
#[derive(Debug, Default)]
pub struct CpuAnalysis {
    pub samples: u64,
    /// Sorted by self samples, then total, then name.
    pub functions: Vec<FunctionStats>,
    /// (file, self samples), sorted by self samples.
    pub files: Vec<(String, u64)>,
    /// Every sample charged to one subsystem on its whole stack.
    pub attribution: Attribution,
    tree: Vec<TreeNode>,
}

#[derive(Debug, Default)]
struct TreeNode {
    name: String,
    total: u64,
    self_samples: u64,
    children: HashMap<String, usize>,
}

/// Frames at the root end of every stack that say nothing about our code (Deno drops its
/// `(root)`/`(program)` nodes the same way). Trimmed from the call tree only.
fn is_root_noise(function: &str) -> bool {
    const PREFIXES: [&str; 10] = [
        "_start",
        "__libc_start",
        "start_thread",
        "clone",
        "__rust_try",
        "std::rt::",
        "std::panicking::",
        "std::panic::catch_unwind",
        "std::thread::",
        "std::sys::",
    ];
    // Thread and closure trampolines of std, in both demangling styles
    // (`std::sys::..::thread_start` and `<std::sys::thread::unix::Thread>::new::thread_start`).
    const PARTS: [&str; 5] = [
        "thread_start",
        "spawn_unchecked",
        "__rust_begin_short_backtrace",
        "as core::ops::function::FnOnce<",
        "core::ops::function::FnOnce::call_once",
    ];
    function == "main"
        || function == UNKNOWN
        || PREFIXES.iter().any(|p| function.starts_with(p))
        || PARTS.iter().any(|p| function.contains(p))
}

/// Frames between a caller and its callee that only pass control on (`catch_unwind`, closure
/// call shims, thread-local access): dropped from call-tree paths so the tree reaches the
/// handler within `TREE_MAX_DEPTH` levels. Hot Functions and totals keep them.
fn is_pass_through(function: &str) -> bool {
    const PREFIXES: [&str; 7] = [
        "std::panic::catch_unwind",
        "std::panicking::",
        "__rust_try",
        "core::ops::function::",
        "<core::panic::unwind_safe::AssertUnwindSafe<",
        "std::thread::local::LocalKey<",
        "<alloc::boxed::Box<F,A> as core::ops::function::",
    ];
    PREFIXES.iter().any(|p| function.starts_with(p))
}

fn is_ours(function: &str) -> bool {
    function.starts_with("auth_service::") || function.starts_with("<auth_service::")
}

pub fn analyze(profile: &CpuProfile) -> CpuAnalysis {
    let mut samples = 0u64;
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut functions: Vec<FunctionStats> = Vec::new();
    let mut locations: Vec<HashMap<String, u64>> = Vec::new();
    let mut called_by: Vec<HashMap<String, u64>> = Vec::new();
    let mut calls: Vec<HashMap<String, u64>> = Vec::new();
    let mut files: HashMap<String, u64> = HashMap::new();
    let mut tree = vec![TreeNode::default()];
    let unknown = [FrameInfo::unknown()];

    for stack in &profile.stacks {
        let count = stack.count;
        samples += count;
        let frames: &[FrameInfo] = if stack.frames.is_empty() {
            &unknown
        } else {
            &stack.frames
        };
        let mut id_of = |frame: &FrameInfo| -> usize {
            let id = *index.entry(frame.function.clone()).or_insert_with(|| {
                functions.push(FunctionStats {
                    name: frame.function.clone(),
                    ..FunctionStats::default()
                });
                locations.push(HashMap::new());
                called_by.push(HashMap::new());
                calls.push(HashMap::new());
                functions.len() - 1
            });
            *locations[id].entry(frame.location()).or_default() += count;
            id
        };
        let ids: Vec<usize> = frames.iter().map(&mut id_of).collect();

        functions[ids[0]].self_samples += count;
        *files
            .entry(frames[0].file_or_unknown().to_owned())
            .or_default() += count;
        let mut seen = HashSet::new();
        for id in &ids {
            if seen.insert(*id) {
                functions[*id].total_samples += count;
            }
        }
        let mut seen_edges = HashSet::new();
        for pair in ids.windows(2) {
            let (callee, caller) = (pair[0], pair[1]);
            if callee != caller && seen_edges.insert((caller, callee)) {
                *calls[caller]
                    .entry(functions[callee].name.clone())
                    .or_default() += count;
                *called_by[callee]
                    .entry(functions[caller].name.clone())
                    .or_default() += count;
            }
        }

        // Call tree: root first, noise trimmed (but never everything), pass-through frames
        // dropped (the leaf always stays).
        let mut path: Vec<&str> = frames.iter().rev().map(|f| f.function.as_str()).collect();
        let noise = path.iter().take_while(|f| is_root_noise(f)).count();
        if noise < path.len() {
            path.drain(..noise);
        }
        if path.len() > 1 {
            let leaf = path.pop();
            path.retain(|f| !is_pass_through(f));
            path.extend(leaf);
        }
        let mut node = 0;
        tree[0].total += count;
        for name in path {
            let next = match tree[node].children.get(name) {
                Some(child) => *child,
                None => {
                    tree.push(TreeNode {
                        name: name.to_owned(),
                        ..TreeNode::default()
                    });
                    let child = tree.len() - 1;
                    tree[node].children.insert(name.to_owned(), child);
                    child
                }
            };
            node = next;
            tree[node].total += count;
        }
        tree[node].self_samples += count;
    }

    for (id, function) in functions.iter_mut().enumerate() {
        // Prefer a location with a line: compiler-generated code maps to line 0.
        let has_line = |loc: &str| loc.rsplit_once(':').is_some_and(|(_, l)| l != "0");
        function.location = locations[id]
            .iter()
            .max_by(|a, b| {
                (has_line(a.0), a.1)
                    .cmp(&(has_line(b.0), b.1))
                    .then(b.0.cmp(a.0))
            })
            .map(|(loc, _)| loc.clone())
            .unwrap_or_else(|| UNKNOWN.to_owned());
        function.called_by = sorted_counts(&called_by[id]);
        function.calls = sorted_counts(&calls[id]);
    }
    functions.sort_by(|a, b| {
        b.self_samples
            .cmp(&a.self_samples)
            .then(b.total_samples.cmp(&a.total_samples))
            .then(a.name.cmp(&b.name))
    });
    let mut files: Vec<(String, u64)> = files.into_iter().collect();
    files.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let attribution = attribution::attribute(profile.stacks.iter().map(|stack| {
        let names: Vec<&str> = stack.frames.iter().map(|f| f.function.as_str()).collect();
        (names, stack.thread_name.as_str(), stack.count)
    }));
    CpuAnalysis {
        samples,
        functions,
        files,
        attribution,
        tree,
    }
}

fn sorted_counts(map: &HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = map.iter().map(|(k, v)| (k.clone(), *v)).collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// `534.5ms`, `1.29s`, `983us`.
pub fn format_duration_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2}s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.1}ms", ns / 1e6)
    } else {
        format!("{:.0}us", ns / 1e3)
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0.0%".to_owned();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// Function names go in backticks; a backtick inside a name would end the code span.
fn code(text: &str) -> String {
    format!("`{}`", text.replace('`', "'").replace('|', "\\|"))
}

pub fn render(profile: &CpuProfile, metadata: &[(String, String)]) -> String {
    let analysis = analyze(profile);
    let period = profile.period_ns();
    let samples = analysis.samples;
    let time = |n: u64| format_duration_ns(n as f64 * period);
    let mut out = String::with_capacity(16 * 1024);

    out.push_str("# CPU Profile\n\n");
    out.push_str("| Duration | Samples | Interval | Functions |\n");
    out.push_str("|----------|---------|----------|-----------|\n");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} |\n",
        format_duration_ns(profile.duration.as_nanos() as f64),
        samples,
        format_duration_ns(period),
        analysis.functions.len()
    );

    let top: Vec<String> = analysis
        .functions
        .iter()
        .filter(|f| f.self_samples > 0)
        .take(10)
        .map(|f| format!("{} {}", code(&f.name), percent(f.self_samples, samples)))
        .collect();
    let _ = writeln!(out, "**Top 10:** {}\n", top.join(", "));

    out.push_str("## Hot Functions (Self Time)\n\n");
    out.push_str("| Self% | Self | Total% | Total | Function | Location |\n");
    out.push_str("|------:|-----:|-------:|------:|----------|----------|\n");
    for f in analysis.functions.iter().filter(|f| f.self_samples > 0) {
        let counts = [f.self_samples, f.total_samples];
        function_row(&mut out, counts, samples, &time, &f.name, &f.location);
    }
    out.push('\n');

    out.push_str("## Call Tree (Total Time)\n\n");
    out.push_str("| Total% | Total | Self% | Self | Function | Location |\n");
    out.push_str("|-------:|------:|------:|-----:|----------|----------|\n");
    let location_of: HashMap<&str, &str> = analysis
        .functions
        .iter()
        .map(|f| (f.name.as_str(), f.location.as_str()))
        .collect();
    let min_samples = (samples as f64 * TREE_MIN_SHARE).ceil() as u64;
    render_tree(
        &analysis.tree,
        0,
        0,
        min_samples.max(1),
        &mut |depth, node: &TreeNode| {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {}{} | {} |",
                percent(node.total, samples),
                time(node.total),
                percent(node.self_samples, samples),
                time(node.self_samples),
                "  ".repeat(depth),
                code(&node.name),
                code(location_of.get(node.name.as_str()).unwrap_or(&UNKNOWN))
            );
        },
    );
    out.push('\n');

    out.push_str("## Function Details\n\n");
    for f in analysis
        .functions
        .iter()
        .filter(|f| f.self_samples > 0)
        .take(DETAILS)
    {
        let _ = writeln!(out, "### {}", code(&f.name));
        let _ = writeln!(
            out,
            "{} | Self: {} ({}) | Total: {} ({}) | Samples: {}\n",
            code(&f.location),
            percent(f.self_samples, samples),
            time(f.self_samples),
            percent(f.total_samples, samples),
            time(f.total_samples),
            f.total_samples
        );
        for (title, edges) in [("Called by", &f.called_by), ("Calls", &f.calls)] {
            if edges.is_empty() {
                continue;
            }
            let _ = writeln!(out, "**{title}:**");
            for (name, count) in edges.iter().take(DETAIL_EDGES) {
                let _ = writeln!(out, "- {} ({count})", code(name));
            }
            out.push('\n');
        }
    }

    out.push_str("## Files\n\n");
    out.push_str("| Self% | Self | File |\n");
    out.push_str("|------:|-----:|------|\n");
    for (file, count) in &analysis.files {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            percent(*count, samples),
            time(*count),
            code(file)
        );
    }
    out.push('\n');

    render_subsystems(&mut out, &analysis.attribution, &time);
    render_our_functions(&mut out, &analysis, &time);
    render_metadata(&mut out, metadata);
    out.push('\n');
    out.push_str(&end_marker(samples));
    out.push('\n');
    out
}

fn render_subsystems(out: &mut String, attribution: &Attribution, time: &dyn Fn(u64) -> String) {
    let samples = attribution.samples;
    out.push_str("## Subsystems (Whole Stack)\n\n");
    out.push_str(
        "Each sample is charged to exactly one subsystem: the innermost frame of this service or \
         of a known dependency that names one decides, so kernel and libc frames (send, recv, \
         futex, malloc) count for the subsystem that called them. `Socket I/O, inherent` is \
         send/recv on the served sockets (under tiny_http or `server::`, not under `kong::`); \
         `HTTP` is the rest of serving. A stack that names no subsystem goes by its thread's \
         name, else to `Other`.\n\n",
    );
    out.push_str("| Key | Subsystem | Samples | Share | Time | Deciding frames | Covers |\n");
    out.push_str("|-----|-----------|--------:|------:|-----:|-----------------|--------|\n");
    for share in &attribution.shares {
        let deciders: Vec<String> = share
            .deciders
            .iter()
            .take(DECIDERS)
            .map(|(name, count)| format!("{} {count}", code(name)))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            share.subsystem.key(),
            share.subsystem.name(),
            share.samples,
            percent(share.samples, samples),
            time(share.samples),
            deciders.join(", "),
            share.subsystem.covers()
        );
    }
    let _ = writeln!(
        out,
        "| total | Total | {samples} | {} | {} |  |  |\n",
        percent(samples, samples),
        time(samples)
    );
    out.push_str("| Measure | Samples | Share | Meaning |\n");
    out.push_str("|---------|--------:|------:|---------|\n");
    let measures = [
        (
            "kong_calls",
            attribution.kong_calls,
            "Kong lookups spent calling Kong (client, ureq, sockets, resolver threads), not in the cache",
        ),
        (
            "allocation",
            attribution.allocation,
            "leaf in the allocator (malloc, free, our counting wrapper), whatever the subsystem",
        ),
        (
            "lock_contention",
            attribution.lock_contention,
            "waiting for a contended lock, whatever the subsystem",
        ),
        (
            "by_thread_name",
            attribution.by_thread_name,
            "charged by thread name: no frame named a subsystem",
        ),
    ];
    for (key, count, meaning) in measures {
        let _ = writeln!(
            out,
            "| {key} | {count} | {} | {meaning} |",
            percent(count, samples)
        );
    }
    out.push('\n');
    let other = attribution.share(Subsystem::Other).samples;
    if other > 0 {
        out.push_str("**Other, top stacks** (leaf ← callers):\n\n");
        for (stack, count) in attribution.other_stacks.iter().take(OTHER_STACKS) {
            let _ = writeln!(out, "- {count} samples: {}", code(stack));
        }
        out.push('\n');
    }
}

fn render_our_functions(out: &mut String, analysis: &CpuAnalysis, time: &dyn Fn(u64) -> String) {
    let samples = analysis.samples;
    out.push_str("## Our Functions (Total Time)\n\n");
    out.push_str("| Total% | Total | Self% | Self | Function | Location |\n");
    out.push_str("|-------:|------:|------:|-----:|----------|----------|\n");
    let mut ours: Vec<&FunctionStats> = analysis
        .functions
        .iter()
        .filter(|f| is_ours(&f.name) && f.total_samples > 0)
        .collect();
    ours.sort_by(|a, b| {
        b.total_samples
            .cmp(&a.total_samples)
            .then(b.self_samples.cmp(&a.self_samples))
            .then(a.name.cmp(&b.name))
    });
    for f in ours.into_iter().take(OUR_FUNCTIONS) {
        let counts = [f.total_samples, f.self_samples];
        function_row(out, counts, samples, time, &f.name, &f.location);
    }
    out.push('\n');
}

/// `| a% | a | b% | b | function | location |`: the two sample counts in the table's order.
fn function_row(
    out: &mut String,
    counts: [u64; 2],
    samples: u64,
    time: &dyn Fn(u64) -> String,
    name: &str,
    location: &str,
) {
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} |",
        percent(counts[0], samples),
        time(counts[0]),
        percent(counts[1], samples),
        time(counts[1]),
        code(name),
        code(location)
    );
}

/// Children sorted by total (then name, so output is deterministic), depth-first.
fn render_tree(
    tree: &[TreeNode],
    node: usize,
    depth: usize,
    min_samples: u64,
    emit: &mut dyn FnMut(usize, &TreeNode),
) {
    if depth >= TREE_MAX_DEPTH {
        return;
    }
    let mut children: Vec<usize> = tree[node].children.values().copied().collect();
    children.sort_by(|a, b| {
        tree[*b]
            .total
            .cmp(&tree[*a].total)
            .then(tree[*a].name.cmp(&tree[*b].name))
    });
    for child in children {
        if tree[child].total < min_samples {
            continue;
        }
        emit(depth, &tree[child]);
        render_tree(tree, child, depth + 1, min_samples, emit);
    }
}

/// `## Profile Metadata` as a two-column table (shared with the heap report).
pub fn render_metadata(out: &mut String, rows: &[(String, String)]) {
    out.push_str("## Profile Metadata\n\n");
    out.push_str("| Field | Value |\n");
    out.push_str("|-------|-------|\n");
    for (field, value) in rows {
        let _ = writeln!(out, "| {} | {} |", field, value.replace('|', "\\|"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiling::cpu::CpuStack;
    use std::time::{Duration, SystemTime};

    fn frame(function: &str, file: &str, line: u32) -> FrameInfo {
        FrameInfo {
            function: function.to_owned(),
            file: Some(file.to_owned()),
            line,
        }
    }

    fn stack(frames: &[FrameInfo], count: u64) -> CpuStack {
        CpuStack {
            frames: frames.to_vec(),
            thread_name: "worker-1".into(),
            thread_id: 7,
            count,
        }
    }

    /// 100 samples: sign (self 50, recursing into itself), encode (20), handle (10),
    /// write (20, reached through two callers).
    fn synthetic() -> CpuProfile {
        let main = frame("std::rt::lang_start", "std/src/rt.rs", 1);
        let handle = frame(
            "auth_service::handlers::tokens::issue",
            "src/handlers/tokens.rs",
            10,
        );
        let sign = frame("auth_service::jwt::sign", "src/jwt.rs", 42);
        let sign_inner = frame("auth_service::jwt::sign", "src/jwt.rs", 50);
        let encode = frame("base64::encode", "base64/src/lib.rs", 7);
        let write = frame("core::fmt::write", "core/src/fmt/mod.rs", 1);
        CpuProfile {
            stacks: vec![
                stack(&[sign.clone(), handle.clone(), main.clone()], 30),
                stack(
                    &[sign_inner, sign.clone(), handle.clone(), main.clone()],
                    20,
                ),
                stack(
                    &[encode.clone(), sign.clone(), handle.clone(), main.clone()],
                    20,
                ),
                stack(&[handle.clone(), main.clone()], 10),
                stack(
                    &[write.clone(), encode, sign, handle.clone(), main.clone()],
                    12,
                ),
                stack(&[write, handle, main], 8),
            ],
            frequency: 99,
            started: SystemTime::UNIX_EPOCH,
            duration: Duration::from_millis(2820),
            cpu_seconds: 1.0,
            blocklist: vec!["libgcc".into(), "vdso".into()],
        }
    }

    #[test]
    fn self_sums_to_all_samples_and_total_bounds_self() {
        let analysis = analyze(&synthetic());
        assert_eq!(analysis.samples, 100);
        let self_sum: u64 = analysis.functions.iter().map(|f| f.self_samples).sum();
        assert_eq!(self_sum, 100);
        for f in &analysis.functions {
            assert!(f.total_samples >= f.self_samples, "{f:?}");
            assert!(f.total_samples <= 100, "{f:?}");
        }
        let sign = &analysis.functions[0];
        assert_eq!(sign.name, "auth_service::jwt::sign");
        assert_eq!(sign.self_samples, 50);
        // Recursion counted once per sample: 30 + 20 + 20 + 12.
        assert_eq!(sign.total_samples, 82);
        assert_eq!(sign.location, "src/jwt.rs:42");
        let write = analysis
            .functions
            .iter()
            .find(|f| f.name == "core::fmt::write")
            .unwrap();
        assert_eq!(write.self_samples, 20);
        assert_eq!(
            write.called_by,
            [
                ("base64::encode".to_owned(), 12),
                ("auth_service::handlers::tokens::issue".to_owned(), 8)
            ]
        );
    }

    #[test]
    fn markdown_has_the_contract_layout() {
        let rows = vec![("trigger".to_owned(), "manual".to_owned())];
        let md = render(&synthetic(), &rows);
        let expected_head = "# CPU Profile\n\n| Duration | Samples | Interval | Functions |\n\
            |----------|---------|----------|-----------|\n| 2.82s | 100 | 10.1ms | 5 |\n\n\
            **Top 10:** `auth_service::jwt::sign` 50.0%, ";
        assert!(md.starts_with(expected_head), "{md}");
        for section in [
            "\n## Hot Functions (Self Time)\n\n| Self% | Self | Total% | Total | Function | Location |\n|------:|-----:|-------:|------:|----------|----------|\n",
            "\n## Call Tree (Total Time)\n\n| Total% | Total | Self% | Self | Function | Location |\n|-------:|------:|------:|-----:|----------|----------|\n",
            "\n## Function Details\n\n### `auth_service::jwt::sign`\n`src/jwt.rs:42` | Self: 50.0% (505.1ms) | Total: 82.0% (828.3ms) | Samples: 82\n",
            "**Called by:**\n- `auth_service::handlers::tokens::issue` (82)\n",
            "\n## Files\n\n| Self% | Self | File |\n|------:|-----:|------|\n| 50.0% | 505.1ms | `src/jwt.rs` |\n",
            "\n## Profile Metadata\n\n| Field | Value |\n|-------|-------|\n| trigger | manual |\n",
            "| 50.0% | 505.1ms | 82.0% | 828.3ms | `auth_service::jwt::sign` | `src/jwt.rs:42` |\n",
        ] {
            assert!(md.contains(section), "missing {section:?} in\n{md}");
        }
        // The tree: lang_start trimmed, issue at depth 0, sign at depth 1 (two spaces), the
        // recursive sign at depth 2.
        assert!(
            md.contains(
                "| 100.0% | 1.01s | 10.0% | 101.0ms | `auth_service::handlers::tokens::issue` |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| 82.0% | 828.3ms | 30.0% | 303.0ms |   `auth_service::jwt::sign` |"),
            "{md}"
        );
        assert!(
            md.contains("| 20.0% | 202.0ms | 20.0% | 202.0ms |     `auth_service::jwt::sign` |"),
            "{md}"
        );
    }

    #[test]
    fn hot_function_self_percentages_sum_to_100() {
        let md = render(&synthetic(), &[]);
        let section = md
            .split("## Hot Functions (Self Time)")
            .nth(1)
            .unwrap()
            .split("\n## ")
            .next()
            .unwrap();
        let sum: f64 = section
            .lines()
            .skip(3)
            .filter(|l| l.starts_with("| "))
            .map(|l| l[2..].split('%').next().unwrap().parse::<f64>().unwrap())
            .sum();
        assert!((sum - 100.0).abs() < 0.5, "{sum}");
    }

    #[test]
    fn durations_use_adaptive_units() {
        let cases = [
            (534.5e6, "534.5ms"),
            (1.29e9, "1.29s"),
            (983e3, "983us"),
            (10.1e6, "10.1ms"),
        ];
        for (ns, expected) in cases {
            assert_eq!(format_duration_ns(ns), expected);
        }
    }

    #[test]
    fn empty_profile_renders() {
        let mut profile = synthetic();
        profile.stacks.clear();
        let md = render(&profile, &[]);
        assert!(md.contains("| 2.82s | 0 | 10.1ms | 0 |"), "{md}");
    }
}
