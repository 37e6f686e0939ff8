//! `auth-service serve`: load config, start the server (and the embedded Kong simulator with
//! `--kong-sim`), wait for SIGTERM/SIGINT, shut down in order, exit 0.

use std::process::ExitCode;
use std::sync::Arc;

use argh::FromArgs;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::app::App;
use crate::cmd::CmdError;
use crate::config::{Env, ServeOverrides, ServiceConfig};
use crate::{kong_sim, logging, server};

/// Run the HTTP token service.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "serve")]
pub struct Args {
    /// port to listen on (default: PORT or 3000; 0 picks a free port)
    #[argh(option)]
    pub port: Option<u16>,
    /// address to bind (default 0.0.0.0)
    #[argh(option)]
    pub host: Option<String>,
    /// worker threads (default 4 x cores, at least 8)
    #[argh(option)]
    pub workers: Option<usize>,
    /// start the embedded Kong Admin API simulator and use it
    #[argh(switch)]
    pub kong_sim: bool,
}

pub fn run(args: Args) -> Result<ExitCode, CmdError> {
    let cwd = std::env::current_dir()
        .map_err(|err| CmdError::failed_with("cannot read the working directory", err))?;
    let env = Env::load(&cwd).map_err(|err| CmdError::usage(err.to_string()))?;
    // Validate before starting anything, so a bad value never leaves a simulator running.
    let mut overrides = ServeOverrides {
        host: args.host.clone(),
        port: args.port,
        workers: args.workers,
        kong_sim_url: args.kong_sim.then(|| "http://127.0.0.1:1".to_owned()),
    };
    let config =
        ServiceConfig::load(&env, &overrides).map_err(|err| CmdError::usage(err.to_string()))?;
    logging::init(&config.log_level);

    // Registered before we announce the port, so a signal right after start-up is not lost.
    let mut signals = Signals::new([SIGTERM, SIGINT])
        .map_err(|err| CmdError::failed_with("cannot install signal handlers", err))?;

    let simulator = if args.kong_sim {
        let simulator = kong_sim::start(kong_sim::SimOptions::embedded()).map_err(|err| {
            CmdError::failed_with("cannot start the embedded kong simulator", err)
        })?;
        println!("embedded kong-sim at {}", simulator.url());
        for consumer in simulator.consumers() {
            println!(
                "  consumer {} id={} key={}",
                consumer.username, consumer.id, consumer.key
            );
        }
        overrides.kong_sim_url = Some(simulator.url());
        Some(simulator)
    } else {
        None
    };
    let config = match &simulator {
        Some(_) => {
            ServiceConfig::load(&env, &overrides).map_err(|err| CmdError::usage(err.to_string()))?
        }
        None => config,
    };

    let app = Arc::new(App::new(config));
    let running = server::start(Arc::clone(&app))
        .map_err(|err| CmdError::failed_with("cannot start the server", err))?;
    println!("listening on http://{}", running.addr);
    log::info!(
        "auth-service {} serving with {} workers, kong at {} ({})",
        env!("CARGO_PKG_VERSION"),
        app.config.server.workers,
        app.store.client().admin_url(),
        app.config.kong.mode.as_str()
    );

    let signal = signals.forever().next().unwrap_or(SIGTERM);
    log::info!("received signal {signal}; draining");
    let stopped = running.shutdown();
    if let Some(simulator) = simulator {
        simulator.shutdown();
    }
    log::info!("stopped ({} workers abandoned)", stopped.abandoned_workers);
    Ok(ExitCode::SUCCESS)
}
