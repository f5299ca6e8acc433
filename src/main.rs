//! `hipache [-c FILE] [-d]`: load the config, then serve (or, with `--dry`, print it and exit).

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;

use hipache::access_log::AccessLog;
use hipache::cli::Cli;
use hipache::config::Config;
use hipache::privileges::{self, Outcome};
use hipache::{listeners, logging, tls, worker};

/// Exit status of a configuration that cannot be loaded (1 is every other startup failure).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = cli.config_path();
    let loaded = match Config::load(&path) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("hipache: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if cli.dry {
        for warning in &loaded.warnings {
            eprintln!("hipache: warning: {warning}");
        }
        // A closed stdout (`hipache --dry | head`) is the reader's choice, not an error.
        let _ = writeln!(std::io::stdout().lock(), "{}", loaded.config.censored());
        return ExitCode::SUCCESS;
    }
    logging::init(loaded.config.server.debug);
    tracing::info!(path = %path.display(), "config loaded");
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    match run(loaded.config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    let mut bound = Vec::new();
    for &address in &config.http {
        let listener = listeners::bind(address, false)?;
        tracing::info!(address = %listener.address, scheme = "http", "listening on");
        bound.push(listener);
    }
    // Read before privileges are dropped: keys are often readable by root only.
    let certificates = tls::Certificates::from_config(&config)?;
    for https in &config.https {
        let listener = listeners::bind(https.address, true)?;
        tracing::info!(address = %listener.address, scheme = "https", "listening on");
        bound.push(listener);
    }
    let access_log = match &config.server.access_log {
        Some(path) => Some(
            AccessLog::open(path)
                .with_context(|| format!("cannot open access log {}", path.display()))?,
        ),
        None => None,
    };
    match privileges::drop_to(&config.user, &config.group)? {
        Outcome::Dropped => {
            tracing::info!(user = %config.user, group = %config.group, "dropped privileges")
        }
        Outcome::StayedRoot => {
            tracing::warn!("running as root, as the config asks (\"user\": \"root\")")
        }
        Outcome::NotRoot => {}
    }
    worker::run(config, bound, access_log, certificates)?;
    tracing::info!("stopped");
    Ok(())
}
