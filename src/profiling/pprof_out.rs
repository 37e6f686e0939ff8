//! Gzipped pprof protobuf (`.pb.gz`) for CPU and heap profiles, readable by `go tool pprof`,
//! speedscope, Pyroscope and Parca.
//!
//! CPU goes through pprof-rs's own `Report::pprof()` (fed with our symbolized, hash-free
//! frames); heap is built directly on `pprof::protos` with Go's four sample types. Pure apart
//! from compression; no I/O.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use flate2::Compression;
use flate2::write::GzEncoder;
use pprof::protos::{self, Message};

use crate::profiling::ProfilingError;
use crate::profiling::cpu::CpuProfile;
use crate::profiling::heap::HeapProfile;
use crate::profiling::symbols::FrameInfo;

/// Which sample type `go tool pprof` shows first for a heap profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapView {
    /// `/debug/pprof/heap`: live objects.
    InUse,
    /// `/debug/pprof/allocs`: everything allocated.
    Allocated,
}

/// Gzip with Go's `BestSpeed`: profiles compress well and this runs on a request thread.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 3), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// The pprof-rs `Report` for a CPU profile (also what the flamegraph is drawn from).
pub fn cpu_report(profile: &CpuProfile) -> pprof::Report {
    let mut data: HashMap<pprof::Frames, isize> = HashMap::new();
    for stack in &profile.stacks {
        let frames = pprof::Frames {
            frames: stack
                .frames
                .iter()
                .map(|frame| vec![symbol(frame)])
                .collect(),
            thread_name: stack.thread_name.clone(),
            thread_id: stack.thread_id,
            sample_timestamp: profile.started,
        };
        *data.entry(frames).or_default() += stack.count as isize;
    }
    let mut report = pprof::Report {
        data,
        timing: Default::default(),
    };
    report.timing.frequency = profile.frequency;
    report.timing.start_time = profile.started;
    report.timing.duration = profile.duration;
    report
}

fn symbol(frame: &FrameInfo) -> pprof::Symbol {
    pprof::Symbol {
        name: Some(frame.function.clone().into_bytes()),
        addr: None,
        lineno: Some(frame.line),
        filename: frame.file.as_ref().map(Into::into),
    }
}

pub fn cpu_pprof(profile: &CpuProfile) -> Result<protos::Profile, ProfilingError> {
    cpu_report(profile)
        .pprof()
        .map_err(|err| ProfilingError::Pprof(err.to_string()))
}

pub fn cpu_pprof_gz(profile: &CpuProfile) -> Result<Vec<u8>, ProfilingError> {
    let proto = cpu_pprof(profile)?;
    Ok(gzip(&proto.encode_to_vec()))
}

/// Interns strings; index 0 is the empty string, as the format requires.
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Strings {
        let mut strings = Strings {
            table: Vec::new(),
            index: HashMap::new(),
        };
        strings.id("");
        strings
    }

    fn id(&mut self, text: &str) -> i64 {
        if let Some(id) = self.index.get(text) {
            return *id;
        }
        let id = self.table.len() as i64;
        self.table.push(text.to_owned());
        self.index.insert(text.to_owned(), id);
        id
    }
}

/// Go-compatible heap profile: sample types `alloc_objects/count, alloc_space/bytes,
/// inuse_objects/count, inuse_space/bytes`, `period_type space/bytes`, `period = rate`, values
/// already unbiased, a numeric `bytes` label with the average block size. The exact counters
/// go into `comment` so an empty profile (no heap session yet) still carries them.
pub fn heap_pprof(profile: &HeapProfile, view: HeapView) -> protos::Profile {
    let mut strings = Strings::new();
    let value_type = |strings: &mut Strings, ty: &str, unit: &str| protos::ValueType {
        ty: strings.id(ty),
        unit: strings.id(unit),
    };
    let sample_type = vec![
        value_type(&mut strings, "alloc_objects", "count"),
        value_type(&mut strings, "alloc_space", "bytes"),
        value_type(&mut strings, "inuse_objects", "count"),
        value_type(&mut strings, "inuse_space", "bytes"),
    ];
    let period_type = value_type(&mut strings, "space", "bytes");
    let default_sample_type = match view {
        HeapView::InUse => strings.id("inuse_space"),
        HeapView::Allocated => strings.id("alloc_space"),
    };
    let bytes_key = strings.id("bytes");

    let mut functions: Vec<protos::Function> = Vec::new();
    let mut function_ids: HashMap<(String, Option<String>), u64> = HashMap::new();
    let mut locations: Vec<protos::Location> = Vec::new();
    let mut location_ids: HashMap<FrameInfo, u64> = HashMap::new();
    let mut samples = Vec::with_capacity(profile.sites.len());
    for site in &profile.sites {
        let mut location_id = Vec::with_capacity(site.frames.len());
        for frame in &site.frames {
            let id = match location_ids.get(frame) {
                Some(id) => *id,
                None => {
                    let key = (frame.function.clone(), frame.file.clone());
                    let function_id = match function_ids.get(&key) {
                        Some(id) => *id,
                        None => {
                            let id = functions.len() as u64 + 1;
                            let name = strings.id(&frame.function);
                            functions.push(protos::Function {
                                id,
                                name,
                                system_name: name,
                                filename: strings.id(frame.file.as_deref().unwrap_or("")),
                                start_line: 0,
                            });
                            function_ids.insert(key, id);
                            id
                        }
                    };
                    let id = locations.len() as u64 + 1;
                    locations.push(protos::Location {
                        id,
                        line: vec![protos::Line {
                            function_id,
                            line: i64::from(frame.line),
                        }],
                        ..protos::Location::default()
                    });
                    location_ids.insert(frame.clone(), id);
                    id
                }
            };
            location_id.push(id);
        }
        let average = if site.alloc_objects > 0.0 {
            (site.alloc_bytes / site.alloc_objects).round() as i64
        } else {
            0
        };
        samples.push(protos::Sample {
            location_id,
            value: vec![
                site.alloc_objects.round() as i64,
                site.alloc_bytes.round() as i64,
                site.inuse_objects.round() as i64,
                site.inuse_bytes.round() as i64,
            ],
            label: vec![protos::Label {
                key: bytes_key,
                num: average,
                num_unit: bytes_key,
                ..protos::Label::default()
            }],
        });
    }
    let stats = &profile.stats;
    let comment = [
        format!("heap_live_bytes={}", stats.live_bytes),
        format!("heap_peak_bytes={}", stats.peak_bytes),
        format!("allocations={}", stats.allocations),
        format!("frees={}", stats.frees),
        format!("bytes_allocated={}", stats.bytes_allocated),
        format!("profiler_heap_bytes={}", profile.profiler.live_bytes),
        format!("samples={}", profile.samples),
        format!("dropped_samples={}", profile.dropped),
    ]
    .iter()
    .map(|c| strings.id(c))
    .collect();
    protos::Profile {
        sample_type,
        sample: samples,
        location: locations,
        function: functions,
        string_table: strings.table,
        time_nanos: nanos_since_epoch(profile.started),
        duration_nanos: profile.duration.as_nanos() as i64,
        period_type: Some(period_type),
        period: profile.rate as i64,
        comment,
        default_sample_type,
        ..protos::Profile::default()
    }
}

