//! The `profiles/` directory: checking that a path is one, expanding `--profile` globs, finding
//! companion files, copying archives, and the retention and quota plan of `cleanup`.
//!
//! Owns path safety: nothing here writes or deletes outside the profiles dir, follows a
//! symlink, or touches `baselines/` when cleaning. Planning (`plan_cleanup`, `glob_match`,
//! `family`) is pure; `walk`, `archive` and `delete` do the I/O.

use std::collections::HashSet;
use std::error::Error as StdError;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The subdirectories a profiles dir has (at least one of them).
pub const SUBDIRS: [&str; 5] = ["current", "auto", "archive", "baselines", "manual"];

#[derive(Debug)]
pub enum StorageError {
    NotProfilesDir {
        path: PathBuf,
    },
    BadLabel {
        label: String,
    },
    NoMatch {
        pattern: String,
    },
    NotAFile {
        path: PathBuf,
    },
    Outside {
        path: PathBuf,
    },
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl StorageError {
    /// Usage errors (exit 2) as opposed to runtime failures (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            StorageError::NotProfilesDir { .. } | StorageError::BadLabel { .. }
        )
    }

    /// This layer's message and the underlying cause, if any, for a one-line cause chain.
    pub fn into_parts(self) -> (String, Option<io::Error>) {
        let message = self.to_string();
        match self {
            StorageError::Io { source, .. } => (message, Some(source)),
            _ => (message, None),
        }
    }

    fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StorageError {
        let path = path.to_owned();
        move |source| StorageError::Io {
            action,
            path,
            source,
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::NotProfilesDir { path } => write!(
                f,
                "{} does not look like a profiles dir (it needs one of current, auto, archive, \
                 baselines, manual); pass --profiles-dir",
                path.display()
            ),
            StorageError::BadLabel { label } => write!(
                f,
                "invalid --label '{label}': use 1-64 characters of A-Z a-z 0-9 . _ - (not only dots)"
            ),
            StorageError::NoMatch { pattern } => write!(f, "no file matches {pattern}"),
            StorageError::NotAFile { path } => {
                write!(f, "{} is not a readable file", path.display())
            }
            StorageError::Outside { path } => {
                write!(f, "{} resolves outside the profiles dir", path.display())
            }
            StorageError::Io { action, path, .. } => {
                write!(f, "cannot {action} {}", path.display())
            }
        }
    }
}

impl StdError for StorageError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A checked profiles dir: `path` as the user gave it (for messages), `real` canonical.
#[derive(Debug, Clone)]
pub struct ProfilesDir {
    pub path: PathBuf,
    pub real: PathBuf,
}

impl ProfilesDir {
    /// Accepts a directory holding at least one of `SUBDIRS`.
    pub fn open(path: &Path) -> Result<ProfilesDir, StorageError> {
        let not_one = || StorageError::NotProfilesDir {
            path: path.to_owned(),
        };
        let real = fs::canonicalize(path).map_err(|_| not_one())?;
        if !real.is_dir() || !SUBDIRS.iter().any(|sub| real.join(sub).is_dir()) {
            return Err(not_one());
        }
        Ok(ProfilesDir {
            path: path.to_owned(),
            real,
        })
    }

    /// `sub` below the profiles dir, created if missing; refused when it resolves elsewhere
    /// (a symlink out of the tree).
    fn area(&self, sub: &str) -> Result<PathBuf, StorageError> {
        let dir = self.real.join(sub);
        fs::create_dir_all(&dir).map_err(StorageError::io("create", &dir))?;
        let real = fs::canonicalize(&dir).map_err(StorageError::io("resolve", &dir))?;
        if !real.starts_with(&self.real) {
            return Err(StorageError::Outside { path: dir });
        }
        Ok(real)
    }
}

/// `*` (any run of characters) and `?` (one character). A leading `.` must be matched
/// literally, as in a shell.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The files `pattern` names: a literal path, or `*`/`?` in its final component. Sorted.
pub fn expand(pattern: &str) -> Result<Vec<PathBuf>, StorageError> {
    let path = Path::new(pattern);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return match fs::metadata(path) {
            Ok(meta) if meta.is_file() => Ok(vec![path.to_owned()]),
            _ => Err(StorageError::NotAFile {
                path: path.to_owned(),
            }),
        };
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let entries = fs::read_dir(&dir).map_err(StorageError::io("list", &dir))?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| glob_match(&name, &e.file_name().to_string_lossy()))
        .map(|e| dir.join(e.file_name()))
        .collect();
    out.sort();
    if out.is_empty() {
        return Err(StorageError::NoMatch {
            pattern: pattern.to_owned(),
        });
    }
    Ok(out)
}

