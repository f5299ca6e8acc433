//! The master process: binds every listener, keeps `server.workers` workers alive, reloads
//! without closing a socket, and stops them all on request. It serves no request itself.
//!
//! Workers are generations: a reload (SIGHUP) starts generation N+1 with the new configuration,
//! waits until each of its workers reports ready, then asks generation N to drain. A worker of
//! the current generation that exits unasked is replaced, at once or, when it keeps crashing
//! early, after a growing delay (`backoff`).

pub mod backoff;
pub mod listeners;
mod signals;
pub mod spawn;
mod supervisor;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::access_log::AccessLog;
use crate::config::Config;
use crate::privileges::{self, PrivilegeError};
use crate::tls::{self, TlsError};
use listeners::{ListenError, Listener};
use spawn::SpawnError;

#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot open access log {}", path.display())]
    AccessLog {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the master's runtime")]
    Runtime(#[source] io::Error),
}

/// A bound listener and the address the configuration asked for (port 0 stays 0 here, so that
/// a reload keeps the socket instead of binding another free port).
struct Bound {
    configured: SocketAddr,
    listener: Listener,
}

/// Runs the master until SIGTERM/SIGINT; returns once every worker has exited.
pub fn run(config_path: PathBuf, config: Config) -> Result<(), MasterError> {
    // A missing user or a broken certificate is the operator's to fix: say so once, before
    // starting any worker (each worker reads its certificates again, before dropping root).
    privileges::target(&config.user, &config.group)?;
    tls::Certificates::from_config(&config)?;
    if let Some(path) = &config.server.access_log {
        AccessLog::open(path).map_err(|source| MasterError::AccessLog {
            path: path.clone(),
            source,
        })?;
    }
    let bound = bind_all(&config, &[])?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(MasterError::Runtime)?;
    let local = tokio::task::LocalSet::new();
    local.block_on(
        &runtime,
        supervisor::Supervisor::new(config_path, config, bound).run(),
    )
}

/// The listeners `config` asks for: sockets of `existing` shared (duplicated) where the address
/// is the same, new ones bound (and logged) for the rest. `existing` is left untouched, so a
/// failed reload keeps every socket the running workers use.
fn bind_all(config: &Config, existing: &[Bound]) -> Result<Vec<Bound>, MasterError> {
    // Workers map the n-th https socket they inherit to config.https[n]: keep this order.
    let wanted = config
        .http
        .iter()
        .map(|address| (*address, false))
        .chain(config.https.iter().map(|https| (https.address, true)));
    let mut bound = Vec::new();
    for (configured, tls) in wanted {
        let reused = existing
            .iter()
            .find(|b| b.configured == configured && b.listener.tls == tls);
        let entry = match reused {
            Some(entry) => {
                let fail = |source| ListenError {
                    address: configured,
                    source,
                };
                let socket = entry.listener.socket.try_clone().map_err(fail)?;
                spawn::make_inheritable(&socket)?;
                let listener = Listener {
                    socket,
                    address: entry.listener.address,
                    tls,
                };
                Bound {
                    configured,
                    listener,
                }
            }
            None => {
                let listener = listeners::bind(configured, tls)?;
                spawn::make_inheritable(&listener.socket)?;
                let scheme = if tls { "https" } else { "http" };
                tracing::info!(address = %listener.address, scheme, "listening on");
                Bound {
                    configured,
                    listener,
                }
            }
        };
        bound.push(entry);
    }
    Ok(bound)
}
