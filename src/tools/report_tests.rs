//! Unit tests of `report` (kept apart so `report.rs` stays readable).
use super::*;

const OURS: &str = "# CPU Profile

| Duration | Samples | Interval | Functions |
|----------|---------|----------|-----------|
| 2.82s | 279 | 10.1ms | 52 |

**Top 10:** `auth_service::jwt::sign` 18.9%, `core::fmt::write` 10.0%

## Hot Functions (Self Time)

| Self% | Self | Total% | Total | Function | Location |
|------:|-----:|-------:|------:|----------|----------|
| 18.9% | 534.5ms | 40.0% | 1.13s | `auth_service::jwt::sign` | `src/jwt.rs:42` |
| 10.0% | 282.0ms | 12.0% | 338.4ms | `core::fmt::write` | `[unknown]` |
| 1.1% | 31.0ms | 40.0% | 1.13s | `auth_service::jwt::sign` | `src/jwt.rs:50` |

## Call Tree (Total Time)

| Total% | Total | Self% | Self | Function | Location |
|-------:|------:|------:|-----:|----------|----------|
| 40.0% | 1.13s | 18.9% | 534.5ms | `  auth_service::jwt::sign` | `src/jwt.rs:42` |

## Files

| Self% | Self | File |
|------:|-----:|------|
| 20.0% | 565.5ms | `src/jwt.rs` |

## Profile Metadata

| Field | Value |
|-------|-------|
| trigger | sla |
| cpu_seconds | 2.41 |
| p95_ms | 153.2 |
";

#[test]
fn our_cpu_layout() {
    let Ok(Profile::Cpu(report)) = parse(OURS) else {
        panic!("not parsed as cpu");
    };
    assert_eq!(report.layout, Some(Layout::Ours));
    assert_eq!(report.duration_s, Some(2.82));
    assert_eq!(report.samples, Some(279));
    assert_eq!(report.function_count, Some(52));
    assert_eq!(report.hot.len(), 3);
    assert_eq!(report.hot[0].function, "auth_service::jwt::sign");
    assert_eq!(report.hot[0].location, "src/jwt.rs:42");
    assert_eq!(report.cpu_seconds(), Some(2.41));
    assert_eq!(report.metadata.get("trigger"), Some("sla"));
    let functions = report.functions();
    assert_eq!(functions.len(), 2);
    assert!((functions[0].self_percent - 20.0).abs() < 1e-9);
    assert_eq!(functions[0].location, "src/jwt.rs:42");
}

#[test]
fn bun_cpu_layout() {
    let bun = "# CPU Profile\n\n| Duration | Samples | Interval | Functions |\n\
               |----------|---------|----------|-----------|\n| 2.82s | 1821 | 1.0ms | 522 |\n\n\
               ## Hot Functions (Self Time)\n\n| Self% | Self | Total% | Total | Function | Location |\n\
               |------:|-----:|-------:|------:|----------|----------|\n\
               | 12.0% | 338.4ms | 12.0% | 338.4ms | `(garbage collector)` | `[native code]` |\n\
               | 8.0% | 225.6ms | 30.0% | 846.0ms | `signJwt` | `auth.js:12` |\n\n\
               ## Files\n\n| Self% | Self | File |\n|------:|-----:|------|\n\
               | 60.0% | 1.09s | `[native code]` |\n| 40.0% | 728.4ms | `auth.js` |\n";
    let Ok(Profile::Cpu(report)) = parse(bun) else {
        panic!("not parsed as cpu");
    };
    // Cut anywhere before the end, a Bun profile is refused.
    for cut in [200, bun.len() - 30, bun.len() - 1] {
        assert!(
            matches!(parse(&bun[..cut]), Err(ParseError::Incomplete { .. })),
            "accepted {cut} bytes"
        );
    }
    assert_eq!(report.layout, Some(Layout::Bun));
    assert_eq!(report.interval_s, Some(0.001));
    assert_eq!(report.hot[1].location, "auth.js:12");
    assert_eq!(report.hot[0].location, "[native code]");
}