const EXTENSIONS: [&str; 4] = [".md", ".pb.gz", ".svg", ".pb"];

/// The family key of an artifact name: `X.cpu-prof.md` → `("X", "prof")`, `CPU.T.P.svg` →
/// `("T.P", "session")`. Files of one family are companions. `None` for other names.
pub fn family(name: &str) -> Option<(String, &'static str)> {
    let stem = EXTENSIONS.iter().find_map(|ext| name.strip_suffix(ext))?;
    if let Some(key) = stem
        .strip_suffix(".cpu-prof")
        .or_else(|| stem.strip_suffix(".heap-prof"))
    {
        return Some((key.to_owned(), "prof"));
    }
    stem.strip_prefix("CPU.")
        .or_else(|| stem.strip_prefix("Heap."))
        .filter(|key| !key.is_empty())
        .map(|key| (key.to_owned(), "session"))
}

/// `files` plus every companion in the same directories, deduplicated, in a stable order.
pub fn with_companions(files: &[PathBuf]) -> Result<Vec<PathBuf>, StorageError> {
    let mut out: Vec<PathBuf> = Vec::new();
    let push = |p: PathBuf, out: &mut Vec<PathBuf>| {
        if !out.contains(&p) {
            out.push(p);
        }
    };
    for file in files {
        push(file.clone(), &mut out);
        let Some(key) = file.file_name().and_then(|n| family(&n.to_string_lossy())) else {
            continue;
        };
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut mates: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(StorageError::io("list", &dir))?
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| family(&e.file_name().to_string_lossy()).as_ref() == Some(&key))
            .map(|e| dir.join(e.file_name()))
            .collect();
        mates.sort();
        for mate in mates {
            push(mate, &mut out);
        }
    }
    Ok(out)
}

/// `[A-Za-z0-9._-]{1,64}`, and not `.` or `..` (or any all-dots name).
pub fn valid_label(label: &str) -> bool {
    (1..=64).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !label.bytes().all(|b| b == b'.')
}

/// What `archive` wrote.
#[derive(Debug)]
pub struct Archived {
    pub dir: PathBuf,
    pub copies: Vec<(PathBuf, PathBuf)>,
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
    let sidecar = serde_json::json!({
        "kind": if request.label.is_some() { "baseline" } else { "archive" },
        "label": request.label,
        "date": request.date_iso,
        "git_commit": request.git_commit,
        "sources": sources,
        "files": names,
    });
    let sidecar_path = real_dir.join("archive.json");
    let text = serde_json::to_string_pretty(&sidecar).expect("json values serialize");
    fs::write(&sidecar_path, text + "\n").map_err(StorageError::io("write", &sidecar_path))?;
    Ok(Archived {
        sidecar: dir.join("archive.json"),
        dir,
        copies,
    })
}

/// One regular file under the profiles dir.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEntry {
    /// Path as shown to the user (profiles dir as given, joined with the relative path).
    pub path: PathBuf,
    /// Which of `SUBDIRS`.
    pub area: &'static str,
    /// For `archive/`: the first-level directory holding the file, if any.
    pub group: Option<PathBuf>,
    pub size: u64,
    pub age_seconds: f64,
}

/// Everything `walk` saw.
#[derive(Debug, Default)]
pub struct Inventory {
    pub files: Vec<FileEntry>,
    /// `archive/` groups holding something we never delete (a symlink, a `.gitkeep`): they are
    /// cleaned file by file, never removed whole.
    pub pinned_groups: HashSet<PathBuf>,
    /// Paths skipped because they are symlinks or resolve outside the profiles dir.
    pub skipped: Vec<PathBuf>,
}

