//! `auth-service cleanup`: delete expired profile sets by mtime, then enforce a storage quota.
//!
//! Flags, the clock and printing only; walking, planning and deleting live in
//! `tools::storage`, which never touches `baselines/` or anything outside the profiles dir.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use argh::FromArgs;

use crate::cmd::CmdError;
use crate::cmd::archive::storage_error;
use crate::tools::Stdout;
use crate::tools::storage::{self, Policy, ProfilesDir, Reason};
use crate::tools::units::{format_age, format_bytes};

/// Delete profiles older than their retention (by modification time) from current/, archive/,
/// auto/ and manual/; never baselines/. A run's files (.md, .pb.gz, .svg, heap profile,
/// analysis) and an archive dir are one set: it goes whole, when every file in it is expired.
/// Then, with --max-storage-gb, delete the oldest non-baseline sets until the total fits
/// (1 GB = 1024^3 bytes). --dry-run lists the sets that would go. Symlinks are never
/// followed; .gitkeep files are kept.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "cleanup")]
pub struct Args {
    /// print what would be deleted, delete nothing
    #[argh(switch)]
    pub dry_run: bool,

    /// retention of profiles/current in hours (default 24)
    #[argh(option)]
    pub current_retention_hours: Option<String>,

    /// retention of profiles/archive in days (default 7)
    #[argh(option)]
    pub archive_retention_days: Option<String>,

    /// retention of profiles/auto and profiles/manual in days (default 7)
    #[argh(option)]
    pub auto_retention_days: Option<String>,

    /// storage quota over all non-baseline files, in GB (default: none)
    #[argh(option)]
    pub max_storage_gb: Option<String>,

    /// the profiles directory (default ./profiles)
    #[argh(option, default = "String::from(\"profiles\")")]
    pub profiles_dir: String,
}

const HOUR: f64 = 3600.0;
const DAY: f64 = 86_400.0;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// A non-negative finite number from a flag value, or a usage error naming the flag.
fn non_negative(
    flag: &str,
    value: Option<&str>,
    default: f64,
    unit: &str,
) -> Result<f64, CmdError> {
    let Some(text) = value else {
        return Ok(default);
    };
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(CmdError::usage(format!(
            "invalid value '{text}' for {flag}: expected a non-negative number of {unit}"
        ))),
    }
}

pub fn run(args: Args) -> Result<ExitCode, CmdError> {
    let current = non_negative(
        "--current-retention-hours",
        args.current_retention_hours.as_deref(),
        24.0,
        "hours",
    )?;
    let archive = non_negative(
        "--archive-retention-days",
        args.archive_retention_days.as_deref(),
        7.0,
        "days",
    )?;
    let auto = non_negative(
        "--auto-retention-days",
        args.auto_retention_days.as_deref(),
        7.0,
        "days",
    )?;
    let max_gb = match args.max_storage_gb.as_deref() {
        Some(text) => Some(non_negative("--max-storage-gb", Some(text), 0.0, "GB")?),
        None => None,
    };
    let policy = Policy {
        current: current * HOUR,
        archive: archive * DAY,
        auto: auto * DAY,
        manual: auto * DAY,
        max_bytes: max_gb.map(|gb| (gb * GIB) as u64),
    };
    let profiles = ProfilesDir::open(Path::new(&args.profiles_dir)).map_err(storage_error)?;
    let inventory = storage::walk(&profiles, SystemTime::now()).map_err(storage_error)?;
    let plan = storage::plan_cleanup(&inventory, &policy);

    let mut out = Stdout::new();
    let mut print = |line: String| {
        out.line(&line)
            .map_err(|err| CmdError::failed_with("cannot write to stdout", err))
    };
    for path in &inventory.skipped {
        print(format!(
            "skipped {} (symlink, not followed)",
            path.display()
        ))?;
    }
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let mut failures = 0usize;
    let (mut files, mut bytes) = (0usize, 0u64);
    for deletion in &plan.deletions {
        if !args.dry_run
            && let Err(err) = storage::delete(&profiles, deletion)
        {
            failures += 1;
            eprintln!("auth-service: {}", storage_error(err).chain());
            continue;
        }
        files += deletion.files;
        bytes += deletion.size;
        let slash = if deletion.is_dir { "/" } else { "" };
        let count = if deletion.is_set() {
            format!("{} files, ", deletion.files)
        } else {
            String::new()
        };
        let quota = match deletion.reason {
            Reason::Quota => ", over quota",
            Reason::Retention => "",
        };
        let set = if deletion.is_set() && !deletion.is_dir {
            "set "
        } else {
            ""
        };
        print(format!(
            "{verb} {set}{}{slash} (age {}, {count}{}{quota})",
            deletion.path.display(),
            format_age(deletion.age_seconds),
            format_bytes(deletion.size)
        ))?;
        if deletion.is_set() {
            for member in &deletion.members {
                print(format!("  {}", member.display()))?;
            }
        }
    }
    print(format!(
        "cleanup{}: {verb} {files} file{} ({}); kept {} file{} ({}) and {} baseline file{} ({}) in {}",
        if args.dry_run { " (dry run)" } else { "" },
        if files == 1 { "" } else { "s" },
        format_bytes(bytes),
        plan.kept_files,
        if plan.kept_files == 1 { "" } else { "s" },
        format_bytes(plan.kept_bytes),
        plan.baseline_files,
        if plan.baseline_files == 1 { "" } else { "s" },
        format_bytes(plan.baseline_bytes),
        profiles.path.display()
    ))?;
    if failures > 0 {
        return Err(CmdError::failed(format!(
            "could not delete {failures} of {} entries",
            plan.deletions.len()
        )));
    }
    Ok(ExitCode::SUCCESS)
}