/// The writer's layout read back: whole-stack shares, our functions with no self time,
/// and the completeness rule (issue 11 items 1, 3 and 9).
#[test]
fn our_whole_stack_layout_round_trips_and_truncations_are_refused() {
    use crate::profiling::cpu::{CpuProfile, CpuStack};
    use crate::profiling::cpu_report;
    use crate::profiling::symbols::FrameInfo;
    use std::time::{Duration, SystemTime};

    let stack = |names: &[&str], thread: &str, count: u64| CpuStack {
        frames: names
            .iter()
            .map(|n| FrameInfo {
                function: (*n).to_owned(),
                file: Some("src/x.rs".into()),
                line: 1,
            })
            .collect(),
        thread_name: thread.into(),
        thread_id: 1,
        count,
    };
    let serve = "auth_service::server::adapter::serve";
    let health = "auth_service::handlers::health::health";
    let profile = CpuProfile {
        stacks: vec![
            stack(
                &[
                    "__libc_send",
                    "ureq::run",
                    "auth_service::kong::client::get",
                    serve,
                ],
                "worker-0",
                40,
            ),
            stack(
                &[
                    "__libc_send",
                    "tiny_http::conn::writer::ConnWriter::send",
                    serve,
                ],
                "worker-0",
                30,
            ),
            stack(
                &[
                    "core::core_arch::x86::sha::_mm_sha256rnds2_epu32",
                    "auth_service::jwt::sign",
                    serve,
                ],
                "worker-1",
                20,
            ),
            stack(
                &["serde_json::ser::format_escaped_str", health, serve],
                "worker-1",
                10,
            ),
        ],
        frequency: 99,
        started: SystemTime::UNIX_EPOCH,
        duration: Duration::from_secs(1),
        cpu_seconds: 1.0,
        blocklist: Vec::new(),
    };
    let rows = vec![("trigger".to_owned(), "manual".to_owned())];
    let text = cpu_report::render(&profile, &rows);
    let Ok(Profile::Cpu(report)) = parse(&text) else {
        panic!("not parsed: {text}");
    };
    assert_eq!(report.layout, Some(Layout::Ours));
    let table = report.subsystems.as_ref().expect("subsystems section");
    let samples = |key: &str| table.rows.iter().find(|r| r.key == key).unwrap().samples;
    assert_eq!(
        [
            samples("kong"),
            samples("socket_io"),
            samples("jwt"),
            samples("json")
        ],
        [40, 30, 20, 10]
    );
    assert_eq!(table.total, Some(100));
    assert_eq!(table.measures["kong_calls"], (40, 40.0));
    assert_eq!(table.rows[0].deciders, [("ureq::run".to_owned(), 40)]);
    let ours = report.our_functions();
    let health_row = ours
        .iter()
        .find(|f| f.function == health)
        .expect("0 self, listed");
    assert_eq!(
        (health_row.self_percent, health_row.total_percent),
        (0.0, Some(10.0))
    );
    assert_eq!(ours[0].function, serve);

    let mut cuts = vec![500, text.len() / 2, text.len() - 5];
    // Cut just before the end marker: the metadata is whole, the marker is not there.
    cuts.push(text.rfind(cpu_report::END_MARKER_PREFIX).unwrap());
    for cut in cuts {
        let cut = (0..=cut).rev().find(|c| text.is_char_boundary(*c)).unwrap();
        match parse(&text[..cut]) {
            Err(ParseError::Incomplete { reason }) => assert!(!reason.is_empty()),
            other => panic!("{cut} bytes: {other:?}"),
        }
    }
    // A marker that disagrees with the summary.
    let forged = text.replace(&cpu_report::end_marker(100), &cpu_report::end_marker(99));
    assert!(matches!(parse(&forged), Err(ParseError::Incomplete { .. })));
}

