//! End-to-end checks of the engine without the HTTP server: real CPU sessions (SIGPROF) and
//! the real heap sampler, writing real files into a temp directory.

use super::*;
use crate::profiling::alloc::CountingAlloc;
use crate::profiling::alloc::tests::SAMPLER_TESTS;
use flate2::read::GzDecoder;
use pprof::protos::Message;
use std::alloc::{GlobalAlloc, Layout};
use std::io::Read;
use std::sync::atomic::AtomicBool;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("auth-service-prof-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn manual(kind: SessionKind, dir: &Path, seconds: Option<u64>) -> SessionRequest {
    SessionRequest {
        kind,
        trigger: Trigger::Manual,
        output: OutputSpec {
            dir: dir.to_path_buf(),
            naming: Naming::Standard,
            formats: Formats::all(),
        },
        seconds,
    }
}

fn profiler(dir: &Path) -> Arc<Profiler> {
    Profiler::new(ProfilerSettings {
        manual_dir: dir.to_path_buf(),
        ..ProfilerSettings::default()
    })
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

/// The first data row of a Markdown table section, split into trimmed cells.
fn first_row(md: &str, heading: &str) -> Vec<String> {
    let section = md
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("no {heading} in\n{md}"));
    let row = section
        .lines()
        .filter(|l| l.starts_with('|'))
        .nth(2)
        .unwrap_or_else(|| panic!("no rows under {heading} in\n{md}"));
    row.trim_matches('|')
        .split(" | ")
        .map(|c| c.trim().to_owned())
        .collect()
}