pub fn heap_pprof_gz(profile: &HeapProfile, view: HeapView) -> Vec<u8> {
    gzip(&heap_pprof(profile, view).encode_to_vec())
}

fn nanos_since_epoch(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiling::alloc::HeapStats;
    use crate::profiling::cpu::CpuStack;
    use crate::profiling::heap::HeapSite;
    use flate2::read::GzDecoder;
    use std::io::Read;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        out
    }

    fn frame(function: &str, line: u32) -> FrameInfo {
        FrameInfo {
            function: function.into(),
            file: Some("src/x.rs".into()),
            line,
        }
    }

    #[test]
    fn cpu_profile_round_trips_with_clean_names() {
        let profile = CpuProfile {
            stacks: vec![CpuStack {
                frames: vec![frame("auth_service::a", 3), frame("auth_service::b", 9)],
                thread_name: "w".into(),
                thread_id: 1,
                count: 5,
            }],
            frequency: 99,
            started: SystemTime::now(),
            duration: Duration::from_secs(1),
            cpu_seconds: 0.05,
            blocklist: vec![],
        };
        let bytes = gunzip(&cpu_pprof_gz(&profile).unwrap());
        let proto = protos::Profile::decode(bytes.as_slice()).unwrap();
        let strings = &proto.string_table;
        assert_eq!(strings[0], "");
        assert_eq!(proto.period, 1_000_000_000 / 99);
        assert_eq!(proto.sample.len(), 1);
        assert_eq!(proto.sample[0].value[0], 5);
        let leaf = proto.sample[0].location_id[0];
        let location = proto.location.iter().find(|l| l.id == leaf).unwrap();
        let function = proto
            .function
            .iter()
            .find(|f| f.id == location.line[0].function_id)
            .unwrap();
        assert_eq!(strings[function.name as usize], "auth_service::a");
    }

    #[test]
    fn heap_profile_has_go_sample_types() {
        let profile = HeapProfile {
            started: SystemTime::now(),
            duration: Duration::from_secs(1),
            stats: HeapStats::default(),
            stats_at_start: HeapStats::default(),
            profiler: HeapStats::default(),
            rss_bytes: 0,
            peak_rss_bytes: 0,
            rate: 524_288,
            samples: 1,
            dropped: 0,
            threads: 1,
            timeline: vec![],
            sites: vec![HeapSite {
                frames: vec![frame("auth_service::r", 1), frame("auth_service::s", 2)],
                alloc_objects: 1.0,
                alloc_bytes: 8388608.0,
                inuse_objects: 1.0,
                inuse_bytes: 8388608.0,
                samples: 1,
            }],
        };
        let proto =
            protos::Profile::decode(gunzip(&heap_pprof_gz(&profile, HeapView::InUse)).as_slice())
                .unwrap();
        let s = &proto.string_table;
        let types: Vec<(&str, &str)> = proto
            .sample_type
            .iter()
            .map(|t| (s[t.ty as usize].as_str(), s[t.unit as usize].as_str()))
            .collect();
        assert_eq!(
            types,
            [
                ("alloc_objects", "count"),
                ("alloc_space", "bytes"),
                ("inuse_objects", "count"),
                ("inuse_space", "bytes")
            ]
        );
        assert_eq!(s[proto.default_sample_type as usize], "inuse_space");
        assert_eq!(proto.period, 524_288);
        assert_eq!(proto.sample[0].value, [1, 8388608, 1, 8388608]);
        assert_eq!(proto.sample[0].location_id.len(), 2);
    }
}
