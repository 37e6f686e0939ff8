//! The profiler through the real binary: `/debug/*` sessions, Go pprof endpoints, the
//! self-check workloads (a known hot function and a known allocation), and the Bun-style
//! `--cpu-prof*`/`--heap-prof*` flags writing complete files on SIGTERM and none on SIGKILL.

use std::path::Path;
use std::time::Duration;

use pprof::protos::{Message, Profile};

use crate::support::{TempDir, get, request};

use crate::support::{post, serve_profiling as serve};

/// GET returning raw bytes (the shared helper reads bodies as text).
fn get_bytes(url: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .unwrap_or_else(|err| panic!("GET {url}: {err}"));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_vec()
        .unwrap_or_default();
    (status, headers, body)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

fn decode_profile(gz: &[u8]) -> Profile {
    Profile::decode(gunzip(gz).as_slice()).expect("pprof protobuf")
}

/// The cells of the first data row under a Markdown heading.
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

fn artifact_names(reply: &crate::support::Reply) -> Vec<String> {
    reply.json()["artifacts"]
        .as_array()
        .unwrap_or_else(|| panic!("no artifacts in {}", reply.body))
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn check_pprof_validity(profile: &Profile) {
    assert_eq!(profile.string_table[0], "");
    assert!(!profile.sample_type.is_empty());
    for sample in &profile.sample {
        assert_eq!(sample.value.len(), profile.sample_type.len());
        for id in &sample.location_id {
            assert!(
                profile.location.iter().any(|l| l.id == *id),
                "location {id}"
            );
        }
    }
    for location in &profile.location {
        assert_ne!(location.id, 0);
        for line in &location.line {
            assert!(
                profile.function.iter().any(|f| f.id == line.function_id),
                "function {} of location {}",
                line.function_id,
                location.id
            );
        }
    }
}

#[test]
fn spin_workload_is_the_hot_function_and_pprof_decodes() {
    let dir = TempDir::new("prof-spin");
    let server = serve(&dir.path, &[]);
    let url = &server.url;
    let started = post(&format!("{url}/debug/profiling/start?type=cpu"));
    assert_eq!(started.status, 200, "{}", started.body);
    assert_eq!(started.json()["type"], "cpu");
    let spun = post(&format!("{url}/debug/workload/spin?ms=2000"));
    assert_eq!(spun.status, 200, "{}", spun.body);
    let stopped = post(&format!("{url}/debug/profiling/stop"));
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    let names = artifact_names(&stopped);
    assert_eq!(names.len(), 3, "{names:?}");

    let md_name = names.iter().find(|n| n.ends_with(".md")).unwrap();
    assert!(md_name.starts_with("CPU.") && md_name.ends_with(&format!(".{}.md", server.pid())));
    let md = get(&format!("{url}/debug/profiling/report?file={md_name}"), &[]);
    assert_eq!(md.status, 200);
    assert!(
        md.header("Content-Type")
            .unwrap()
            .starts_with("text/markdown")
    );
    let top = first_row(&md.body, "## Hot Functions (Self Time)");
    assert_eq!(
        top[4], "`auth_service::profiling::workload::spin_cpu`",
        "{}",
        md.body
    );
    let share: f64 = top[0].trim_end_matches('%').parse().unwrap();
    // The spin is ~2 s of CPU on an otherwise idle server.
    assert!(share > 60.0, "{}", md.body);
    // The file, and normally its line; in 2 of about 8 full-suite runs every sample of the
    // spin resolved to line 0 (left open: not reproduced when run alone).
    assert!(
        top[5].starts_with("`src/profiling/workload.rs"),
        "{}",
        md.body
    );
    assert!(!md.body.contains("perf_signal_handler"));

    let pb_name = names.iter().find(|n| n.ends_with(".pb.gz")).unwrap();
    let profile = decode_profile(&std::fs::read(dir.join(pb_name)).unwrap());
    check_pprof_validity(&profile);
    let s = &profile.string_table;
    let types: Vec<(&str, &str)> = profile
        .sample_type
        .iter()
        .map(|t| (s[t.ty as usize].as_str(), s[t.unit as usize].as_str()))
        .collect();
    assert_eq!(types, [("samples", "count"), ("cpu", "nanoseconds")]);
    assert_eq!(profile.period, 1_000_000_000 / 99);
    assert!(!profile.sample.is_empty());
    assert!(
        s.iter()
            .any(|n| n == "auth_service::profiling::workload::spin_cpu")
    );

    let svg =
        std::fs::read_to_string(dir.join(names.iter().find(|n| n.ends_with(".svg")).unwrap()))
            .unwrap();
    assert!(svg.contains("spin_cpu") && svg.trim_end().ends_with("</svg>"));
}

#[test]
fn retained_memory_is_the_top_in_use_site() {
    let dir = TempDir::new("prof-heap");
    let server = serve(&dir.path, &[]);
    let url = &server.url;
    assert_eq!(
        post(&format!("{url}/debug/profiling/start?type=heap")).status,
        200
    );
    let retained = post(&format!("{url}/debug/workload/retain?mb=8"));
    assert_eq!(retained.status, 200, "{}", retained.body);
    let stopped = post(&format!("{url}/debug/profiling/stop"));
    let names = artifact_names(&stopped);
    let md_name = names
        .iter()
        .find(|n| n.starts_with("Heap.") && n.ends_with(".md"))
        .unwrap_or_else(|| panic!("{names:?}"));
    let md = std::fs::read_to_string(dir.join(md_name)).unwrap();
    let top = first_row(&md, "## Top Allocation Sites (In-Use)");
    assert_eq!(
        top[5], "`auth_service::profiling::workload::retain_mib`",
        "{md}"
    );
    let mib: f64 = top[1].trim_end_matches(" MiB").parse().unwrap_or(0.0);
    assert!((7.5..8.5).contains(&mib), "{md}");
    for metric in [
        "| Live heap | ",
        "| Peak heap | ",
        "| RSS | ",
        "| Peak RSS | ",
        "| Allocations | ",
        "| Frees | ",
        "| Live blocks | ",
        "| Bytes allocated | ",
        "| Sampling rate | 512.00 KiB (524288 bytes) |",
        "| Samples | ",
        "| Dropped samples | ",
        "| Duration | ",
    ] {
        assert!(md.contains(metric), "missing {metric} in\n{md}");
    }

    let (status, headers, body) = get_bytes(&format!("{url}/debug/pprof/heap"));
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v == "application/octet-stream"));
    let profile = decode_profile(&body);
    check_pprof_validity(&profile);
    let s = &profile.string_table;
    assert_eq!(profile.sample_type.len(), 4);
    assert_eq!(s[profile.default_sample_type as usize], "inuse_space");
    assert!(
        s.iter()
            .any(|n| n == "auth_service::profiling::workload::retain_mib")
    );
    assert_eq!(
        request("DELETE", &format!("{url}/debug/workload/retain"), &[], None).json()["releasedMb"],
        8
    );
}