#[test]
fn cpu_session_finds_the_spinning_function() {
    let _serial = SAMPLER_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir("cpu");
    let profiler = profiler(&dir);
    let info = profiler
        .start(manual(SessionKind::Cpu, &dir, None))
        .unwrap();
    assert!(info.id.starts_with("profile-"));
    assert!(profiler.is_active());
    // One session at a time.
    assert!(matches!(
        profiler.start(manual(SessionKind::Heap, &dir, None)),
        Err(ProfilingError::Busy)
    ));
    workload::spin_cpu(Duration::from_millis(1500));
    let finished = profiler.stop().unwrap().expect("a session was running");
    assert!(!profiler.is_active());
    assert_eq!(finished.artifacts.len(), 3, "{finished:?}");
    assert_eq!(profiler.sessions_total(TriggerKind::Manual), 1);
    assert!(profiler.stop().unwrap().is_none());

    let md_path = &finished.artifacts[0].path;
    let name = md_path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("CPU.") && name.ends_with(&format!(".{}.md", std::process::id())));
    let md = std::fs::read_to_string(md_path).unwrap();
    if std::env::var_os("SHOW_REPORTS").is_some() {
        println!("{md}");
    }
    // Other unit tests run in this process at the same time and are sampled too, so the
    // spinning function need not be the very top row here (the integration test checks that
    // on a quiet server); it must be present with a large share and the right location.
    let hot = md
        .split("## Hot Functions (Self Time)")
        .nth(1)
        .unwrap_or_else(|| panic!("no hot functions in\n{md}"));
    let row: Vec<String> = hot
        .lines()
        .find(|line| line.contains("`auth_service::profiling::workload::spin_cpu`"))
        .unwrap_or_else(|| panic!("spin_cpu not sampled:\n{md}"))
        .trim_matches('|')
        .split(" | ")
        .map(|cell| cell.trim().to_owned())
        .collect();
    // The file, and normally its line: now and then every sample of the spin resolves to line 0
    // (left open, see the integration test of the same workload).
    assert!(row[5].starts_with("`src/profiling/workload.rs"), "{md}");
    let self_share: f64 = row[0].trim_end_matches('%').parse().unwrap();
    assert!(self_share > 25.0, "{md}");
    assert!(md.contains("| trigger | manual |"), "{md}");
    assert!(md.contains("| blocklist | libgcc, vdso |"), "{md}");
    assert!(!md.contains("perf_signal_handler"), "{md}");
    assert!(!md.contains("::h0"), "hash suffix left in\n{md}");

    let pb = std::fs::read(&finished.artifacts[1].path).unwrap();
    let proto = pprof::protos::Profile::decode(gunzip(&pb).as_slice()).unwrap();
    assert!(!proto.sample.is_empty());
    assert_eq!(proto.period, 1_000_000_000 / 99);
    for location in &proto.location {
        for line in &location.line {
            assert!(proto.function.iter().any(|f| f.id == line.function_id));
        }
    }
    let svg = std::fs::read_to_string(&finished.artifacts[2].path).unwrap();
    assert!(svg.contains("spin_cpu"));

    // The reports list and cleanup see exactly these files.
    let reports = profiler.reports();
    assert_eq!(reports.len(), 3);
    assert!(
        reports
            .iter()
            .all(|r| r.session_id.as_deref() == Some(info.id.as_str()))
    );
    let cleaned = profiler.cleanup().unwrap();
    assert_eq!((cleaned.reports, cleaned.sessions), (3, 1));
    assert_eq!(cleaned.stopped, None);
    assert!(profiler.reports().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn auto_stop_writes_artifacts_and_pprof_returns_bytes() {
    let _serial = SAMPLER_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir("auto");
    let profiler = profiler(&dir);
    let mut request = manual(SessionKind::Cpu, &dir, Some(1));
    request.output.naming = Naming::Prefix("tokens-sla-violation-x".into());
    request.trigger = Trigger::Sla(SlaContext {
        route: "/tokens".into(),
        p95_ms: 120.5,
        p99_ms: 250.0,
        threshold_p95_ms: 100.0,
        threshold_p99_ms: 200.0,
        window_samples: 100,
    });
    profiler.start(request).unwrap();
    workload::spin_cpu(Duration::from_millis(1300));
    let md_path = dir.join("tokens-sla-violation-x.cpu-prof.md");
    let deadline = Instant::now() + Duration::from_secs(30);
    while profiler.is_active() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(!profiler.is_active());
    let md = std::fs::read_to_string(&md_path).unwrap();
    assert!(md.contains("| trigger | sla |\n"), "{md}");
    assert!(
        md.contains("| route | /tokens |\n| p95_ms | 120.5 |"),
        "{md}"
    );
    assert!(dir.join("tokens-sla-violation-x.cpu-prof.pb.gz").exists());
    assert_eq!(profiler.status().last.unwrap().artifacts.len(), 3);

    // Spins until the pprof session is over, so it has samples to return.
    let done = Arc::new(AtomicBool::new(false));
    let spinner = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                workload::spin_cpu(Duration::from_millis(50));
            }
        })
    };
    let bytes = profiler.cpu_pprof_for(1).unwrap();
    done.store(true, Ordering::Relaxed);
    spinner.join().unwrap();
    let proto = pprof::protos::Profile::decode(gunzip(&bytes).as_slice()).unwrap();
    assert!(!proto.sample.is_empty());
    assert_eq!(profiler.sessions_total(TriggerKind::Pprof), 1);
    // The pprof session wrote no files.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Calls the allocator directly (the test binary's global allocator is `System`), as a request
/// handler would through `Vec`.
#[inline(never)]
fn plant(allocator: &CountingAlloc, layout: Layout) -> *mut u8 {
    // SAFETY: non-zero layout; the caller frees it with the same layout.
    unsafe { allocator.alloc(layout) }
}

#[inline(never)]
fn churn(allocator: &CountingAlloc) {
    let layout = Layout::from_size_align(1024, 8).unwrap();
    for _ in 0..4096 {
        // SAFETY: allocate and free with the same layout.
        unsafe {
            let p = allocator.alloc(layout);
            allocator.dealloc(std::hint::black_box(p), layout);
        }
    }
}

