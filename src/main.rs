//! `hipache [-c FILE] [-d]`: parse the command line, load the config, then hand off to the master,
//! to a worker (the master re-executes this binary with `--worker`), to `--dry`, or to route
//! management (`hipache frontend ...`, `hipache backend ...`); or print the manual or the shell
//! completions.

use std::path::Path;
use std::process::ExitCode;

use hipache::cli::{self, Cli, Command};
use hipache::config::{Config, ConfigError};
use hipache::supervision::exit_code;
use hipache::worker;
use hipache::{dry, logging, master};

fn main() -> ExitCode {
    let cli = Cli::from_env();
    // Neither needs a configuration.
    let printed = match &cli.command {
        Some(Command::Completions { shell }) => Some(cli::print_completions(*shell)),
        Some(Command::Man) => Some(cli::print_manual()),
        _ => None,
    };
    if let Some(result) = printed {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("hipache: cannot write to standard output: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let path = cli.config_path();
    let loaded = match Config::load(&path) {
        Ok(loaded) => loaded,
        Err(error) => {
            let unread = matches!(error, ConfigError::Read { .. });
            // `{:#}` through anyhow prints the cause too: the OS reason the file cannot be read.
            eprintln!("hipache: {:#}", anyhow::Error::from(error));
            if let Some(search) = cli.config_search().filter(|_| unread) {
                eprintln!("hipache: {search}");
            }
            return exit(exit_code::CONFIG);
        }
    };
    if let Some(Command::Routes(command)) = &cli.command {
        return hipache::manage::run(command, &loaded.config);
    }
    if cli.dry {
        return dry::main(&loaded);
    }
    logging::init(loaded.config.server.debug);
    if cli.worker {
        return worker::entry::main(loaded.config);
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

/// Workers are started with this path; made absolute so a later `chdir` cannot change its meaning.
fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
