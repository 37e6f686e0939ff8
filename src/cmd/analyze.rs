//! `auth-service analyze FILE...`: the analysis report of CPU and heap Markdown profiles.
//!
//! Flags and printing only; parsing and the completeness rule live in `tools::report` and
//! `tools::completeness`, judgement in `tools::analysis`, `tools::categories` and
//! `tools::recommend`. A file that is incomplete or truncated fails the whole command (exit 1)
//! before anything is printed: a partial profile must not read as a quiet one.

use std::path::Path;
use std::process::ExitCode;

use argh::FromArgs;

use crate::cmd::CmdError;
use crate::tools::{Format, Stdout, analysis, report, storage};

/// Analyze CPU and heap Markdown profiles (ours and Bun's --cpu-prof-md layout): summary, top
/// functions, CPU by subsystem, memory, and ranked optimization opportunities. Refuses (exit 1)
/// a profile that is incomplete or truncated.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "analyze")]
pub struct Args {
    /// output format: md (default) or json
    #[argh(option, default = "String::from(\"md\")")]
    pub format: String,

    /// profile files: CPU.<ts>.<pid>.md, *.cpu-prof.md, Heap.<ts>.<pid>.md, *.heap-prof.md
    #[argh(positional)]
    pub files: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode, CmdError> {
    let format = Format::parse(&args.format).ok_or_else(|| {
        CmdError::usage(format!(
            "invalid --format '{}': expected md or json",
            args.format
        ))
    })?;
    if args.files.is_empty() {
        return Err(CmdError::usage(
            "analyze needs at least one profile file (see --help)",
        ));
    }
    let mut profiles = Vec::with_capacity(args.files.len());
    for file in &args.files {
        // `profiles/current/*.md` also matches the analysis written next to a run's profiles:
        // it is a report about profiles, not one.
        let name = Path::new(file).file_name().map(|n| n.to_string_lossy());
        if name.is_some_and(|n| storage::is_analysis(&n)) {
            eprintln!("analyze: skipping {file} (an analysis report, not a profile)");
            continue;
        }
        let profile = report::load(Path::new(file))?;
        profiles.push((file.clone(), profile));
    }
    if profiles.is_empty() {
        return Err(CmdError::usage(
            "analyze needs at least one profile file; the files given are analysis reports",
        ));
    }
    let analysis = analysis::analyze(&profiles);
    let text = format.render(&analysis, analysis::render);
    Stdout::new()
        .write(&text)
        .map_err(|err| CmdError::failed_with("cannot write the report", err))?;
    Ok(ExitCode::SUCCESS)
}