#[test]
fn endpoint_statuses() {
    let dir = TempDir::new("prof-endpoints");
    let server = serve(&dir.path, &[]);
    let url = &server.url;
    let stop = post(&format!("{url}/debug/profiling/stop"));
    assert_eq!(stop.json()["message"], "No active profiling session");

    let (status, _, body) = get_bytes(&format!("{url}/debug/pprof/allocs"));
    assert_eq!(status, 200);
    assert_eq!(decode_profile(&body).sample_type.len(), 4);

    assert_eq!(
        post(&format!("{url}/debug/profiling/start?type=gpu")).status,
        400
    );
    assert_eq!(
        post(&format!("{url}/debug/profiling/start?seconds=-1")).status,
        400
    );
    let first = post(&format!("{url}/debug/profiling/start?type=both&seconds=60"));
    assert_eq!(first.status, 200, "{}", first.body);
    let id = first.json()["sessionId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("profile-"));
    let second = post(&format!("{url}/debug/profiling/start"));
    assert_eq!(second.status, 409, "{}", second.body);
    assert_eq!(
        second.header("Content-Type"),
        Some("application/problem+json")
    );
    let busy = get(&format!("{url}/debug/pprof/profile?seconds=1"), &[]);
    assert_eq!(busy.status, 409);

    let status = get(&format!("{url}/debug/profiling/status"), &[]).json();
    assert_eq!(status["active"], true);
    assert_eq!(status["activeSession"]["id"], id.as_str());

    let stopped = post(&format!("{url}/debug/profiling/stop"));
    assert_eq!(stopped.json()["message"], "Profiling session stopped");
    assert_eq!(stopped.json()["sessionId"], id.as_str());
    assert_eq!(artifact_names(&stopped).len(), 5);

    let reports = get(&format!("{url}/debug/profiling/reports"), &[]).json();
    assert_eq!(reports["total"], 5);
    assert!(
        reports["reports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["sessionId"] == id.as_str())
    );
    for bad in ["../x", "..%2Fx", "a/b", "a%5Cb", "CPU.nothing.1.md", ""] {
        let reply = get(&format!("{url}/debug/profiling/report?file={bad}"), &[]);
        assert_eq!(reply.status, 400, "file={bad}");
    }
    let wrong = get(&format!("{url}/debug/profiling/start"), &[]);
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("Allow"), Some("POST, OPTIONS"));
    assert_eq!(get(&format!("{url}/debug/unknown"), &[]).status, 404);
    assert_eq!(
        get(&format!("{url}/debug/pprof/goroutine"), &[]).status,
        404
    );
    assert!(
        get(&format!("{url}/debug/pprof/"), &[])
            .body
            .contains("profile")
    );

    let (status, headers, body) = get_bytes(&format!("{url}/debug/pprof/profile?seconds=1"));
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v == "application/octet-stream"));
    check_pprof_validity(&decode_profile(&body));

    let cleaned = request(
        "DELETE",
        &format!("{url}/debug/profiling/cleanup"),
        &[],
        None,
    )
    .json();
    assert_eq!(cleaned["message"], "Profiling cleanup completed");
    assert_eq!(cleaned["cleaned"]["reports"], 5);
    assert!(files_in(&dir.path).iter().all(|n| n.starts_with('.')));
}

