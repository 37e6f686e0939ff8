//! Artifact files: their names (`CPU.<ts>.<pid>.md`, `<prefix>.cpu-prof.md`, …), atomic
//! writes, the start-up writability check, and listing what is on disk.
//!
//! Every write goes to a hidden temp file in the target directory and is renamed over the final
//! name, so a crash or SIGKILL never leaves a partial file under a final name (only a
//! `.name.tmp-*` leftover). Knows nothing about report contents.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::profiling::ProfilingError;

/// How the files of one session are named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Naming {
    /// `CPU.<ts>.<pid>.md`, `CPU.<ts>.<pid>.pb.gz`, `CPU.<ts>.<pid>.svg`, `Heap.<ts>.<pid>.md`,
    /// `Heap.<ts>.<pid>.pb.gz`; `<ts>` is `YYYYMMDD_HHMMSS`, with `_mmm` millis added only when
    /// the plain name is already taken.
    Standard,
    /// `<prefix>.cpu-prof.md`, `.cpu-prof.pb.gz`, `.cpu-prof.svg`, `.heap-prof.md`,
    /// `.heap-prof.pb.gz` (SLA sessions and scenarios).
    Prefix(String),
    /// `--cpu-prof-name NAME`: the CPU Markdown is `NAME` (`.md` added when missing), the pprof
    /// and SVG files share its stem; heap files keep the standard names.
    CpuName(String),
}

/// The kinds of file a session can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    CpuMarkdown,
    CpuPprof,
    CpuSvg,
    HeapMarkdown,
    HeapPprof,
}

impl ArtifactKind {
    pub fn is_cpu(self) -> bool {
        matches!(
            self,
            ArtifactKind::CpuMarkdown | ArtifactKind::CpuPprof | ArtifactKind::CpuSvg
        )
    }

    fn standard_suffix(self) -> (&'static str, &'static str) {
        match self {
            ArtifactKind::CpuMarkdown => ("CPU", "md"),
            ArtifactKind::CpuPprof => ("CPU", "pb.gz"),
            ArtifactKind::CpuSvg => ("CPU", "svg"),
            ArtifactKind::HeapMarkdown => ("Heap", "md"),
            ArtifactKind::HeapPprof => ("Heap", "pb.gz"),
        }
    }

    fn prefix_suffix(self) -> &'static str {
        match self {
            ArtifactKind::CpuMarkdown => "cpu-prof.md",
            ArtifactKind::CpuPprof => "cpu-prof.pb.gz",
            ArtifactKind::CpuSvg => "cpu-prof.svg",
            ArtifactKind::HeapMarkdown => "heap-prof.md",
            ArtifactKind::HeapPprof => "heap-prof.pb.gz",
        }
    }
}

/// File names for one session's artifacts, decided once when the session ends.
pub struct Names {
    naming: Naming,
    timestamp: String,
    pid: u32,
}

impl Names {
    /// Picks the timestamp: seconds resolution, or with millis when a file of that second
    /// already exists in `dir` (two sessions within one second).
    pub fn new(naming: Naming, dir: &Path, started: SystemTime, pid: u32) -> Names {
        let since = started
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let seconds = crate::timefmt::compact_timestamp(since.as_secs() as i64);
        let plain = Names {
            naming: naming.clone(),
            timestamp: seconds.clone(),
            pid,
        };
        let kinds = [
            ArtifactKind::CpuMarkdown,
            ArtifactKind::CpuPprof,
            ArtifactKind::CpuSvg,
            ArtifactKind::HeapMarkdown,
            ArtifactKind::HeapPprof,
        ];
        let taken = kinds.iter().any(|kind| {
            let name = plain.file_name(*kind);
            name.starts_with("CPU.") || name.starts_with("Heap.")
        }) && kinds
            .iter()
            .any(|kind| dir.join(plain.file_name(*kind)).exists());
        if !taken {
            return plain;
        }
        Names {
            naming,
            timestamp: format!("{seconds}_{:03}", since.subsec_millis()),
            pid,
        }
    }

    pub fn file_name(&self, kind: ArtifactKind) -> String {
        let standard = |kind: ArtifactKind| {
            let (head, ext) = kind.standard_suffix();
            format!("{head}.{}.{}.{ext}", self.timestamp, self.pid)
        };
        match &self.naming {
            Naming::Standard => standard(kind),
            Naming::Prefix(prefix) => format!("{prefix}.{}", kind.prefix_suffix()),
            Naming::CpuName(name) if kind.is_cpu() => {
                let stem = name.strip_suffix(".md").unwrap_or(name);
                match kind {
                    ArtifactKind::CpuMarkdown => format!("{stem}.md"),
                    ArtifactKind::CpuPprof => format!("{stem}.pb.gz"),
                    _ => format!("{stem}.svg"),
                }
            }
            Naming::CpuName(_) => standard(kind),
        }
    }
}

