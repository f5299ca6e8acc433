//! `hipache --dry`: everything a start would refuse, found without starting.
//!
//! Owns the list of start-time checks beyond parsing: the `user`/`group` (looked up as the master
//! does, so only when running as root), the certificates and keys, the access log (opened for
//! appending and closed: never truncated, created only where the daemon would create it), the
//! `logging.udp` target (resolved and connected), the file driver's routes, each listening
//! address (refused when another process listens on its port, as the master's start refuses it;
//! then bound with the master's options and released), and the admin listener and statsd target
//! of `logging.web` and `metrics`. It changes nothing a start would not: no socket stays open, no
//! privilege is dropped. Rendering the effective configuration is `Config::censored`'s job.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::access_log::{self, AccessLog, ShippingError};
use crate::admin::{Admin, AdminError};
use crate::config::{Config, Driver, Loaded};
use crate::escape;
use crate::manage;
use crate::master::listeners::{self, ListenError};
use crate::privileges::{self, PrivilegeError};
use crate::routes::file::{FileRoutes, FileRoutesError};
use crate::supervision::exit_code;
use crate::tls::{Certificates, TlsError};

/// `hipache --dry`: the warnings, then the first thing a start would refuse (exit 1, as the start
/// would) or, when there is none, the effective configuration on stdout (exit 0).
pub fn main(loaded: &Loaded) -> ExitCode {
    for warning in &loaded.warnings {
        eprintln!("hipache: warning: {warning}");
    }
    let file = loaded.config.source.display();
    if let Err(error) = check(&loaded.config) {
        eprintln!("hipache: {file}: {:#}", anyhow::Error::from(error));
        eprintln!("hipache: configuration {file}: test failed");
        return ExitCode::from(u8::try_from(exit_code::STARTUP).unwrap_or(1));
    }
    // A closed stdout (`hipache --dry | head`) is the reader's choice, not an error.
    let _ = writeln!(io::stdout().lock(), "{}", loaded.config.censored());
    // The verdict, as `nginx -t` ends: Redis not answering does not stop a start (routes come
    // once it answers, and known hosts are served from the cache meanwhile), so it is said, not
    // refused.
    match redis_silence(&loaded.config) {
        None => eprintln!("hipache: configuration {file}: test is successful"),
        Some(silent) => eprintln!(
            "hipache: configuration {file}: test is successful, but {}",
            escape::Controls(&silent)
        ),
    }
    ExitCode::SUCCESS
}

/// What `driver`'s Redis servers (read and write) say to a `PING`: `None` when each answers,
/// else which does not and why.
fn redis_silence(config: &Config) -> Option<String> {
    let Driver::Redis { read, write } = &config.driver else {
        return None;
    };
    let servers = if read == write {
        vec![read]
    } else {
        vec![read, write]
    };
    let silent: Vec<String> = servers
        .into_iter()
        .filter_map(|server| manage::ping_redis(server).err())
        .collect();
    (!silent.is_empty()).then(|| silent.join("; "))
}

/// The first reason a start with this configuration would fail.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartCheckError {
    /// `user` or `group` unknown, when running as root.
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    /// A certificate or key that does not load.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// `server.accessLog` cannot be opened for appending.
    #[error("server.accessLog: cannot open {}", path.display())]
    AccessLog {
        /// `server.accessLog`.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `logging.udp` cannot be resolved or reached.
    #[error(transparent)]
    Shipping(#[from] ShippingError),
    /// The `file:` driver's routes do not load.
    #[error("driver: cannot load the routes")]
    Routes(#[source] FileRoutesError),
    /// `logging.web` cannot be bound, or `metrics` not resolved.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// `key` is `http.bind` or `https.bind`; the source names the address.
    #[error("{key}")]
    Listen {
        /// The key of the address.
        key: &'static str,
        /// The address and the OS error.
        #[source]
        source: ListenError,
    },
}

/// Runs every check in the order a start meets them; the first failure is returned.
pub(crate) fn check(config: &Config) -> Result<(), StartCheckError> {
    privileges::target(&config.user, &config.group)?;
    Certificates::from_config(config)?;
    if let Some(path) = &config.server.access_log {
        // The daemon's own open (append, create, 0644): what fails here fails at start.
        AccessLog::open(path, config.server.access_log_format).map_err(|source| {
            StartCheckError::AccessLog {
                path: path.clone(),
                source,
            }
        })?;
    }
    if let Some(udp) = config.logging.as_ref().and_then(|l| l.udp.as_ref()) {
        access_log::ship_to(&udp.host, udp.port)?;
    }
    if let Driver::File(path) = &config.driver {
        FileRoutes::open(path, config.server.dead_backend_ttl, Default::default())
            .map_err(StartCheckError::Routes)?;
    }
    let http = config
        .http
        .iter()
        .map(|address| ("http.bind", *address, None));
    let https = config
        .https
        .iter()
        .enumerate()
        .map(|(i, l)| ("https.bind", l.address, Some(i)));
    for (key, address, tls) in http.chain(https) {
        // Port 0 binds some free port, as the start would: it can only fail for the address.
        // The socket is closed when the listener drops at the end of this statement.
        let fail = |source| StartCheckError::Listen { key, source };
        match listeners::probe(address) {
            Ok(()) => {}
            // `--dry` before a reload: the port is this file's running instance's, which the
            // reload keeps. Any other holder would make the start fail.
            Err(ListenError::Taken {
                holder: Some(holder),
                ..
            }) if holder.runs_config(&config.source) => {
                eprintln!("hipache: {key}: {address} is served by the running instance of this file ({holder}); a reload keeps it");
                continue;
            }
            Err(error) => return Err(fail(error)),
        }
        let http3 = tls.is_some() && config.http3.is_some();
        listeners::bind(address, tls, http3).map_err(fail)?;
    }
    // Bound and set up as the master would, then dropped: the socket closes at once.
    Admin::bind(config)?;
    Ok(())
}