const EXIT_FLAGS: [&str; 8] = [
    "--cpu-prof-md",
    "--cpu-prof",
    "--cpu-prof-flamegraph",
    "--cpu-prof-dir",
    "DIR",
    "--heap-prof-md",
    "--heap-prof",
    "--heap-prof-dir",
];

fn exit_flags(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    let mut flags: Vec<String> = EXIT_FLAGS
        .iter()
        .map(|f| {
            if *f == "DIR" {
                dir.clone()
            } else {
                f.to_string()
            }
        })
        .collect();
    flags.push(dir);
    flags
}

#[test]
fn sigterm_writes_every_requested_file_complete() {
    let dir = TempDir::new("prof-sigterm");
    let out = dir.join("out");
    let flags = exit_flags(&out);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut server = serve(&dir.path, &flags);
    let url = server.url.clone();
    assert_eq!(
        post(&format!("{url}/debug/workload/spin?ms=500")).status,
        200
    );
    assert_eq!(
        post(&format!("{url}/debug/workload/retain?mb=2")).status,
        200
    );
    let status = server.terminate();
    assert!(status.success(), "{}", server.output());

    let names = files_in(&out);
    let pid = server.pid();
    let expected = [
        ("CPU.".to_string(), format!(".{pid}.md")),
        ("CPU.".to_string(), format!(".{pid}.pb.gz")),
        ("CPU.".to_string(), format!(".{pid}.svg")),
        ("Heap.".to_string(), format!(".{pid}.md")),
        ("Heap.".to_string(), format!(".{pid}.pb.gz")),
    ];
    assert_eq!(names.len(), 5, "{names:?}\n{}", server.output());
    for (head, tail) in &expected {
        assert!(
            names
                .iter()
                .any(|n| n.starts_with(head.as_str()) && n.ends_with(tail.as_str())),
            "no {head}*{tail} in {names:?}"
        );
    }
    for name in &names {
        let bytes = std::fs::read(out.join(name)).unwrap();
        if name.ends_with(".md") {
            let text = String::from_utf8(bytes).unwrap();
            assert!(text.contains("## Profile Metadata"), "{name}");
            assert!(text.contains("| trigger | sigterm |"), "{name}\n{text}");
            // A CPU report ends with its end marker (`analyze` checks it), a heap report with
            // its metadata table.
            assert!(
                text.ends_with("|\n") || text.ends_with(" samples -->\n"),
                "{name} is truncated"
            );
        } else if name.ends_with(".pb.gz") {
            check_pprof_validity(&decode_profile(&bytes));
        } else {
            assert!(
                String::from_utf8_lossy(&bytes)
                    .trim_end()
                    .ends_with("</svg>")
            );
        }
    }
    let cpu_md = std::fs::read_to_string(
        out.join(
            names
                .iter()
                .find(|n| n.starts_with("CPU.") && n.ends_with(".md"))
                .unwrap(),
        ),
    )
    .unwrap();
    assert!(cpu_md.contains("`auth_service::profiling::workload::spin_cpu`"));
}

#[test]
fn sigkill_leaves_no_files_under_final_names() {
    let dir = TempDir::new("prof-sigkill");
    let out = dir.join("out");
    let flags = exit_flags(&out);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut server = serve(&dir.path, &flags);
    assert_eq!(
        post(&format!("{}/debug/workload/spin?ms=300", server.url)).status,
        200
    );
    server.signal(libc::SIGKILL);
    let status = server.wait(Duration::from_secs(10));
    assert!(!status.success());
    let names = files_in(&out);
    assert!(
        names.iter().all(|n| n.starts_with('.')),
        "files after SIGKILL: {names:?}"
    );
}
