//! `auth-service compare BASE NEW`: side-by-side comparison of two profiles of the same kind.
//!
//! Flags and printing only; the comparison lives in `tools::comparison`.

use std::path::Path;
use std::process::ExitCode;

use argh::FromArgs;

use crate::cmd::CmdError;
use crate::tools::{Format, Stdout, comparison, report};

/// Compare two CPU (or two heap) Markdown profiles: summary deltas with throughput (rps), p95
/// and p99 and a verdict (better, worse or within noise: a change counts beyond twice the
/// runs' larger per-second throughput variation, at least 5%, or 10% when neither recorded
/// it), Self% per function, new and vanished hot functions, heap deltas.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "compare")]
pub struct Args {
    /// output format: md (default) or json
    #[argh(option, default = "String::from(\"md\")")]
    pub format: String,

    /// the baseline profile
    #[argh(positional)]
    pub base: String,

    /// the profile to compare with the baseline
    #[argh(positional)]
    pub new: String,
}

pub fn run(args: Args) -> Result<ExitCode, CmdError> {
    let format = Format::parse(&args.format).ok_or_else(|| {
        CmdError::usage(format!(
            "invalid --format '{}': expected md or json",
            args.format
        ))
    })?;
    let base = report::load(Path::new(&args.base))?;
    let new = report::load(Path::new(&args.new))?;
    let result = comparison::compare(&args.base, &base, &args.new, &new)
        .map_err(|err| CmdError::failed(err.to_string()))?;
    let text = format.render(&result, comparison::render);
    Stdout::new()
        .write(&text)
        .map_err(|err| CmdError::failed_with("cannot write the comparison", err))?;
    Ok(ExitCode::SUCCESS)
}