#[test]
fn heap_session_reports_the_planted_allocation() {
    let _serial = SAMPLER_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir("heap");
    let profiler = profiler(&dir);
    let allocator = CountingAlloc::new();
    let before = alloc::heap_stats();
    profiler
        .start(manual(SessionKind::Heap, &dir, None))
        .unwrap();
    let big = Layout::from_size_align(8 << 20, 16).unwrap();
    let planted = plant(&allocator, big);
    churn(&allocator);
    thread::sleep(Duration::from_millis(1100));
    let finished = profiler.stop().unwrap().unwrap();
    // SAFETY: allocated by `plant` with `big`.
    unsafe { allocator.dealloc(planted, big) };

    assert_eq!(finished.artifacts.len(), 2, "{finished:?}");
    let md = std::fs::read_to_string(&finished.artifacts[0].path).unwrap();
    assert!(md.starts_with("# Heap Profile\n\n## Summary\n"), "{md}");
    if std::env::var_os("SHOW_REPORTS").is_some() {
        println!("{md}");
    }
    let top = first_row(&md, "## Top Allocation Sites (In-Use)");
    assert_eq!(top[5], "`auth_service::profiling::tests::plant`", "{md}");
    assert_eq!(top[1], "8.00 MiB", "{md}");
    assert!(md.contains("| Allocations | "), "{md}");
    assert!(md.contains("## Growth Over Time"), "{md}");
    assert!(md.contains("| 1s | "), "timeline tick missing\n{md}");
    let live_line = md.lines().find(|l| l.starts_with("| Live heap |")).unwrap();
    let live =
        crate::tools::units::parse_bytes(live_line.split('|').nth(2).unwrap()).unwrap() as u64;
    assert!(live >= before.live_bytes + (8 << 20), "{live_line}");

    let pb = std::fs::read(&finished.artifacts[1].path).unwrap();
    let proto = pprof::protos::Profile::decode(gunzip(&pb).as_slice()).unwrap();
    assert_eq!(proto.sample_type.len(), 4);
    // Unbiasing scales an 8 MiB block by 1/(1-e^-16): a byte at most.
    assert!(
        proto
            .sample
            .iter()
            .any(|s| (s.value[3] - (8 << 20)).abs() <= 1)
    );

    // A finished session's pprof is kept as written: serving it symbolizes nothing again.
    assert_eq!(profiler.heap_pprof(HeapView::InUse), pb);

    // After the session the last sites stay available to /debug/pprof/heap, now freed.
    let snapshot = profiler.heap_snapshot();
    let planted_site = snapshot
        .sites
        .iter()
        .find(|s| s.function() == "auth_service::profiling::tests::plant")
        .unwrap();
    assert!((planted_site.alloc_bytes - (8 << 20) as f64).abs() <= 1.0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn heap_pprof_without_a_session_is_a_valid_empty_profile() {
    let dir = temp_dir("empty");
    let profiler = profiler(&dir);
    let bytes = profiler.heap_pprof(HeapView::Allocated);
    let proto = pprof::protos::Profile::decode(gunzip(&bytes).as_slice()).unwrap();
    assert!(proto.sample.is_empty());
    assert_eq!(proto.sample_type.len(), 4);
    let s = &proto.string_table;
    assert_eq!(s[proto.default_sample_type as usize], "alloc_space");
    assert!(
        proto
            .comment
            .iter()
            .any(|c| s[*c as usize].starts_with("heap_live_bytes="))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_requests_are_refused() {
    let dir = temp_dir("bad");
    let profiler = profiler(&dir);
    let err = profiler
        .start(manual(SessionKind::Cpu, &dir, Some(0)))
        .unwrap_err();
    assert!(matches!(err, ProfilingError::InvalidRequest(_)), "{err}");
    assert!(check_writable(&dir.join("nested/dir")).is_ok());
    assert!(check_writable(Path::new("/proc/forbidden")).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
