//! Which files belong to one run: the family key that ties a profile's `.md`, `.pb.gz`,
//! `.svg`, its heap profile and its `analysis.md`/`.json` together, and the analysis file
//! names of a run.
//!
//! Pure name logic plus one directory listing (`with_companions`); never writes or deletes.

use std::fs;
use std::path::{Path, PathBuf};

use super::StorageError;

const EXTENSIONS: [&str; 5] = [".md", ".pb.gz", ".svg", ".pb", ".json"];

/// The family key of an artifact name: `X.cpu-prof.md` → `("X", "prof")`, `CPU.T.P.svg` →
/// `("T.P", "session")`, and the run's analysis (`X.analysis.md`, `CPU.T.P.analysis.json`)
/// with them. Files of one family are companions, and cleanup deletes them as one set.
/// `None` for other names (`archive.json`, `notes.md`).
pub fn family(name: &str) -> Option<(String, &'static str)> {
    let stem = EXTENSIONS.iter().find_map(|ext| name.strip_suffix(ext))?;
    if let Some(run) = stem.strip_suffix(".analysis") {
        return match run
            .strip_prefix("CPU.")
            .or_else(|| run.strip_prefix("Heap."))
        {
            Some(key) if !key.is_empty() => Some((key.to_owned(), "session")),
            _ if !run.is_empty() => Some((run.to_owned(), "prof")),
            _ => None,
        };
    }
    // A bare `.json` belongs to a run only as its analysis (above).
    if name.ends_with(".json") {
        return None;
    }
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

/// `X.analysis.md` and `X.analysis.json`: a run's analysis report, not a profile.
pub fn is_analysis(name: &str) -> bool {
    name.ends_with(".analysis.md") || name.ends_with(".analysis.json")
}

/// Where the analysis of the run whose CPU (or heap) Markdown profile is `profile` goes:
/// `X.cpu-prof.md` → `X.analysis.md` and `X.analysis.json`, `CPU.T.P.md` →
/// `CPU.T.P.analysis.md`, in the same directory, so the files stay one set.
pub fn analysis_paths(profile: &Path) -> (PathBuf, PathBuf) {
    let name = profile
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".md").unwrap_or(&name);
    let stem = stem
        .strip_suffix(".cpu-prof")
        .or_else(|| stem.strip_suffix(".heap-prof"))
        .unwrap_or(stem);
    let dir = profile.parent().unwrap_or(Path::new(""));
    (
        dir.join(format!("{stem}.analysis.md")),
        dir.join(format!("{stem}.analysis.json")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        let prof = Some(("tokens-20261125".to_owned(), "prof"));
        let session = Some(("20261125_194810.42".to_owned(), "session"));
        let cases = [
            ("tokens-20261125.cpu-prof.md", prof.clone()),
            ("tokens-20261125.cpu-prof.pb.gz", prof.clone()),
            ("tokens-20261125.heap-prof.md", prof.clone()),
            ("tokens-20261125.cpu-prof.svg", prof.clone()),
            ("tokens-20261125.analysis.md", prof.clone()),
            ("tokens-20261125.analysis.json", prof),
            ("CPU.20261125_194810.42.md", session.clone()),
            ("Heap.20261125_194810.42.pb.gz", session.clone()),
            ("CPU.20261125_194810.42.analysis.md", session.clone()),
            ("CPU.20261125_194810.42.svg", session),
            ("notes.md", None),
            ("notes.json", None),
            ("archive.json", None),
        ];
        for (name, expected) in cases {
            assert_eq!(family(name), expected, "{name}");
        }
    }

    #[test]
    fn analysis_names_join_the_set() {
        let check = |profile: &str, md: &str| {
            let (got_md, got_json) = analysis_paths(Path::new(profile));
            assert_eq!(got_md, PathBuf::from(md), "{profile}");
            assert_eq!(got_json.extension().and_then(|e| e.to_str()), Some("json"));
            let name = got_md.file_name().unwrap().to_string_lossy().into_owned();
            let own = Path::new(profile)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            assert_eq!(family(&name), family(&own), "{profile}");
            assert!(is_analysis(&name));
        };
        check(
            "p/current/tokens-1.cpu-prof.md",
            "p/current/tokens-1.analysis.md",
        );
        check("r/CPU.20261125_1.42.md", "r/CPU.20261125_1.42.analysis.md");
    }
}