#[test]
fn older_profiles_of_ours_are_complete_only_up_to_their_metadata() {
    assert!(parse(OURS).is_ok());
    let without_metadata = &OURS[..OURS.find("## Profile Metadata").unwrap()];
    assert!(matches!(
        parse(without_metadata),
        Err(ParseError::Incomplete { .. })
    ));
    let mismatch = OURS.replace("| trigger | sla |", "| samples_taken | 300 |");
    assert!(matches!(
        parse(&mismatch),
        Err(ParseError::Incomplete { .. })
    ));
}

/// The heap writer's `Phase` column (`session`/`report`): growth is judged on session rows.
#[test]
fn heap_growth_leaves_out_rows_of_the_report_phase() {
    let mut text = String::from(
        "# Heap Profile\n\n## Summary\n\n| Metric | Value |\n|---|---|\n\
         | Live heap | 20.00 MiB |\n| Profiler heap | 40.00 MiB (41943040 bytes) |\n\
         | Duration | 40s |\n\n## Growth Over Time\n\n\
         | Time | Live | Δ | Allocs/s | RSS | Profiler | Phase |\n|---|---|---|---|---|---|---|\n",
    );
    for second in 0..=40 {
        text.push_str(&format!(
            "| {second}s | 20.00 MiB | +0 B | 10 | 30.00 MiB | 1.00 MiB | session |\n"
        ));
    }
    // While the report is built the live heap jumps: not the service's growth.
    text.push_str("| 40.6s | 33.00 MiB | +13.00 MiB | 10 | 60.00 MiB | 40.00 MiB | report |\n");
    let Ok(Profile::Heap(report)) = parse(&text) else {
        panic!("not parsed as heap");
    };
    assert_eq!(report.profiler_bytes, Some(40 << 20));
    assert!(report.growth.last().unwrap().report_tail);
    assert!(!report.growth[0].report_tail);
    let growth = report.growth().unwrap();
    assert!(growth.flat && growth.bytes_per_hour == 0.0, "{growth:?}");
    assert_eq!(report.steady_bytes(), Some(20 << 20));
}

#[test]
fn heap_layout() {
    let heap = "# Heap Profile\n\n## Summary\n\n| Metric | Value |\n|---|---|\n\
                | Live heap | 12.30 MiB (12897280 bytes) |\n| Allocations | 1,000 |\n| Duration | 60s |\n\n\
                ## Growth Over Time\n\n| Time | Live | Δ | Allocs/s | RSS |\n|---|---|---|---|---|\n\
                | 0s | 10.00 MiB | +0 B | 10 | 20.00 MiB |\n| 60s | 11.00 MiB | +1.00 MiB | 12 | 21.00 MiB |\n\n\
                ## Top Allocation Sites (In-Use)\n\n\
                | In-use% | In-use | Objects | Alloc% | Allocated | Function | Location |\n\
                |---:|---:|---:|---:|---:|---|---|\n\
                | 50.0% | 6.15 MiB | 1000 | 10.0% | 20.00 MiB | `lru::LruCache::put` | `lru.rs:1` |\n\n\
                ### `lru::LruCache::put`\n\n- stack\n";
    let Ok(Profile::Heap(report)) = parse(heap) else {
        panic!("not parsed as heap");
    };
    assert_eq!(report.live_bytes, Some(12_897_280));
    assert_eq!(report.allocations, Some(1000));
    assert_eq!(report.duration_s, Some(60.0));
    assert_eq!(report.growth.len(), 2);
    let growth = report.growth().expect("60 s is judged");
    assert_eq!(growth.bytes_per_hour, 60.0 * 1024.0 * 1024.0);
    assert_eq!(report.in_use[0].function, "lru::LruCache::put");
    assert_eq!(report.in_use[0].objects, Some(1000));
    assert!(report.allocated.is_empty());
}

#[test]
fn other_documents_are_errors() {
    let cases = [
        "",
        "# README\n\nhello\n",
        "# Bun Heap Profile\n\n## Summary\n",
    ];
    for text in cases {
        assert!(
            matches!(parse(text), Err(ParseError::UnknownLayout { .. })),
            "{text:?}"
        );
    }
    assert!(matches!(
        parse("# CPU Profile\n\nnothing"),
        Err(ParseError::Incomplete { .. })
    ));
}
