//! `auth-service serve`: load config, start the server (and the embedded Kong simulator with
//! `--kong-sim`), wait for SIGTERM/SIGINT, shut down in order, exit 0.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argh::FromArgs;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::app::App;
use crate::cmd::CmdError;
use crate::config::{Env, ServeOverrides, ServiceConfig};
use crate::profiling::{
    self, Formats, Naming, OutputSpec, Profiler, SessionKind, SessionRequest, Trigger,
};
use crate::{kong_sim, logging, monitor, server};

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
    /// profile CPU for the whole run; write CPU.<ts>.<pid>.md on exit
    #[argh(switch)]
    pub cpu_prof_md: bool,
    /// profile CPU for the whole run; write CPU.<ts>.<pid>.pb.gz (pprof) on exit
    #[argh(switch)]
    pub cpu_prof: bool,
    /// profile CPU for the whole run; write CPU.<ts>.<pid>.svg (flamegraph) on exit
    #[argh(switch)]
    pub cpu_prof_flamegraph: bool,
    /// directory for the CPU profile files (default: the working directory)
    #[argh(option)]
    pub cpu_prof_dir: Option<PathBuf>,
    /// file name of the CPU Markdown profile (the .pb.gz and .svg share its stem)
    #[argh(option)]
    pub cpu_prof_name: Option<String>,
    /// profile the heap for the whole run; write Heap.<ts>.<pid>.md on exit
    #[argh(switch)]
    pub heap_prof_md: bool,
    /// profile the heap for the whole run; write Heap.<ts>.<pid>.pb.gz (pprof) on exit
    #[argh(switch)]
    pub heap_prof: bool,
    /// directory for the heap profile files (default: the CPU directory, else the working one)
    #[argh(option)]
    pub heap_prof_dir: Option<PathBuf>,
}

/// The exit-time profile the flags ask for.
struct ExitProfile {
    request: SessionRequest,
    heap_dir: PathBuf,
}

/// Validates the Bun-style profiling flags; directories are created and probed now, so an
/// unwritable one is a start-up error rather than a profile lost at exit.
fn exit_profile(args: &Args) -> Result<Option<ExitProfile>, CmdError> {
    let formats = Formats {
        cpu_md: args.cpu_prof_md,
        cpu_pprof: args.cpu_prof,
        cpu_svg: args.cpu_prof_flamegraph,
        heap_md: args.heap_prof_md,
        heap_pprof: args.heap_prof,
    };
    let cpu = formats.cpu_md || formats.cpu_pprof || formats.cpu_svg;
    let heap = formats.heap_md || formats.heap_pprof;
    if !cpu && (args.cpu_prof_dir.is_some() || args.cpu_prof_name.is_some()) {
        return Err(CmdError::usage(
            "--cpu-prof-dir and --cpu-prof-name need --cpu-prof-md, --cpu-prof or --cpu-prof-flamegraph",
        ));
    }
    if !heap && args.heap_prof_dir.is_some() {
        return Err(CmdError::usage(
            "--heap-prof-dir needs --heap-prof-md or --heap-prof",
        ));
    }
    if let Some(name) = &args.cpu_prof_name
        && (name.is_empty() || name.contains('/') || name.starts_with('.'))
    {
        return Err(CmdError::usage(format!(
            "invalid --cpu-prof-name {name:?}: expected a plain file name"
        )));
    }
    let kind = match (cpu, heap) {
        (false, false) => return Ok(None),
        (true, false) => SessionKind::Cpu,
        (false, true) => SessionKind::Heap,
        (true, true) => SessionKind::Both,
    };
    let cpu_dir = args
        .cpu_prof_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("."));
    let heap_dir = args
        .heap_prof_dir
        .clone()
        .unwrap_or_else(|| cpu_dir.clone());
    for (flag, dir, used) in [
        ("--cpu-prof-dir", &cpu_dir, cpu),
        ("--heap-prof-dir", &heap_dir, heap),
    ] {
        if used && let Err(err) = profiling::check_writable(dir) {
            return Err(CmdError::usage(format!("{flag} {}: {err}", dir.display())));
        }
    }
    let naming = match &args.cpu_prof_name {
        Some(name) => Naming::CpuName(name.clone()),
        None => Naming::Standard,
    };
    Ok(Some(ExitProfile {
        request: SessionRequest {
            kind,
            trigger: Trigger::Exit,
            output: OutputSpec {
                dir: if cpu { cpu_dir } else { heap_dir.clone() },
                naming,
                formats,
            },
            seconds: None,
        },
        heap_dir,
    }))
}

/// Stops the exit session and puts heap files where `--heap-prof-dir` asked.
fn write_exit_profile(profiler: &Profiler, heap_dir: &Path) {
    let finished = match profiler.stop() {
        Ok(Some(finished)) => finished,
        Ok(None) => return,
        Err(err) => {
            log::error!("the exit profile was not written: {err}");
            return;
        }
    };
    for error in &finished.errors {
        log::error!("exit profile: {error}");
    }
    for artifact in finished.artifacts {
        let mut path = artifact.path;
        if !artifact.kind.is_cpu()
            && let Some(name) = path.file_name()
            && path.parent() != Some(heap_dir)
        {
            let target = heap_dir.join(name);
            match std::fs::rename(&path, &target) {
                Ok(()) => path = target,
                Err(err) => log::error!(
                    "cannot move {} to {}: {err}",
                    path.display(),
                    heap_dir.display()
                ),
            }
        }
        println!("profile written: {}", path.display());
    }
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
    let exit_profile = exit_profile(&args)?;

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

    let app = Arc::new(
        App::new(config)
            .map_err(|err| CmdError::failed_with("cannot start the kong store threads", err))?,
    );
    if let Some(profile) = &exit_profile {
        app.profiler
            .start(profile.request.clone())
            .map_err(|err| CmdError::failed_with("cannot start the exit profile", err))?;
    }
    let samples = app
        .take_sample_receiver()
        .ok_or_else(|| CmdError::failed("the SLA monitor already runs"))?;
    let monitor = monitor::start(monitor::Inputs {
        config: &app.config.sla,
        samples,
        profiler: Arc::clone(&app.profiler),
        metrics: Arc::clone(&app.metrics),
        state: Arc::clone(&app.sla),
    })
    .map_err(|err| CmdError::failed_with("cannot start the SLA monitor", err))?;
    // OTLP export threads (none in TELEMETRY_MODE=console).
    app.telemetry
        .start(&app)
        .map_err(|err| CmdError::failed_with("cannot start telemetry", err))?;
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
    let deadline = Instant::now() + app.config.server.shutdown_grace;
    // Shutdown order (STYLE 20): no new automatic profiles; drain and join the workers; drop
    // the last sample sender (it lives in `App`, and the workers' clones of the `Arc` are gone)
    // so the monitor drains the channel, stops a running automatic session, writes its files
    // and returns; join it; only then write the exit profile.
    monitor.begin_shutdown();
    let stopped = running.shutdown();
    let profiler = Arc::clone(&app.profiler);
    // Last spans and metrics out, export threads joined, before the `App` goes.
    app.telemetry.shutdown();
    drop(app);
    // The monitor gets what is left of the grace period, and at least a second.
    monitor.join(deadline.max(Instant::now() + Duration::from_secs(1)));
    if let Some(profile) = &exit_profile {
        write_exit_profile(&profiler, &profile.heap_dir);
    }
    if let Some(simulator) = simulator {
        simulator.shutdown();
    }
    log::info!("stopped ({} workers abandoned)", stopped.abandoned_workers);
    Ok(ExitCode::SUCCESS)
}
