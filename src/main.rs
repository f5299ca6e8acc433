//! `hipache [-c FILE] [-d]`: load the config, then run the master (or, with `--dry`, print the
//! config and exit; with a subcommand, manage routes and exit). The master re-executes this
//! binary with `--worker` for each worker.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use hipache::access_log::AccessLog;
use hipache::cli::Cli;
use hipache::config::Config;
use hipache::privileges::{self, Outcome};
use hipache::worker::{self, exit_code, inherit};
use hipache::{logging, master, tls};

fn main() -> ExitCode {
    let cli = Cli::from_env();
    let path = cli.config_path();
    let loaded = match Config::load(&path) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("hipache: {error:#}");
            return exit(exit_code::CONFIG);
        }
    };
    if let Some(command) = &cli.command {
        return hipache::manage::run(command, &loaded.config);
    }
    if cli.dry {
        for warning in &loaded.warnings {
            eprintln!("hipache: warning: {warning}");
        }
        // A closed stdout (`hipache --dry | head`) is the reader's choice, not an error.
        let _ = writeln!(std::io::stdout().lock(), "{}", loaded.config.censored());
        return ExitCode::SUCCESS;
    }
    logging::init(loaded.config.server.debug);
    if cli.worker {
        return match run_worker(loaded.config) {
            Ok(code) => exit(code),
            Err(error) => {
                tracing::error!("worker cannot start: {error:#}");
                exit(exit_code::STARTUP)
            }
        };
    }
    tracing::info!(path = %path.display(), "config loaded");
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    match master::run(absolute(&path), loaded.config) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!("{:#}", anyhow::Error::from(error));
            ExitCode::FAILURE
        }
    }
}

/// A worker: adopt the master's sockets, read certificates and open the access log while still
/// root, drop privileges, serve. Returns the exit status that tells the master why it stopped.
fn run_worker(config: Config) -> anyhow::Result<i32> {
    // If the master dies, so do we: an orphaned worker would keep the ports with no supervisor.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
        .context("cannot ask to be stopped with the master")?;
    if nix::unistd::getppid() == nix::unistd::Pid::from_raw(1) {
        anyhow::bail!("the master exited before this worker started");
    }
    // Started as /proc/self/exe, the kernel names us `exe`: `top` and `pkill hipache` should
    // find workers by the name operators know. A failure only costs the name.
    let _ = nix::sys::prctl::set_name(c"hipache");
    let listeners = inherit::listeners()?;
    let link = inherit::MasterLink::inherited();
    // Read before privileges are dropped: keys are often readable by root only.
    let certificates = tls::Certificates::from_config(&config)?;
    let access_log = match &config.server.access_log {
        Some(path) => Some(
            AccessLog::open(path)
                .with_context(|| format!("cannot open access log {}", path.display()))?,
        ),
        None => None,
    };
    match privileges::drop_to(&config.user, &config.group)? {
        Outcome::Dropped => tracing::debug!(user = %config.user, "dropped privileges"),
        Outcome::StayedRoot => tracing::debug!("running as root, as the config asks"),
        Outcome::NotRoot => {}
    }
    let exit = worker::run(config, listeners, access_log, certificates, &link)?;
    Ok(exit.code())
}

/// Workers are started with this path; made absolute so a later `chdir` cannot change its meaning.
fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
