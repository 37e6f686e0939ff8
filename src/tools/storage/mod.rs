//! The `profiles/` directory: checking that a path is one, expanding `--profile` globs, and
//! the errors of everything below. Submodules: `sets` (which files belong to one run),
//! `archive` (copies into `archive/` and `baselines/`, flat baseline names), `cleanup`
//! (walking the tree, the retention and quota plan, deleting whole sets).
//!
//! Owns path safety: nothing here writes or deletes outside the profiles dir, follows a
//! symlink, or touches `baselines/` when cleaning. Planning (`plan_cleanup`, `glob_match`,
//! `family`) is pure; `walk`, `archive` and `delete` do the I/O.

mod archive;
mod cleanup;
mod sets;

use std::error::Error as StdError;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use archive::{ArchiveRequest, Archived, archive};
pub use cleanup::{
    Deletion, FileEntry, Inventory, Plan, Policy, Reason, delete, plan_cleanup, walk,
};
pub use sets::{analysis_paths, family, is_analysis, with_companions};

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

/// `[A-Za-z0-9._-]{1,64}`, and not `.` or `..` (or any all-dots name).
pub fn valid_label(label: &str) -> bool {
    (1..=64).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !label.bytes().all(|b| b == b'.')
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
    fn labels() {
        for good in ["v1.2.0", "before_cache", "a", &"x".repeat(64)] {
            assert!(valid_label(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "../up", "with space", &"x".repeat(65)] {
            assert!(!valid_label(bad), "{bad}");
        }
    }
}
