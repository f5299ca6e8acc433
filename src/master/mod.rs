//! The master process: binds every listener, keeps `server.workers` workers alive, reloads
//! without closing a socket, and stops them all on request. It serves no request itself.
//!
//! Workers are generations: a reload (SIGHUP) starts generation N+1 with the new configuration,
//! waits until each of its workers reports ready, then asks generation N to drain. A worker of
//! the current generation that exits unasked is replaced, at once or, when it keeps crashing
//! early, after a growing delay (`backoff`).

pub(crate) mod backoff;
pub(crate) mod listeners;
mod notify;
mod open_files;
pub(crate) mod port_holder;
mod signals;
pub(crate) mod spawn;
mod supervisor;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;

use crate::access_log::{self, AccessLog, ShippingError};
use crate::admin::{Admin, AdminError};
use crate::config::Config;
use crate::privileges::{self, PrivilegeError};
use crate::supervision::Listener;
use crate::tls::{self, TlsError};
use listeners::ListenError;
use spawn::SpawnError;

/// Why the master could not start.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// A listening address could not be bound.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The configured user or group is unusable.
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    /// A worker could not be started.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// A certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The access log could not be opened.
    #[error("cannot open access log {}", path.display())]
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
    /// The admin listener or statsd could not be set up.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The runtime could not be built.
    #[error("cannot start the master's runtime")]
    Runtime(#[source] io::Error),
}

/// The sockets of one configured address: one per worker slot (`SO_REUSEPORT`), with the address
/// the configuration asked for (port 0 stays 0 here, so that a reload keeps the sockets instead
/// of binding another free port). Their number only grows: a reload to fewer workers spreads
/// them over the remaining slots rather than closing any, since closing a listening socket
/// would reset the connections waiting in its queue.
struct Bound {
    configured: SocketAddr,
    sockets: Vec<Listener>,
}

impl Bound {
    /// The sockets worker `slot` of `workers` serves: every `workers`-th one from `slot`.
    fn for_slot(&self, slot: usize, workers: usize) -> impl Iterator<Item = &Listener> {
        self.sockets.iter().skip(slot).step_by(workers.max(1))
    }
}

/// Runs the master until SIGTERM/SIGINT; returns once every worker has exited.
pub fn run(config_path: PathBuf, config: Config) -> Result<(), MasterError> {
    // A missing user or a broken certificate is the operator's to fix: say so once, before
    // starting any worker (each worker reads its certificates again, before dropping root).
    privileges::target(&config.user, &config.group)?;
    tls::Certificates::from_config(&config)?;
    if let Some(path) = &config.server.access_log {
        AccessLog::open(path, config.server.access_log_format).map_err(|source| {
            MasterError::AccessLog {
                path: path.clone(),
                source,
            }
        })?;
    }
    check_shipping(&config)?;
    open_files::raise();
    let bound = bind_all(&config, &[])?;
    let admin = Admin::bind(&config)?;
    let lifeline = spawn::Lifeline::new()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(MasterError::Runtime)?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        // Without the admin page or metrics, the worker sockets still carry hand-overs.
        let collector = match admin {
            Some(admin) => {
                let collector = admin.collector.clone();
                admin.spawn();
                collector
            }
            None => Rc::default(),
        };
        supervisor::Supervisor::new(config_path, config, bound, lifeline)
            .run(collector)
            .await
    })
}

/// Refuses a `logging.udp` target that cannot be resolved or reached, at start and on reload:
/// the workers would serve without shipping, which nobody asked for.
fn check_shipping(config: &Config) -> Result<(), ShippingError> {
    match config.logging.as_ref().and_then(|l| l.udp.as_ref()) {
        Some(udp) => access_log::ship_to(&udp.host, udp.port).map(drop),
        None => Ok(()),
    }
}

/// The listeners `config` asks for, at least one socket per worker each: sockets of `existing`
/// shared (duplicated) where the address is the same, new ones bound for the rest (a new address
/// is logged). `existing` is left untouched, so a failed reload keeps every socket the running
/// workers use.
fn bind_all(config: &Config, existing: &[Bound]) -> Result<Vec<Bound>, MasterError> {
    let wanted = config.http.iter().map(|address| (*address, None)).chain(
        config
            .https
            .iter()
            .enumerate()
            .map(|(i, https)| (https.address, Some(i))),
    );
    let http3 = config.http3.is_some();
    let reused = |configured: SocketAddr, https: Option<usize>| {
        existing.iter().find(move |b| {
            b.configured == configured && b.sockets[0].https.is_some() == https.is_some()
        })
    };
    // Every new address is probed before any is bound: the config's own addresses may overlap
    // (`0.0.0.0:80` and `127.0.0.1:80`), which the probe must not take for another process.
    for (configured, https) in wanted.clone() {
        if reused(configured, https).is_none() {
            listeners::probe(configured)?;
        }
    }
    let mut bound = Vec::new();
    for (configured, https) in wanted {
        let mut sockets = Vec::new();
        let reused = reused(configured, https);
        let quic = https.is_some() && http3;
        for socket in reused.map_or(&[][..], |b| &b.sockets[..]) {
            let fail = |source| ListenError::Bind {
                address: configured,
                source,
            };
            let duplicate = socket.socket.try_clone().map_err(fail)?;
            // HTTP/3 turned on by this reload gets its sockets now; one turned off drops them.
            let quic = match (&socket.quic, quic) {
                (Some(udp), true) => Some(udp.try_clone().map_err(fail)?),
                (None, true) => Some(listeners::bind_udp(socket.address)?),
                (_, false) => None,
            };
            // The https index follows the new config, which may list the entries in another order.
            sockets.push(Listener {
                socket: duplicate,
                address: socket.address,
                https,
                quic,
            });
        }
        while sockets.len() < config.server.workers {
            // Port 0 picks a free port once; the other sockets join that one.
            let address = sockets
                .first()
                .map_or(configured, |first: &Listener| first.address);
            let listener = listeners::bind(address, https, quic)?;
            if sockets.is_empty() {
                tracing::info!(address = %listener.address, scheme = listener.scheme(), http3 = quic, "listening on");
            }
            sockets.push(listener);
        }
        bound.push(Bound {
            configured,
            sockets,
        });
    }
    Ok(bound)
}

/// Creates the access log at `path` if needed and gives it to the workers' user (SIGUSR1, as
/// root: the workers may not create files in the log folder).
pub(super) fn prepare_log_file(
    path: &std::path::Path,
    user: &str,
    group: &str,
) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let Ok(Some((uid, gid))) = privileges::target(user, group) else {
        return Ok(());
    };
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)?;
    nix::unistd::fchown(&file, Some(uid), Some(gid)).map_err(std::io::Error::from)
}
