//! The `auth-service` binary: parse the command line, run one subcommand, map its result to an
//! exit code. Everything else lives in the library (see `src/lib.rs` for the codemap).

use std::process::ExitCode;

#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: auth_service::profiling::alloc::CountingAlloc =
    auth_service::profiling::alloc::CountingAlloc::new();

fn main() -> ExitCode {
    let command = match auth_service::cmd::parse(std::env::args()) {
        Ok(command) => command,
        Err(exit) => return exit,
    };
    match auth_service::cmd::run(command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("auth-service: {}", err.chain());
            ExitCode::from(err.exit_code())
        }
    }
}
