//! `cleanup`: walking the profiles tree, planning what retention and the quota delete, and
//! deleting it. The unit of deletion is a set: the files of one run (its `.md`, `.pb.gz`,
//! `.svg`, heap profile and analysis, see `sets::family`), or a whole `archive/<dir>/`.
//!
//! Must never delete part of a set, anything in `baselines/`, anything outside the profiles
//! dir, or follow a symlink. `plan_cleanup` is pure; `walk` and `delete` do the I/O.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use super::sets::family;
use super::{ProfilesDir, SUBDIRS, StorageError};

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

/// One set to delete: a whole `archive/<dir>/`, the files of one run, or a lone file.
#[derive(Debug, Clone, PartialEq)]
pub struct Deletion {
    /// As shown: the directory, the file, or `<dir>/<run>.*` for a run's files.
    pub path: PathBuf,
    pub is_dir: bool,
    /// The files it deletes (one for a lone file; empty for a directory, which goes whole).
    pub members: Vec<PathBuf>,
    /// The age of its youngest file: a set is as old as its newest part.
    pub age_seconds: f64,
    pub size: u64,
    pub files: usize,
    pub reason: Reason,
}

impl Deletion {
    /// More than one file, or a directory: printed with its members.
    pub fn is_set(&self) -> bool {
        self.is_dir || self.members.len() > 1
    }
}

#[derive(Debug, Default)]
pub struct Plan {
    pub deletions: Vec<Deletion>,
    pub kept_files: usize,
    pub kept_bytes: u64,
    pub baseline_files: usize,
    pub baseline_bytes: u64,
}

/// What makes files one set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SetKey {
    /// An unpinned `archive/<dir>/`, deleted whole.
    Group(PathBuf),
    /// One run's files in one directory: (directory, family key, family kind).
    Run(PathBuf, String, &'static str),
    Lone(PathBuf),
}

struct Set {
    key: SetKey,
    members: Vec<usize>,
}

/// Groups the non-baseline files into sets, in the order their first file was listed.
fn sets(inventory: &Inventory) -> Vec<Set> {
    let mut out: Vec<Set> = Vec::new();
    for (i, f) in inventory.files.iter().enumerate() {
        if f.area == "baselines" {
            continue;
        }
        let key = match &f.group {
            Some(group) if !inventory.pinned_groups.contains(group) => SetKey::Group(group.clone()),
            _ => {
                let name = f
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match family(&name) {
                    Some((run, kind)) => SetKey::Run(
                        f.path.parent().unwrap_or(Path::new("")).to_owned(),
                        run,
                        kind,
                    ),
                    None => SetKey::Lone(f.path.clone()),
                }
            }
        };
        match out.iter_mut().find(|s| s.key == key) {
            Some(set) => set.members.push(i),
            None => out.push(Set {
                key,
                members: vec![i],
            }),
        }
    }
    out
}

fn deletion(inventory: &Inventory, set: &Set, reason: Reason) -> Deletion {
    let files: Vec<&FileEntry> = set.members.iter().map(|&i| &inventory.files[i]).collect();
    let (path, is_dir) = match &set.key {
        SetKey::Group(dir) => (dir.clone(), true),
        SetKey::Lone(path) => (path.clone(), false),
        SetKey::Run(..) if files.len() == 1 => (files[0].path.clone(), false),
        SetKey::Run(dir, run, "session") => (dir.join(format!("*.{run}.*")), false),
        SetKey::Run(dir, run, _) => (dir.join(format!("{run}.*")), false),
    };
    Deletion {
        path,
        is_dir,
        members: if is_dir {
            Vec::new()
        } else {
            files.iter().map(|f| f.path.clone()).collect()
        },
        age_seconds: files
            .iter()
            .map(|f| f.age_seconds)
            .fold(f64::INFINITY, f64::min),
        size: files.iter().map(|f| f.size).sum(),
        files: files.len(),
        reason,
    }
}

/// Decides what to delete, a whole set at a time. Retention first: a set goes when every
/// file in it is older than its area's retention (files exactly at the retention age are
/// kept). Then the quota over what is left outside `baselines/`: the oldest sets (by their
/// youngest file) go first until the total fits.
pub fn plan_cleanup(inventory: &Inventory, policy: &Policy) -> Plan {
    let mut plan = Plan::default();
    let expired = |i: &usize| {
        let f = &inventory.files[*i];
        policy
            .retention(f.area)
            .is_some_and(|limit| f.age_seconds > limit)
    };
    let mut remaining = Vec::new();
    for set in sets(inventory) {
        if set.members.iter().all(expired) {
            plan.deletions
                .push(deletion(inventory, &set, Reason::Retention));
        } else {
            remaining.push(set);
        }
    }
    if let Some(max) = policy.max_bytes {
        let mut total: u64 = remaining
            .iter()
            .flat_map(|s| &s.members)
            .map(|&i| inventory.files[i].size)
            .sum();
        let mut by_age: Vec<(f64, usize)> = remaining
            .iter()
            .enumerate()
            .map(|(n, s)| (deletion(inventory, s, Reason::Quota).age_seconds, n))
            .collect();
        by_age.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut gone = HashSet::new();
        for (_, n) in by_age {
            if total <= max {
                break;
            }
            let quota = deletion(inventory, &remaining[n], Reason::Quota);
            total -= quota.size;
            plan.deletions.push(quota);
            gone.insert(n);
        }
        let mut n = 0;
        remaining.retain(|_| {
            n += 1;
            !gone.contains(&(n - 1))
        });
    }
    for set in &remaining {
        for &i in &set.members {
            plan.kept_files += 1;
            plan.kept_bytes += inventory.files[i].size;
        }
    }
    for f in inventory.files.iter().filter(|f| f.area == "baselines") {
        plan.baseline_files += 1;
        plan.baseline_bytes += f.size;
    }
    plan
}

