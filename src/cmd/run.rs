//! `scrubs run` and `scrubs validate`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use scrubs::config::Config;
use scrubs::topology::Topology;
use tracing::{error, info};

use super::CliError;

/// Threads of the runtime's blocking pool (see where the runtime is built).
const BLOCKING_THREADS: usize = 4;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file (see deploy/scrubs.yaml).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The configuration file to check.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Check the file alone: skip the secrets, key and certificate files,
    /// directories and rule files it names (for linting a configuration in
    /// CI, away from the machine it runs on). The built-in pack is still
    /// compiled.
    #[arg(long)]
    no_environment: bool,
}

/// Loads and checks a configuration, printing every problem; `run` checks
/// the environment as `validate` does, so both report the same problems the
/// same way before anything starts.
fn load(path: &std::path::Path, environment: bool) -> Option<Config> {
    match Config::load_checked(path, environment) {
        Ok(c) => Some(c),
        Err(problems) => {
            eprintln!("scrubs: {} problem(s) in the configuration", problems.len());
            for p in problems {
                eprintln!("  {p}");
            }
            None
        }
    }
}

pub fn validate(args: ValidateArgs) -> Result<ExitCode, CliError> {
    match load(&args.config, !args.no_environment) {
        Some(cfg) => {
            println!(
                "{}: ok ({} source(s), {} vendor(s), audit {}{}{})",
                args.config.display(),
                cfg.sources.len(),
                cfg.vendors.len(),
                if cfg.audit.is_some() { "on" } else { "off" },
                if cfg.rules.builtin {
                    ""
                } else {
                    ", built-in HIPAA pack OFF"
                },
                if args.no_environment {
                    "; secrets, files and directories not checked (--no-environment)"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::from(2)),
    }
}

pub fn run(args: RunArgs) -> Result<ExitCode, CliError> {
    limit_malloc_arenas();
    scrubs::logging::init();
    let Some(cfg) = load(&args.config, true) else {
        return Ok(ExitCode::from(2));
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // File reads, checkpoint and spool writes and OTLP decoding run on
        // the blocking pool. Every thread that allocates can take its own
        // malloc arena, whose high-water mark stays resident, so a small
        // pool (tokio's default allows 512) keeps peak RSS down; a task
        // waits for a free thread rather than making a new one.
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_name("scrubs-worker")
        .enable_all()
        .build()?;
    match rt.block_on(serve(cfg, args.config)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            error!(error = %e, "scrubs stopped");
            eprintln!("scrubs: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

/// Re-executes scrubs once with `MALLOC_ARENA_MAX=2` unless the variable is
/// already set (an operator's value is kept). glibc gives each thread that
/// allocates while another holds the lock an arena of its own, up to eight
/// per core, and each arena's high-water mark stays resident: with two
/// runtime threads, the blocking pool and librdkafka's threads, that was a
/// third of the peak RSS (58.8 MiB at saturation, 47.5 MiB with two arenas,
/// at the same throughput). Setting the variable before the process starts
/// is the only way to change it without `unsafe` (`mallopt`). This runs
/// before any thread is started; if the exec fails (no `/proc/self/exe`),
/// scrubs carries on in this process. Other C libraries ignore the variable.
fn limit_malloc_arenas() {
    use std::os::unix::process::CommandExt;

    const VAR: &str = "MALLOC_ARENA_MAX";
    if std::env::var_os(VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    // `exec` only returns on failure.
    let err = cmd.args(args).env(VAR, "2").exec();
    eprintln!("scrubs: could not re-execute with {VAR}=2 ({err}); continuing");
}

/// Builds the pipeline, runs it until SIGTERM, SIGINT or the end of the
/// input (stdin-only configurations), reloading the rules on SIGHUP, then
/// drains it within `shutdown.drain_deadline`.
async fn serve(cfg: Config, config_path: PathBuf) -> Result<(), String> {
    let mut running = Topology::build(&cfg).await.map_err(|e| e.to_string())?;

    // Signals, caught only once everything is started, as before the
    // topology moved into the library: a signal during start-up still has
    // its default effect.
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    /// What ends one wait for a signal or the end of the input.
    enum Wake {
        Term,
        Int,
        InputEnded,
        Hup,
    }
    loop {
        // `input_ended` is cancel-safe: a SIGHUP in the middle of it loses
        // nothing, the next turn waits for the sources still running.
        let wake = tokio::select! {
            _ = term.recv() => Wake::Term,
            _ = int.recv() => Wake::Int,
            _ = running.input_ended() => Wake::InputEnded,
            _ = hup.recv() => Wake::Hup,
        };
        match wake {
            Wake::Term => {
                info!("SIGTERM: draining");
                break;
            }
            Wake::Int => {
                info!("SIGINT: draining");
                break;
            }
            Wake::InputEnded => {
                info!("input ended: draining");
                break;
            }
            Wake::Hup => {
                running.reload_file(&config_path);
            }
        }
    }
    running.drain(cfg.shutdown.drain_deadline).await;
    Ok(())
}