/// Lists every regular file under the five areas, without following symlinks. `.gitkeep`
/// files are not listed (they are never deleted).
pub fn walk(profiles: &ProfilesDir, now: SystemTime) -> Result<Inventory, StorageError> {
    let mut inventory = Inventory::default();
    for area in SUBDIRS {
        let shown = profiles.path.join(area);
        let real = profiles.real.join(area);
        match fs::symlink_metadata(&real) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(StorageError::io("read", &shown)(err)),
            Ok(meta) if meta.file_type().is_symlink() || !meta.is_dir() => {
                inventory.skipped.push(shown);
                continue;
            }
            Ok(_) => {}
        }
        walk_dir(&real, &shown, area, None, now, &mut inventory)?;
    }
    Ok(inventory)
}

fn walk_dir(
    real: &Path,
    shown: &Path,
    area: &'static str,
    group: Option<&Path>,
    now: SystemTime,
    inventory: &mut Inventory,
) -> Result<(), StorageError> {
    let entries = fs::read_dir(real).map_err(StorageError::io("list", shown))?;
    for entry in entries {
        let entry = entry.map_err(StorageError::io("list", shown))?;
        let name = entry.file_name();
        let path = shown.join(&name);
        let meta = fs::symlink_metadata(entry.path()).map_err(StorageError::io("read", &path))?;
        let pin = |inventory: &mut Inventory| {
            if let Some(group) = group {
                inventory.pinned_groups.insert(group.to_owned());
            }
        };
        if meta.file_type().is_symlink() {
            pin(inventory);
            inventory.skipped.push(path);
        } else if meta.is_dir() {
            let group = match group {
                Some(g) => Some(g.to_owned()),
                None if area == "archive" => Some(path.clone()),
                None => None,
            };
            walk_dir(&entry.path(), &path, area, group.as_deref(), now, inventory)?;
        } else if name == ".gitkeep" {
            pin(inventory);
        } else if meta.is_file() {
            let modified = meta.modified().map_err(StorageError::io("read", &path))?;
            let age = now
                .duration_since(modified)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            inventory.files.push(FileEntry {
                path,
                area,
                group: group.map(Path::to_owned),
                size: meta.len(),
                age_seconds: age,
            });
        }
    }
    Ok(())
}

/// Retention per area in seconds; `None` keeps everything (baselines always).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub current: f64,
    pub archive: f64,
    pub auto: f64,
    pub manual: f64,
    pub max_bytes: Option<u64>,
}

