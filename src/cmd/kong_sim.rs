//! `auth-service kong-sim`: run the Kong Admin API simulator on its own until SIGTERM/SIGINT.
//!
//! Owns the flags and the startup output: exactly one `kong-sim listening on http://HOST:PORT`
//! line (the test harness waits for it), then one `username id key` line per seeded consumer.
//! Secrets are not printed; like real Kong, the Admin API shows them
//! (`GET /consumers/{c}/jwt`), and the default seed's are `test-secret-NNN`. Simulator
//! behaviour itself lives in `crate::kong_sim`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::cmd::CmdError;
use crate::config::Secret;
use crate::kong_sim::{self, SimOptions};

/// Run a Kong Admin API simulator seeded with test consumers and JWT credentials.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "kong-sim")]
pub struct Args {
    /// port to listen on (default 8001; 0 picks a free port)
    #[argh(option, default = "8001")]
    pub port: u16,
    /// address to listen on (default 127.0.0.1)
    #[argh(option, default = "String::from(\"127.0.0.1\")")]
    pub host: String,
    /// number of seeded test consumers (default 10)
    #[argh(option, default = "10")]
    pub consumers: usize,
    /// require this token in Kong-Admin-Token (or Authorization: Bearer) on every request
    #[argh(option)]
    pub admin_token: Option<Secret>,
    /// milliseconds to wait before answering each request (default 0)
    #[argh(option, default = "0")]
    pub latency_ms: u64,
    /// fraction of requests, 0.0 to 1.0, answered with 503 (default 0)
    #[argh(option, default = "0.0")]
    pub fail_rate: f64,
    /// JSON file of consumers and credentials to seed instead of the test consumers
    #[argh(option)]
    pub seed_file: Option<PathBuf>,
}

/// More would only make startup slow; load tests need hundreds, not millions.
const MAX_CONSUMERS: usize = 1_000_000;

pub fn run(args: Args) -> Result<ExitCode, CmdError> {
    if args.consumers > MAX_CONSUMERS {
        return Err(CmdError::usage(format!(
            "--consumers: {} is too many (at most {MAX_CONSUMERS})",
            args.consumers
        )));
    }
    // Registered before the listening line, so a signal sent as soon as it appears is caught.
    let mut signals = Signals::new([SIGTERM, SIGINT])
        .map_err(|err| CmdError::failed_with("cannot install signal handlers", err))?;
    let options = SimOptions {
        host: args.host,
        port: args.port,
        consumers: args.consumers,
        admin_token: args.admin_token,
        latency_ms: args.latency_ms,
        fail_rate: args.fail_rate,
        seed_file: args.seed_file,
    };
    let sim = kong_sim::start(options).map_err(|err| {
        if err.is_usage() {
            CmdError::usage(err.to_string())
        } else {
            CmdError::failed_with("kong-sim could not start", err)
        }
    })?;
    print_banner(&sim);
    let signal = signals.forever().next();
    log::debug!("kong-sim: stopping on signal {signal:?}");
    sim.shutdown();
    Ok(ExitCode::SUCCESS)
}

fn print_banner(sim: &kong_sim::KongSim) {
    let mut out = std::io::stdout().lock();
    let mut text = format!("kong-sim listening on {}\n", sim.url());
    for consumer in sim.consumers() {
        let key = if consumer.key.is_empty() {
            "-"
        } else {
            consumer.key.as_str()
        };
        text.push_str(&format!("{} {} {key}\n", consumer.username, consumer.id));
    }
    // A closed stdout (piped into `head`) must not stop the simulator.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_with_defaults() {
        let args = Args::from_args(&["kong-sim"], &[]).unwrap();
        assert_eq!(
            (args.port, args.host.as_str(), args.consumers),
            (8001, "127.0.0.1", 10)
        );
        assert_eq!(args.fail_rate, 0.0);
        let args = Args::from_args(
            &["kong-sim"],
            &["--port", "0", "--admin-token", "t", "--fail-rate", "0.5"],
        )
        .unwrap();
        assert_eq!(args.port, 0);
        assert_eq!(args.fail_rate, 0.5);
        assert!(!format!("{args:?}").contains("\"t\""), "token is redacted");
    }
}
