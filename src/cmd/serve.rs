//! `auth-service serve`: run the HTTP service.

use std::process::ExitCode;

use argh::FromArgs;

use crate::cmd::CmdError;

/// Run the HTTP token service.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "serve")]
pub struct Args {}

pub fn run(_args: Args) -> Result<ExitCode, CmdError> {
    Err(CmdError::failed("serve is not built yet"))
}
