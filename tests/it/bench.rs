//! `auth-service bench` end to end with the builtin load generator and tiny windows. Timing
//! decides every number, so this only checks that the run finishes and the report has every row.

use std::fs;

use crate::support::{self, TempDir};

#[test]
fn quick_builtin_bench_writes_every_row() {
    let dir = TempDir::new("bench-quick");
    let results = dir.join("results").display().to_string();
    let run = support::run(
        Some(&dir.path),
        &[
            "bench",
            "--quick",
            "--tool",
            "builtin",
            "--pairs",
            "1",
            "--overhead-pairs",
            "1",
            "--window",
            "0.2",
            "--results-dir",
            &results,
        ],
        &[],
    );
    assert_eq!(run.code(), 0, "{run:?}");
    let files: Vec<_> = fs::read_dir(dir.join("results"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("bench-") && name.ends_with(".md"),
        "{name}"
    );
    let report = fs::read_to_string(&files[0]).unwrap();
    for row in [
        "/tokens ÷ /health/live rps, c16",
        "/tokens/validate ÷ /health/live rps, c16",
        "/health ÷ /health/live rps, c16",
        "/tokens ÷ /health/live rps, c64",
        "/tokens/validate ÷ /health/live rps, c64",
        "/health ÷ /health/live rps, c64",
        "/tokens p99 latency, c64",
        "CPU profiling session at 99 Hz (/tokens)",
        "heap profiling session (/tokens)",
        "SLA monitor, CONTINUOUS_PROFILING_ENABLED=true (/tokens)",
        "allocator wrapper vs System allocator (/tokens)",
        "OpenTelemetry OTLP export, 100 % sampling (/tokens)",
        "OpenTelemetry OTLP export, collector down (/tokens)",
        "RSS idle (after start)",
        "RSS at the end of c64 load",
        "RSS after load (settled)",
        "peak RSS (VmHWM) without a session",
        "RSS with a CPU+heap session under load",
        "RSS after the profiling session",
        "RSS exporting OTLP (100 % sampling) under load",
        "peak RSS (VmHWM) at the end",
        "cold start to /health/ready 200",
    ] {
        assert!(
            report.contains(&format!("| {row} |")),
            "no row {row} in\n{report}"
        );
    }
    assert!(report.contains("builtin loadgen"), "{report}");
    assert!(run.stdout.contains("| Measure |"), "{run:?}");
}
