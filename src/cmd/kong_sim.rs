//! `auth-service kong-sim`: run the Kong Admin API simulator on its own.

use std::process::ExitCode;

use argh::FromArgs;

use crate::cmd::CmdError;

/// Run a Kong Admin API simulator.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "kong-sim")]
pub struct Args {}

pub fn run(_args: Args) -> Result<ExitCode, CmdError> {
    Err(CmdError::failed("kong-sim is not built yet"))
}
