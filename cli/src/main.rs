//! The `procforest` binary: parses the command line, sets up logging, runs a command and
//! maps its outcome to an exit code (see `error.rs`).

mod bundled;
mod commands;
mod error;
mod flags;
mod progress;
mod run_config;

use clap::Parser;
use procforest_cluster::logging::{self, LogFormat};

use crate::{
    error::{CliError, Result},
    flags::Cli,
};

/// Finds `--config FILE` (or `PROCFOREST_CONFIG`) before parsing, so the file's settings
/// reach clap as environment variables.
fn apply_config_file() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--config=").map(String::from))
        })
        .or_else(|| std::env::var("PROCFOREST_CONFIG").ok());
    let Some(path) = path else { return Ok(()) };
    for (key, value) in flags::load_config_file(path.as_ref())? {
        if std::env::var_os(&key).is_none() {
            // SAFETY: called first thing in `main`, before any other thread exists.
            unsafe { std::env::set_var(key, value) };
        }
    }
    Ok(())
}

/// Caps glibc's malloc arenas at one per core (it makes up to eight per core, one per
/// thread that allocates while the others' are busy). The runtime's, Ballista's and the
/// executors' threads then reuse each other's freed memory instead of faulting in fresh
/// pages for new arenas (BENCHMARKS.md). Must run before any thread starts.
fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: mallopt only sets an allocator parameter; no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, cores.min(i32::MAX as usize) as i32);
        }
    }
}

/// Parses the command line; `--help` and `--version` print and exit 0, usage errors
/// print clap's message and exit 1 (bad input, as documented).
fn parse() -> Cli {
    Cli::try_parse().unwrap_or_else(|e| {
        let code = if e.use_stderr() { 1 } else { 0 };
        let _ = e.print();
        std::process::exit(code);
    })
}

fn main() {
    cap_malloc_arenas();
    if let Err(e) = apply_config_file() {
        exit_with(e);
    }
    let cli = parse();
    let format = match cli.log_format {
        flags::LogFormat::Text => LogFormat::Text,
        flags::LogFormat::Json => LogFormat::Json,
    };
    // Ballista's sort shuffle warns each time a task's shuffle buffer spills to disk, which
    // the evidence's large shuffles do by design: a line per spill, nothing to act on.
    // The Delta kernel logs an error for a table location with no commits yet, which is
    // how procforest finds that an output table (anomalies, summaries) is still to be
    // created; a real failure to open a table is reported by procforest itself.
    // A terminal's status line says which phase starts: the phases' log lines would only
    // repeat it.
    let default_filter = match commands::shows_status_line(&cli) {
        true => {
            "warn,procforest=info,procforest_pipeline::run=warn,ballista_core::execution_plans::sort_shuffle=error,buoyant_kernel::snapshot::builder=off"
        }
        false => {
            "warn,procforest=info,ballista_core::execution_plans::sort_shuffle=error,buoyant_kernel::snapshot::builder=off"
        }
    };
    logging::init(format, "PROCFOREST_LOG", default_filter);
    let runtime = match procforest_cluster::process::runtime() {
        Ok(r) => r,
        Err(e) => exit_with(CliError::Runtime(e)),
    };
    // An interrupt ends the run (dropping it removes its temporary folders): Ballista
    // standalone's in-process executor listens for Ctrl-C too, and would otherwise stop
    // alone and leave the job waiting for executors.
    let outcome = runtime.block_on(async {
        // Listening before any work starts: a signal that came before the handlers were
        // registered would kill the process outright, its temporary folders left behind.
        let interrupted = interrupted();
        tokio::select! {
            result = commands::dispatch(cli) => result.map_err(|e| (e.to_string(), e.exit_code())),
            (signal, code) = interrupted => Err((format!("interrupted by {signal}"), code)),
        }
    });
    // Exit without shutting the runtime down: the command's work is complete (its
    // outputs written, its temporary folders removed), and what is left are Ballista
    // standalone's idle server tasks, whose orderly shutdown only delays the exit.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    match outcome {
        Ok(()) => std::process::exit(0),
        Err((message, code)) => {
            eprintln!("error: {message}");
            std::process::exit(code);
        }
    }
}

fn exit_with(error: CliError) -> ! {
    eprintln!("error: {error}");
    std::process::exit(error.exit_code());
}

/// Listens for SIGINT and SIGTERM from the call on (within the runtime); the future
/// resolves on either with the signal's name and the shell's exit code for it.
fn interrupted() -> impl std::future::Future<Output = (&'static str, i32)> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async fn received(signal: Option<Signal>) {
        match signal {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    async move {
        tokio::select! {
            () = received(interrupt) => ("SIGINT", 130),
            () = received(terminate) => ("SIGTERM", 143),
        }
    }
}