/// Writes `bytes` to `path` atomically: hidden temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ProfilingError> {
    let io_error = |source: io::Error| ProfilingError::Io {
        path: path.to_path_buf(),
        source: Arc::new(source),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut random = [0u8; 4];
    crate::ids::fill_random(&mut random);
    let temp = dir.join(format!(
        ".{name}.tmp-{}-{:08x}",
        std::process::id(),
        u32::from_le_bytes(random)
    ));
    let result = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if let Err(err) = result {
        let _ = fs::remove_file(&temp);
        return Err(io_error(err));
    }
    Ok(())
}

/// Creates `dir` if needed and proves a file can be written there (serve calls this at start
/// for `--cpu-prof-dir` and friends, so a bad directory fails fast instead of at SIGTERM).
pub fn check_writable(dir: &Path) -> Result<(), ProfilingError> {
    fs::create_dir_all(dir).map_err(|source| ProfilingError::Io {
        path: dir.to_path_buf(),
        source: Arc::new(source),
    })?;
    let probe = dir.join(format!(".write-probe-{}", std::process::id()));
    write_atomic(&probe, b"ok")?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// One artifact file on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportFile {
    pub path: PathBuf,
    pub file_name: String,
    /// `cpu` or `heap`.
    pub kind: &'static str,
    pub size: u64,
    pub modified: SystemTime,
}

/// `cpu`/`heap` for a file name this module could have produced, `None` for anything else.
pub fn classify(file_name: &str) -> Option<&'static str> {
    if file_name.starts_with('.') {
        return None;
    }
    let known_ext = [".md", ".pb.gz", ".svg"]
        .iter()
        .any(|ext| file_name.ends_with(ext));
    if !known_ext {
        return None;
    }
    if file_name.starts_with("CPU.") || file_name.contains(".cpu-prof.") {
        Some("cpu")
    } else if file_name.starts_with("Heap.") || file_name.contains(".heap-prof.") {
        Some("heap")
    } else {
        None
    }
}

/// The artifact files directly inside `dir`, newest first. A missing directory is empty.
pub fn list_dir(dir: &Path) -> Vec<ReportFile> {
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(kind) = classify(&file_name) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        files.push(ReportFile {
            path: entry.path(),
            file_name,
            kind,
            size: meta.len(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    files.sort_by(|a, b| {
        b.modified
            .cmp(&a.modified)
            .then(a.file_name.cmp(&b.file_name))
    });
    files
}

/// The `Content-Type` to serve an artifact with.
pub fn content_type(file_name: &str) -> &'static str {
    if file_name.ends_with(".md") {
        "text/markdown; charset=utf-8"
    } else if file_name.ends_with(".svg") {
        "image/svg+xml"
    } else {
        "application/octet-stream"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "auth-service-artifacts-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn atomic_write_leaves_no_temp_file() {
        let dir = temp_dir("atomic");
        let path = dir.join("CPU.20261125_194810.42.md");
        write_atomic(&path, b"# CPU Profile\n").unwrap();
        write_atomic(&path, b"# CPU Profile\nsecond\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"# CPU Profile\nsecond\n");
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["CPU.20261125_194810.42.md"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_into_missing_dir_fails_with_the_path() {
        let err = write_atomic(Path::new("/nonexistent-dir/x.md"), b"x").unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/x.md"), "{err}");
    }

    #[test]
    fn names_follow_each_scheme() {
        let dir = temp_dir("names");
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let names = Names::new(Naming::Standard, &dir, at, 42);
        assert_eq!(
            names.file_name(ArtifactKind::CpuMarkdown),
            "CPU.20231114_221320.42.md"
        );
        assert_eq!(
            names.file_name(ArtifactKind::HeapPprof),
            "Heap.20231114_221320.42.pb.gz"
        );
        fs::write(dir.join("CPU.20231114_221320.42.md"), b"x").unwrap();
        let again = Names::new(Naming::Standard, &dir, at, 42);
        assert_eq!(
            again.file_name(ArtifactKind::CpuSvg),
            "CPU.20231114_221320_123.42.svg"
        );
        let prefix = Names::new(
            Naming::Prefix("tokens-sla-violation-x".into()),
            &dir,
            at,
            42,
        );
        assert_eq!(
            prefix.file_name(ArtifactKind::HeapMarkdown),
            "tokens-sla-violation-x.heap-prof.md"
        );
        let named = Names::new(Naming::CpuName("run1.md".into()), &dir, at, 42);
        assert_eq!(named.file_name(ArtifactKind::CpuMarkdown), "run1.md");
        assert_eq!(named.file_name(ArtifactKind::CpuPprof), "run1.pb.gz");
        assert_eq!(
            named.file_name(ArtifactKind::HeapMarkdown),
            "Heap.20231114_221320.42.md"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_artifacts_are_classified() {
        assert_eq!(classify("CPU.20231114_221320.42.md"), Some("cpu"));
        assert_eq!(classify("x.heap-prof.pb.gz"), Some("heap"));
        assert_eq!(classify(".CPU.x.md.tmp-1-2"), None);
        assert_eq!(classify("notes.md"), None);
    }
}
