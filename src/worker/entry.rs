//! The worker process's entry: what `hipache --worker` does between loading the config and
//! serving. Owns the order of the start (adopt the master's sockets, read certificates and open
//! the access log while still root, drop privileges) and turns its outcome into the exit status
//! the master reads. Serving itself is `worker::run`.

use std::process::ExitCode;

use anyhow::Context as _;

use super::{exit_code, inherit};
use crate::access_log::AccessLog;
use crate::config::Config;
use crate::privileges::{self, Outcome};
use crate::tls;

/// Runs a worker started by the master; the exit status tells the master why it stopped.
pub fn main(config: Config) -> ExitCode {
    let code = match start_and_serve(config) {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("worker cannot start: {error:#}");
            exit_code::STARTUP
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn start_and_serve(config: Config) -> anyhow::Result<i32> {
    // Started as /proc/self/exe, the kernel names us `exe`: `top` and `pkill hipache` should
    // find workers by the name operators know. A failure only costs the name.
    let _ = nix::sys::prctl::set_name(c"hipache");
    let listeners = inherit::listeners()?;
    let link = inherit::MasterLink::inherited();
    // Read before privileges are dropped: keys are often readable by root only.
    let certificates = tls::Certificates::from_config(&config)?;
    let access_log = match &config.server.access_log {
        Some(path) => Some(
            AccessLog::open(path, config.server.access_log_format)
                .with_context(|| format!("cannot open access log {}", path.display()))?,
        ),
        None => None,
    };
    let access_log = match config.logging.as_ref().and_then(|l| l.udp.as_ref()) {
        Some(udp) => AccessLog::shipping(
            access_log,
            &udp.host,
            udp.port,
            config.server.access_log_format,
        ),
        None => access_log,
    };
    match privileges::drop_to(&config.user, &config.group)? {
        Outcome::Dropped => tracing::debug!(user = %config.user, "dropped privileges"),
        Outcome::StayedRoot => tracing::debug!("running as root, as the config asks"),
        Outcome::NotRoot => {}
    }
    let exit = super::run(config, listeners, access_log, certificates, &link)?;
    Ok(exit.code())
}
