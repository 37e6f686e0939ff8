//! `archive`: copies a run's files into `archive/<stamp>/` or `baselines/<label>/` with an
//! `archive.json` sidecar, and for a baseline also the flat `baselines/<label>.cpu-prof.md`
//! (and `.heap-prof.md`) that the profiling guide's commands restore from.
//!
//! Copies only, never moves or deletes; every write lands under the profiles dir.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::sets::is_analysis;
use super::{ProfilesDir, StorageError, valid_label};

/// What `archive` wrote.
#[derive(Debug)]
pub struct Archived {
    pub dir: PathBuf,
    pub copies: Vec<(PathBuf, PathBuf)>,
    /// Baselines only: `(source, baselines/<label>.cpu-prof.md)` and the heap one.
    pub flat: Vec<(PathBuf, PathBuf)>,
    pub sidecar: PathBuf,
}

/// Where an archive goes and what its sidecar says.
pub struct ArchiveRequest<'a> {
    /// `Some` for a baseline.
    pub label: Option<&'a str>,
    /// `YYYYMMDD_HHMMSS`, the archive dir name and the baseline suffix on a clash.
    pub stamp: &'a str,
    pub date_iso: &'a str,
    pub git_commit: Option<&'a str>,
}

/// Copies `files` (already expanded, companions included) into a new directory:
/// `baselines/<label>/` (or `baselines/<label>-<stamp>/` when that exists) for a labelled
/// archive, else `archive/<stamp>/` (`-2`, `-3`… on a clash), and writes `archive.json`.
/// A baseline also gets flat copies of its CPU and heap Markdown named after its directory
/// (`baselines/<label>.cpu-prof.md`), so `cp profiles/baselines/<label>.cpu-prof.md ...`
/// works as the guide writes it.
pub fn archive(
    profiles: &ProfilesDir,
    files: &[PathBuf],
    request: &ArchiveRequest<'_>,
) -> Result<Archived, StorageError> {
    for file in files {
        if fs::File::open(file).is_err() || !file.is_file() {
            return Err(StorageError::NotAFile { path: file.clone() });
        }
    }
    let (area, name) = match request.label {
        Some(label) => {
            if !valid_label(label) {
                return Err(StorageError::BadLabel {
                    label: label.to_owned(),
                });
            }
            ("baselines", label.to_owned())
        }
        None => ("archive", request.stamp.to_owned()),
    };
    let area_dir = profiles.area(area)?;
    let shown_area = profiles.path.join(area);
    let mut candidates = vec![name.clone()];
    if request.label.is_some() {
        candidates.push(format!("{name}-{}", request.stamp));
    }
    let base = candidates.last().expect("one candidate").clone();
    candidates.extend((2..100).map(|n| format!("{base}-{n}")));
    let mut chosen = None;
    for candidate in candidates {
        match fs::create_dir(area_dir.join(&candidate)) {
            Ok(()) => {
                chosen = Some(candidate);
                break;
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => {
                return Err(StorageError::Io {
                    action: "create",
                    path: shown_area.join(&candidate),
                    source: err,
                });
            }
        }
    }
    let chosen = chosen.ok_or_else(|| StorageError::Io {
        action: "create",
        path: shown_area.join(&name),
        source: io::Error::new(
            io::ErrorKind::AlreadyExists,
            "too many archives this second",
        ),
    })?;
    let real_dir = area_dir.join(&chosen);
    let dir = shown_area.join(&chosen);
    let mut copies = Vec::new();
    let mut names = Vec::new();
    for file in files {
        let file_name = file.file_name().expect("a file has a name");
        let target = real_dir.join(file_name);
        fs::copy(file, &target).map_err(StorageError::io("copy", file))?;
        copies.push((file.clone(), dir.join(file_name)));
        names.push(file_name.to_string_lossy().into_owned());
    }
    let sources: Vec<String> = files
        .iter()
        .map(|f| {
            fs::canonicalize(f)
                .unwrap_or_else(|_| f.clone())
                .display()
                .to_string()
        })
        .collect();
    let mut flat = Vec::new();
    if request.label.is_some() {
        for (source, suffix) in [
            (markdown_of(files, "cpu"), "cpu-prof.md"),
            (markdown_of(files, "heap"), "heap-prof.md"),
        ] {
            let Some(source) = source else { continue };
            let name = format!("{chosen}.{suffix}");
            copy_atomically(source, &area_dir.join(&name))?;
            flat.push((source.clone(), shown_area.join(&name)));
        }
    }
    let sidecar = serde_json::json!({
        "kind": if request.label.is_some() { "baseline" } else { "archive" },
        "label": request.label,
        "date": request.date_iso,
        "git_commit": request.git_commit,
        "sources": sources,
        "files": names,
        "flat": flat.iter().map(|(_, to)| to.file_name().map(|n| n.to_string_lossy().into_owned())).collect::<Vec<_>>(),
    });
    let sidecar_path = real_dir.join("archive.json");
    let text = serde_json::to_string_pretty(&sidecar).expect("json values serialize");
    fs::write(&sidecar_path, text + "\n").map_err(StorageError::io("write", &sidecar_path))?;
    Ok(Archived {
        sidecar: dir.join("archive.json"),
        dir,
        copies,
        flat,
    })
}

/// The last (by name, so the newest run) CPU or heap Markdown profile among `files`.
fn markdown_of<'a>(files: &'a [PathBuf], kind: &str) -> Option<&'a PathBuf> {
    let (prefix, suffix) = match kind {
        "cpu" => ("CPU.", ".cpu-prof.md"),
        _ => ("Heap.", ".heap-prof.md"),
    };
    files
        .iter()
        .filter(|f| {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            !is_analysis(&name)
                && (name.ends_with(suffix) || (name.starts_with(prefix) && name.ends_with(".md")))
        })
        .max_by_key(|f| f.file_name().map(|n| n.to_owned()))
}

/// Copies through a temporary sibling and a rename, so the flat name is never half written.
fn copy_atomically(from: &Path, to: &Path) -> Result<(), StorageError> {
    let mut temp = to.as_os_str().to_owned();
    temp.push(format!(".tmp-{}", std::process::id()));
    let temp = PathBuf::from(temp);
    fs::copy(from, &temp).map_err(StorageError::io("copy", from))?;
    fs::rename(&temp, to).map_err(|err| {
        let _ = fs::remove_file(&temp);
        StorageError::io("write", to)(err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_baselines_take_the_newest_markdown() {
        let files: Vec<PathBuf> = [
            "c/tokens-20260101_000000.cpu-prof.md",
            "c/tokens-20260102_000000.cpu-prof.md",
            "c/tokens-20260102_000000.analysis.md",
            "c/tokens-20260102_000000.cpu-prof.svg",
            "c/Heap.1.2.md",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(markdown_of(&files, "cpu"), Some(&files[1]));
        assert_eq!(markdown_of(&files, "heap"), Some(&files[4]));
        assert_eq!(markdown_of(&files[..1], "heap"), None);
    }
}
