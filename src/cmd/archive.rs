//! `auth-service archive --profile PATH_OR_GLOB`: copy a profile and its companion files into
//! `profiles/archive/<YYYYMMDD_HHMMSS>/` or, with `--label`/`--to-baseline`,
//! `profiles/baselines/<label>/`, with an `archive.json` sidecar.
//!
//! Flags, the clock and `git rev-parse` only; paths and copying live in `tools::storage`.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use argh::FromArgs;

use crate::cmd::{CmdError, ExitKind};
use crate::timefmt;
use crate::tools::Stdout;
use crate::tools::storage::{self, ArchiveRequest, ProfilesDir, StorageError};

/// Archive a profile and its companion files (same stem: .md, .pb.gz, .svg, and the heap
/// profile of the same session). Copies, never moves. Without --label the copy goes to
/// <profiles-dir>/archive/<YYYYMMDD_HHMMSS>/; with --label L (or --to-baseline, label
/// "baseline") to <profiles-dir>/baselines/L/, or baselines/L-<YYYYMMDD_HHMMSS>/ when L
/// exists. Each archive dir gets an archive.json sidecar (sources, label, date, git commit). A
/// baseline also gets flat copies of its CPU and heap Markdown: baselines/L.cpu-prof.md and
/// baselines/L.heap-prof.md (named after the directory chosen).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "archive")]
pub struct Args {
    /// the profile to archive: a path, or a glob with * and ? in the file name
    #[argh(option)]
    pub profile: String,

    /// baseline label, 1-64 of A-Z a-z 0-9 . _ - (implies a baseline)
    #[argh(option)]
    pub label: Option<String>,

    /// store as a baseline (label "baseline" unless --label is given)
    #[argh(switch)]
    pub to_baseline: bool,

    /// the profiles directory (default ./profiles)
    #[argh(option, default = "String::from(\"profiles\")")]
    pub profiles_dir: String,
}

pub fn run(args: Args) -> Result<ExitCode, CmdError> {
    let label = match (&args.label, args.to_baseline) {
        (Some(label), _) => Some(label.as_str()),
        (None, true) => Some("baseline"),
        (None, false) => None,
    };
    if let Some(label) = label
        && !storage::valid_label(label)
    {
        return Err(storage_error(StorageError::BadLabel {
            label: label.to_owned(),
        }));
    }
    let profiles = ProfilesDir::open(Path::new(&args.profiles_dir)).map_err(storage_error)?;
    let matched = storage::expand(&args.profile).map_err(storage_error)?;
    let files = storage::with_companions(&matched).map_err(storage_error)?;
    let now = timefmt::unix_now() as i64;
    let stamp = timefmt::compact_timestamp(now);
    let date = timefmt::iso8601(now);
    let commit = git_commit();
    let request = ArchiveRequest {
        label,
        stamp: &stamp,
        date_iso: &date,
        git_commit: commit.as_deref(),
    };
    let archived = storage::archive(&profiles, &files, &request).map_err(storage_error)?;
    let mut out = Stdout::new();
    let mut print = |line: String| {
        out.line(&line)
            .map_err(|err| CmdError::failed_with("cannot write to stdout", err))
    };
    for (from, to) in &archived.copies {
        print(format!("copied {} -> {}", from.display(), to.display()))?;
    }
    for (from, to) in &archived.flat {
        print(format!("baseline {} -> {}", from.display(), to.display()))?;
    }
    print(format!("wrote {}", archived.sidecar.display()))?;
    print(format!(
        "archived {} file{} into {}",
        archived.copies.len(),
        if archived.copies.len() == 1 { "" } else { "s" },
        archived.dir.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `git rev-parse HEAD` in the working directory, when git and a repository are there.
fn git_commit() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && commit.len() >= 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(commit)
}

/// Maps a storage error to its exit code (2 for usage, 1 otherwise) with its cause chain.
pub(crate) fn storage_error(err: StorageError) -> CmdError {
    let kind = if err.is_usage() {
        ExitKind::Usage
    } else {
        ExitKind::Failure
    };
    let (message, source) = err.into_parts();
    CmdError {
        kind,
        message,
        source: source.map(|s| Box::new(s) as Box<dyn std::error::Error + Send + Sync>),
    }
}
