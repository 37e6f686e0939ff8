//! The command line: one `argh` subcommand per file, dispatched from here.
//!
//! Owns argv pre-processing (`--flag=value`), the `CmdError` every subcommand returns and its
//! mapping to exit codes (0 ok, 1 runtime failure, 2 usage or configuration, 3 thresholds).
//! Subcommand files hold their flags and a `run`; they must not call `std::process::exit`.

use std::error::Error as StdError;
use std::fmt;
use std::io::Write as _;
use std::process::ExitCode;

use argh::FromArgs;

pub mod analyze;
pub mod archive;
pub mod bench;
pub mod cleanup;
pub mod compare;
pub mod kong_sim;
pub mod load;
pub mod profile;
pub mod profiled;
pub mod serve;

/// Issues and validates short-lived JWTs for Kong consumers, and profiles itself.
#[derive(FromArgs, Debug)]
pub struct TopLevel {
    #[argh(subcommand)]
    pub command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Serve(serve::Args),
    KongSim(kong_sim::Args),
    Analyze(analyze::Args),
    Compare(compare::Args),
    Archive(archive::Args),
    Cleanup(cleanup::Args),
    Load(load::Args),
    Profile(profile::Args),
    Bench(bench::Args),
}

/// Parses argv; on `--help` or a usage error prints argh's text and returns the exit code.
pub fn parse(args: impl Iterator<Item = String>) -> Result<TopLevel, ExitCode> {
    let args: Vec<String> = args.collect();
    // argh prints the program name in usage lines; the installed path is noise there.
    let program = "auth-service";
    let rest = split_equals(&args[1.min(args.len())..]);
    let rest_refs: Vec<&str> = rest.iter().map(String::as_str).collect();
    match TopLevel::from_args(&[program], &rest_refs) {
        Ok(top) => Ok(top),
        Err(early) => match early.status {
            Ok(()) => {
                // `--help | head` closing the pipe early is not an error.
                let _ = writeln!(std::io::stdout(), "{}", early.output);
                Err(ExitCode::SUCCESS)
            }
            Err(()) => {
                eprintln!("{}", early.output.trim_end());
                Err(ExitCode::from(2))
            }
        },
    }
}

/// `--flag=value` becomes `--flag value`, which is what argh understands.
pub fn split_equals(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") && flag.len() > 2 => {
                out.push(flag.to_owned());
                out.push(value.to_owned());
            }
            _ => out.push(arg.clone()),
        }
    }
    out
}

pub fn run(top: TopLevel) -> Result<ExitCode, CmdError> {
    match top.command {
        Command::Serve(args) => serve::run(args),
        Command::KongSim(args) => kong_sim::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Archive(args) => archive::run(args),
        Command::Cleanup(args) => cleanup::run(args),
        Command::Load(args) => load::run(args),
        Command::Profile(args) => profile::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    Failure,
    Usage,
    Thresholds,
}

/// What a subcommand failed with: the kind decides the exit code, the message and its causes
/// are printed on one line.
#[derive(Debug)]
pub struct CmdError {
    pub kind: ExitKind,
    pub message: String,
    pub source: Option<Box<dyn StdError + Send + Sync>>,
}

impl CmdError {
    pub fn usage(message: impl Into<String>) -> CmdError {
        CmdError {
            kind: ExitKind::Usage,
            message: message.into(),
            source: None,
        }
    }

    pub fn failed(message: impl Into<String>) -> CmdError {
        CmdError {
            kind: ExitKind::Failure,
            message: message.into(),
            source: None,
        }
    }

    pub fn failed_with(
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> CmdError {
        CmdError {
            kind: ExitKind::Failure,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    pub fn thresholds(message: impl Into<String>) -> CmdError {
        CmdError {
            kind: ExitKind::Thresholds,
            message: message.into(),
            source: None,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ExitKind::Failure => 1,
            ExitKind::Usage => 2,
            ExitKind::Thresholds => 3,
        }
    }

    /// The message followed by every cause, joined with ": ".
    pub fn chain(&self) -> String {
        let mut out = self.message.clone();
        let mut next: Option<&(dyn StdError + 'static)> = match &self.source {
            Some(source) => Some(source.as_ref()),
            None => None,
        };
        while let Some(err) = next {
            out.push_str(": ");
            out.push_str(&err.to_string());
            next = err.source();
        }
        out
    }
}

/// A profile that cannot be read or parsed is a runtime failure naming the file.
impl From<crate::tools::report::LoadError> for CmdError {
    fn from(err: crate::tools::report::LoadError) -> CmdError {
        let (message, source) = err.into_parts();
        CmdError::failed_with(message, source)
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for CmdError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.source {
            Some(source) => Some(source.as_ref()),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_flags_are_split() {
        let args: Vec<String> = ["serve", "--port=0", "--kong-sim", "-x=1", "--a=b=c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            split_equals(&args),
            ["serve", "--port", "0", "--kong-sim", "-x=1", "--a", "b=c"]
        );
    }
}