/// Deletes one planned set. Every path must lie under the profiles dir as given, outside
/// `baselines/`, and be a regular file (a symlink is never followed; whole directories are
/// only planned for groups without symlinks). All of a set's paths are checked before the
/// first is deleted, so a refused set is left whole.
pub fn delete(profiles: &ProfilesDir, deletion: &Deletion) -> Result<(), StorageError> {
    if deletion.is_dir {
        let real = checked(profiles, &deletion.path)?;
        return fs::remove_dir_all(&real).map_err(StorageError::io("delete", &deletion.path));
    }
    let mut real = Vec::with_capacity(deletion.members.len());
    for member in &deletion.members {
        let path = checked(profiles, member)?;
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => real.push((member, path)),
            Ok(_) => {
                return Err(StorageError::NotAFile {
                    path: member.clone(),
                });
            }
            Err(err) => return Err(StorageError::io("read", member)(err)),
        }
    }
    // The Markdown profile names the set: it goes last, so an interrupted deletion never
    // leaves companions without it.
    real.sort_by_key(|(member, _)| member.extension().is_some_and(|e| e == "md"));
    let mut first_error = None;
    for (member, path) in real {
        if let Err(err) = fs::remove_file(&path) {
            first_error.get_or_insert(StorageError::io("delete", member)(err));
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// `path` (as shown) mapped into the real profiles dir, refused unless it is inside one of
/// the deletable areas without `..` or other non-plain components.
fn checked(profiles: &ProfilesDir, path: &Path) -> Result<PathBuf, StorageError> {
    let outside = || StorageError::Outside {
        path: path.to_owned(),
    };
    let rel = path.strip_prefix(&profiles.path).map_err(|_| outside())?;
    let first = rel.components().next().map(|c| c.as_os_str().to_owned());
    let allowed = ["current", "auto", "archive", "manual"];
    if rel.components().any(|c| !matches!(c, Component::Normal(_)))
        || !first.is_some_and(|f| allowed.iter().any(|a| f == *a))
    {
        return Err(outside());
    }
    Ok(profiles.real.join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

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
                ("p/current/old.md".to_owned(), r),
                ("p/auto/old.md".to_owned(), r),
                ("p/archive/A".to_owned(), r),
            ]
        );
        assert_eq!(plan.deletions[2].files, 2);
        assert_eq!(plan.deletions[2].age_seconds, 8.0 * DAY);
        // archive/B is one archive with a young file: kept whole.
        assert_eq!((plan.kept_files, plan.kept_bytes), (5, 50));
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

    #[test]
    fn runs_go_as_whole_sets_oldest_first() {
        let run = |stamp: &str, age: f64| {
            [
                "cpu-prof.md",
                "cpu-prof.pb.gz",
                "cpu-prof.svg",
                "heap-prof.md",
                "analysis.json",
            ]
            .map(|suffix| {
                let path = format!("p/current/tokens-{stamp}.{suffix}");
                entry(&path, "current", None, 100, age)
            })
        };
        let mut files: Vec<FileEntry> = Vec::new();
        files.extend(run("new", 1.0 * HOUR));
        files.extend(run("old", 5.0 * HOUR));
        files.extend(run("mid", 3.0 * HOUR));
        // One part of the old run is young: the whole run counts as young for retention.
        files[5].age_seconds = 0.5 * HOUR;
        let inventory = Inventory {
            files,
            ..Inventory::default()
        };
        let plan = plan_cleanup(&inventory, &policy(Some(1000)));
        let q = Reason::Quota;
        assert_eq!(deleted(&plan), [("p/current/tokens-mid.*".to_owned(), q)]);
        assert_eq!(plan.deletions[0].members.len(), 5);
        assert_eq!((plan.kept_files, plan.kept_bytes), (10, 1000));
        let plan = plan_cleanup(&inventory, &policy(Some(999)));
        assert_eq!(
            deleted(&plan),
            [
                ("p/current/tokens-mid.*".to_owned(), q),
                ("p/current/tokens-new.*".to_owned(), q)
            ]
        );
        let short = Policy {
            current: 2.0 * HOUR,
            ..policy(None)
        };
        let plan = plan_cleanup(&inventory, &short);
        assert_eq!(
            deleted(&plan),
            [("p/current/tokens-mid.*".to_owned(), Reason::Retention)]
        );
    }
}