impl Policy {
    fn retention(&self, area: &str) -> Option<f64> {
        match area {
            "current" => Some(self.current),
            "archive" => Some(self.archive),
            "auto" => Some(self.auto),
            "manual" => Some(self.manual),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Retention,
    Quota,
}

/// One thing to delete: a file, or a whole `archive/<dir>/`.
#[derive(Debug, Clone, PartialEq)]
pub struct Deletion {
    pub path: PathBuf,
    pub is_dir: bool,
    /// For a directory, the age of its youngest file.
    pub age_seconds: f64,
    pub size: u64,
    pub files: usize,
    pub reason: Reason,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub deletions: Vec<Deletion>,
    pub kept_files: usize,
    pub kept_bytes: u64,
    pub baseline_files: usize,
    pub baseline_bytes: u64,
}

/// Decides what to delete. Retention first (an `archive/` group goes whole when every file in
/// it is expired), then the quota over what is left outside `baselines/`, oldest first, until
/// the total fits. Files exactly at the retention age are kept.
pub fn plan_cleanup(inventory: &Inventory, policy: &Policy) -> Plan {
    let mut plan = Plan::default();
    let expired = |f: &FileEntry| {
        policy
            .retention(f.area)
            .is_some_and(|limit| f.age_seconds > limit)
    };
    let mut gone = vec![false; inventory.files.len()];
    let mut groups: Vec<&PathBuf> = Vec::new();
    for f in &inventory.files {
        if let Some(g) = &f.group
            && !groups.contains(&g)
        {
            groups.push(g);
        }
    }
    for group in groups {
        if inventory.pinned_groups.contains(group) {
            continue;
        }
        let members: Vec<usize> = (0..inventory.files.len())
            .filter(|&i| inventory.files[i].group.as_ref() == Some(group))
            .collect();
        if members.iter().all(|&i| expired(&inventory.files[i])) {
            plan.deletions.push(Deletion {
                path: group.clone(),
                is_dir: true,
                age_seconds: members
                    .iter()
                    .map(|&i| inventory.files[i].age_seconds)
                    .fold(f64::INFINITY, f64::min),
                size: members.iter().map(|&i| inventory.files[i].size).sum(),
                files: members.len(),
                reason: Reason::Retention,
            });
            for i in members {
                gone[i] = true;
            }
        }
    }
    for (i, f) in inventory.files.iter().enumerate() {
        if !gone[i] && expired(f) {
            gone[i] = true;
            plan.deletions.push(file_deletion(f, Reason::Retention));
        }
    }
    let mut remaining: Vec<usize> = (0..inventory.files.len())
        .filter(|&i| !gone[i] && inventory.files[i].area != "baselines")
        .collect();
    if let Some(max) = policy.max_bytes {
        let mut total: u64 = remaining.iter().map(|&i| inventory.files[i].size).sum();
        remaining.sort_by(|&a, &b| {
            inventory.files[b]
                .age_seconds
                .total_cmp(&inventory.files[a].age_seconds)
        });
        for &i in &remaining {
            if total <= max {
                break;
            }
            let f = &inventory.files[i];
            gone[i] = true;
            total -= f.size;
            plan.deletions.push(file_deletion(f, Reason::Quota));
        }
    }
    for (i, f) in inventory.files.iter().enumerate() {
        if f.area == "baselines" {
            plan.baseline_files += 1;
            plan.baseline_bytes += f.size;
        } else if !gone[i] {
            plan.kept_files += 1;
            plan.kept_bytes += f.size;
        }
    }
    plan
}

fn file_deletion(f: &FileEntry, reason: Reason) -> Deletion {
    Deletion {
        path: f.path.clone(),
        is_dir: false,
        age_seconds: f.age_seconds,
        size: f.size,
        files: 1,
        reason,
    }
}

/// Deletes one planned entry. The path must lie under the profiles dir as given, outside
/// `baselines/`; a symlink is never followed (files are unlinked, and whole directories are
/// only planned for groups without symlinks).
pub fn delete(profiles: &ProfilesDir, deletion: &Deletion) -> Result<(), StorageError> {
    let rel = deletion
        .path
        .strip_prefix(&profiles.path)
        .map_err(|_| StorageError::Outside {
            path: deletion.path.clone(),
        })?;
    let first = rel.components().next().map(|c| c.as_os_str().to_owned());
    let allowed = ["current", "auto", "archive", "manual"];
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
        || !first.is_some_and(|f| allowed.iter().any(|a| f == *a))
    {
        return Err(StorageError::Outside {
            path: deletion.path.clone(),
        });
    }
    let real = profiles.real.join(rel);
    let result = if deletion.is_dir {
        fs::remove_dir_all(&real)
    } else {
        fs::remove_file(&real)
    };
    result.map_err(StorageError::io("delete", &deletion.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let cases = [
            ("*.md", "CPU.1.2.md", true),
            ("*.md", "CPU.1.2.svg", false),
            ("CPU.*.md", "CPU.20261125_194810.42.md", true),
            ("tokens-????.cpu-prof.md", "tokens-2026.cpu-prof.md", true),
            ("tokens-????.cpu-prof.md", "tokens-26.cpu-prof.md", false),
            ("*", ".gitkeep", false),
            (".*", ".gitkeep", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("**", "", true),
            ("exact.md", "exact.md", true),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(glob_match(pattern, name), expected, "{pattern} vs {name}");
        }
    }

    #[test]
    fn families() {
        let prof = Some(("tokens-20261125".to_owned(), "prof"));
        let session = Some(("20261125_194810.42".to_owned(), "session"));
        let cases = [
            ("tokens-20261125.cpu-prof.md", prof.clone()),
            ("tokens-20261125.cpu-prof.pb.gz", prof.clone()),
            ("tokens-20261125.heap-prof.md", prof.clone()),
            ("tokens-20261125.cpu-prof.svg", prof),
            ("CPU.20261125_194810.42.md", session.clone()),
            ("Heap.20261125_194810.42.pb.gz", session.clone()),
            ("CPU.20261125_194810.42.svg", session),
            ("notes.md", None),
            ("archive.json", None),
        ];
        for (name, expected) in cases {
            assert_eq!(family(name), expected, "{name}");
        }
    }

    #[test]
    fn labels() {
        for good in ["v1.2.0", "before_cache", "a", &"x".repeat(64)] {
            assert!(valid_label(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "../up", "with space", &"x".repeat(65)] {
            assert!(!valid_label(bad), "{bad}");
        }
    }

    const HOUR: f64 = 3600.0;
    const DAY: f64 = 86_400.0;

    fn entry(
        path: &str,
        area: &'static str,
        group: Option<&str>,
        size: u64,
        age: f64,
    ) -> FileEntry {
        FileEntry {
            path: PathBuf::from(path),
            area,
            group: group.map(PathBuf::from),
            size,
            age_seconds: age,
        }
    }

    fn policy(max_bytes: Option<u64>) -> Policy {
        Policy {
            current: 24.0 * HOUR,
            archive: 7.0 * DAY,
            auto: 7.0 * DAY,
            manual: 7.0 * DAY,
            max_bytes,
        }
    }

    fn deleted(plan: &Plan) -> Vec<(String, Reason)> {
        plan.deletions
            .iter()
            .map(|d| (d.path.display().to_string(), d.reason))
            .collect()
    }

    #[test]
    fn retention_by_area() {
        let inventory = Inventory {
            files: vec![
                entry("p/current/old.md", "current", None, 10, 25.0 * HOUR),
                entry("p/current/new.md", "current", None, 10, 23.0 * HOUR),
                entry("p/current/edge.md", "current", None, 10, 24.0 * HOUR),
                entry("p/auto/old.md", "auto", None, 10, 8.0 * DAY),
                entry("p/manual/new.md", "manual", None, 10, 6.0 * DAY),
                entry(
                    "p/archive/A/x.md",
                    "archive",
                    Some("p/archive/A"),
                    10,
                    8.0 * DAY,
                ),
                entry(
                    "p/archive/A/y.md",
                    "archive",
                    Some("p/archive/A"),
                    10,
                    9.0 * DAY,
                ),
                entry(
                    "p/archive/B/x.md",
                    "archive",
                    Some("p/archive/B"),
                    10,
                    8.0 * DAY,
                ),
                entry(
                    "p/archive/B/y.md",
                    "archive",
                    Some("p/archive/B"),
                    10,
                    1.0 * DAY,
                ),
                entry("p/baselines/v1/x.md", "baselines", None, 10, 400.0 * DAY),
            ],
            ..Inventory::default()
        };
        let plan = plan_cleanup(&inventory, &policy(None));
        let r = Reason::Retention;
        assert_eq!(
            deleted(&plan),
            [
                ("p/archive/A".to_owned(), r),
                ("p/current/old.md".to_owned(), r),
                ("p/auto/old.md".to_owned(), r),
                ("p/archive/B/x.md".to_owned(), r),
            ]
        );
        assert_eq!(plan.deletions[0].files, 2);
        assert_eq!(plan.deletions[0].age_seconds, 8.0 * DAY);
        assert_eq!((plan.kept_files, plan.kept_bytes), (4, 40));
        assert_eq!(plan.baseline_files, 1);
    }

    #[test]
    fn pinned_groups_go_file_by_file() {
        let mut inventory = Inventory {
            files: vec![entry(
                "p/archive/A/x.md",
                "archive",
                Some("p/archive/A"),
                10,
                8.0 * DAY,
            )],
            ..Inventory::default()
        };
        inventory.pinned_groups.insert(PathBuf::from("p/archive/A"));
        let plan = plan_cleanup(&inventory, &policy(None));
        assert_eq!(
            deleted(&plan),
            [("p/archive/A/x.md".to_owned(), Reason::Retention)]
        );
    }

    #[test]
    fn quota_oldest_first_never_baselines() {
        let inventory = Inventory {
            files: vec![
                entry("p/current/a.md", "current", None, 400, 1.0 * HOUR),
                entry("p/current/b.md", "current", None, 400, 3.0 * HOUR),
                entry("p/auto/c.md", "auto", None, 400, 2.0 * HOUR),
                entry("p/baselines/v/d.md", "baselines", None, 5000, 10.0 * HOUR),
            ],
            ..Inventory::default()
        };
        let plan = plan_cleanup(&inventory, &policy(Some(500)));
        let q = Reason::Quota;
        assert_eq!(
            deleted(&plan),
            [
                ("p/current/b.md".to_owned(), q),
                ("p/auto/c.md".to_owned(), q)
            ]
        );
        assert_eq!(plan.kept_bytes, 400);
        let plan = plan_cleanup(&inventory, &policy(Some(1200)));
        assert!(plan.deletions.is_empty());
    }
}
