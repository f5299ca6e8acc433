//! A worker: one single-threaded runtime that serves the listeners it is given until told to drain.
//!
//! `run` builds the runtime and wires production signals; `serve` takes the future that ends it,
//! so a test or the master's supervision can pass any other. Everything per worker (backend
//! pool, access log buffer, route source handle) lives on this one thread, without locks.

mod accept;
pub mod entry;
mod handshake;
#[cfg(test)]
mod in_process;
pub mod inherit;
mod metered;
mod prefixed;
mod quic;
pub(crate) mod signals;
mod stats;
#[cfg(test)]
mod tests;
mod trim;
pub(crate) mod watchdog;

use std::future::Future;
use std::io;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::Arc;

use tokio::task::LocalSet;

use crate::access_log::{self, AccessLog};
use crate::acme::Acme;
use crate::config::acme::Challenge;
use crate::config::{Config, Driver};
use crate::error_page::ErrorPages;
use crate::proxy::open::OpenCount;
use crate::proxy::pool::{BackendPool, BackendTls};
use crate::proxy::sticky::StickyKey;
use crate::proxy::Proxy;
use crate::routes::file::{FileRoutes, FileRoutesError};
use crate::routes::redis::RedisRoutes;
use crate::routes::{Footprint, RouteSource};
use crate::supervision::{exit_code, Listener};
use crate::tls::{Certificates, Tickets, TlsError};
use handshake::{RedisCertificates, Tls};
use inherit::MasterLink;

/// Why a worker stopped serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop, and every connection closed or the grace period ended.
    Drained,
    /// The memory watchdog retired it.
    Retired {
        /// Its resident memory when retired.
        rss_bytes: u64,
        /// What its routes held of it (not counted against the limit).
        routes_bytes: u64,
    },
}

impl Exit {
    /// The exit status that tells the master this reason.
    pub fn code(self) -> i32 {
        match self {
            Self::Drained => exit_code::DRAINED,
            Self::Retired { .. } => exit_code::RETIRED,
        }
    }
}

/// Why a worker could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The runtime could not be built.
    #[error("cannot start the runtime")]
    Runtime(#[source] io::Error),
    /// The file driver's routes could not be read.
    #[error("cannot load routes")]
    Routes(#[source] FileRoutesError),
    /// Certificates or keys could not be loaded.
    #[error("cannot set up TLS")]
    Tls(#[source] TlsError),
    /// An inherited socket could not be registered with the runtime.
    #[error("cannot adopt listener {address}")]
    Listener {
        /// Its address.
        address: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Runs a worker on the current thread until SIGTERM/SIGINT, the memory watchdog or the end of
/// its master (an orphan would keep serving the ports beside the next master), then drains and
/// returns why. The master hears through `link` when it serves and when it retires.
pub fn run(
    config: Config,
    listeners: Vec<Listener>,
    access_log: Option<AccessLog>,
    certificates: Option<Certificates>,
    link: &MasterLink,
) -> Result<Exit, WorkerError> {
    // One thread per worker: the master runs as many workers as the operator wants cores used.
    // The blocking pool only serves the rare DNS lookup of a backend named by host name.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
        .map_err(WorkerError::Runtime)?;
    let limit = config.server.memory_limit_bytes;
    let interval = config.server.memory_check_interval;
    let footprint = Footprint::default();
    let watched = footprint.clone();
    let stop = async move {
        tokio::select! {
            () = signals::terminated() => Exit::Drained,
            () = link.master_gone() => {
                tracing::warn!("master gone; draining");
                Exit::Drained
            }
            watchdog::Exceeded { rss_bytes, routes_bytes } =
                watchdog::exceeded(limit, interval, watched) => {
                tracing::warn!(
                    rss_bytes,
                    routes_bytes,
                    limit_bytes = limit,
                    "memory limit reached; retiring"
                );
                // The master starts the replacement while this worker drains.
                link.report_retiring();
                Exit::Retired {
                    rss_bytes,
                    routes_bytes,
                }
            }
        }
    };
    let ready = || link.report_ready();
    let stats = inherit::stats_socket();
    let opened = Opened {
        listeners,
        access_log,
        certificates,
        stats,
        footprint,
    };
    LocalSet::new().block_on(&runtime, serve(config, opened, ready, stop))
}

/// What a worker's start opened for it before privileges were dropped, or inherited.
pub(crate) struct Opened {
    pub(crate) listeners: Vec<Listener>,
    pub(crate) access_log: Option<AccessLog>,
    pub(crate) certificates: Option<Certificates>,
    /// The master's stats socket (`crate::supervision`).
    pub(crate) stats: Option<UnixStream>,
    /// Where the route source publishes what its routes hold, for the caller's memory watchdog.
    pub(crate) footprint: Footprint,
}

/// Serves until `drain` resolves, then stops accepting, lets in-flight requests finish (at most
/// `gracefulWait`) and returns what `drain` resolved to. The access log and the certificates are
/// opened by the caller, before privileges are dropped; `ready` is called once the listeners
/// are being served.
pub(crate) async fn serve<R>(
    config: Config,
    opened: Opened,
    ready: impl FnOnce(),
    drain: impl Future<Output = R>,
) -> Result<R, WorkerError> {
    let ttl = config.server.dead_backend_ttl;
    if config.metrics.is_some() || config.logging.as_ref().is_some_and(|l| l.web.is_some()) {
        crate::metrics::enable(ttl);
    }
    match &config.driver {
        Driver::Redis { read, write } => {
            let limits = config.server.cache_limits();
            let footprint = opened.footprint.clone();
            let routes = RedisRoutes::new(
                read,
                write,
                ttl,
                limits,
                config.redis_certificates,
                footprint,
            );
            let provider = crate::crypto::tls_provider();
            let acme = (config.acme.as_ref())
                .map(|acme| Acme::start(acme, routes.clone(), provider.clone()));
            let certificates = config.redis_certificates.then(|| RedisCertificates {
                routes: routes.clone(),
                provider,
                acme: acme.clone(),
            });
            let redis = Some(routes.clone());
            serve_with(routes, redis, certificates, &config, opened, ready, drain).await
        }
        Driver::File(path) => {
            let routes = FileRoutes::open(path, ttl, opened.footprint.clone())
                .map_err(WorkerError::Routes)?;
            // Reading the file left its text and parse tree free in the allocator: give them
            // back now, before the watchdog takes the worker's size at start.
            trim::give_back();
            serve_with(routes, None, None, &config, opened, ready, drain).await
        }
    }
}

/// `redis`: the same routes when they come from Redis, whose cache is handed over between
/// workers (`stats`).
async fn serve_with<S: RouteSource, R>(
    routes: S,
    redis: Option<RedisRoutes>,
    redis_certificates: Option<RedisCertificates>,
    config: &Config,
    opened: Opened,
    ready: impl FnOnce(),
    drain: impl Future<Output = R>,
) -> Result<R, WorkerError> {
    let Opened {
        listeners,
        access_log,
        certificates,
        stats,
        footprint: _,
    } = opened;
    let access_log = access_log.map(Rc::new);
    let tls = certificates.map(Rc::new);
    let server = &config.server;
    let config_http3 = config.http3;
    // The port this worker's first https listener really has (`port: 0` picks one at bind).
    let https_port = listeners
        .iter()
        .find(|l| l.https.is_some())
        .map(|l| l.address.port());
    let proxy = Rc::new(Proxy {
        routes,
        pool: BackendPool::new(
            server.http_keep_alive,
            server.max_sockets,
            server.tcp_timeout,
            BackendTls::new(server.backend_trust.clone()),
        ),
        pages: ErrorPages::from_config(server.static_dir.as_deref()),
        access_log: access_log.clone(),
        retry_on_error: server.retry_on_error,
        dead_backend_on_500: server.dead_backend_on_500,
        response_timeout: server.tcp_timeout,
        idle_timeout: server.tcp_timeout,
        tunnels: OpenCount::default(),
        force_secure: https_port.filter(|_| server.force_secure),
        sticky: server.sticky_sessions.then(|| {
            let secret = server.sticky_secret.as_deref();
            StickyKey::new(
                secret
                    .unwrap_or(crate::supervision::node_secret())
                    .as_bytes(),
            )
        }),
        acme: (redis_certificates.as_ref())
            .and_then(|c| c.acme.clone())
            .filter(|_| {
                matches!(
                    config.acme.as_ref().map(|a| a.challenge),
                    Some(Challenge::Http01)
                )
            }),
    });
    let tickets = Arc::new(Tickets::new(crate::supervision::node_secret().as_bytes()));
    let mut adopted = Vec::with_capacity(listeners.len());
    let mut endpoints = Vec::new();
    for listener in listeners {
        let address = listener.address;
        let fail = |source| WorkerError::Listener { address, source };
        let socket = tokio::net::TcpListener::from_std(listener.socket).map_err(fail)?;
        let (mut acceptor, mut alt_svc) = (None, None);
        if let (Some(certificates), Some(index)) = (&tls, listener.https) {
            let config = certificates
                .server_config(index, tickets.clone())
                .map_err(WorkerError::Tls)?;
            if let (Some(udp), Some(http3)) = (listener.quic, config_http3) {
                let redis = redis_certificates.as_ref();
                let idle = server.tcp_timeout;
                endpoints
                    .push(quic::endpoint(udp, address, &config, http3, redis, idle).map_err(fail)?);
                alt_svc = quic::alt_svc(address.port());
            }
            acceptor = Some(Rc::new(Tls::new(config, redis_certificates.clone())));
        }
        adopted.push(accept::Adopted {
            listener: socket,
            tls: acceptor,
            alt_svc,
        });
    }
    let flusher = access_log
        .clone()
        .map(|log| tokio::task::spawn_local(flush_periodically(log)));
    // Also without keep-alive: the sweep forgets backends that have nothing open, and backend
    // addresses change with every deploy.
    let sweeper = {
        let proxy = proxy.clone();
        tokio::task::spawn_local(async move {
            let mut tick = tokio::time::interval(crate::proxy::pool::IDLE_LIFETIME);
            loop {
                tick.tick().await;
                proxy.pool.sweep();
            }
        })
    };
    let trimmer = tokio::task::spawn_local(trim::run());
    let user_signals = tokio::task::spawn_local(signals::handle_user_signals(
        access_log.clone(),
        tls.clone(),
    ));
    let (drained, stats_end) = tokio::sync::oneshot::channel();
    let stats = stats.map(|socket| {
        let certificates = stats::Expiries {
            files: tls.clone(),
            redis: redis_certificates.as_ref().map(|c| c.routes.clone()),
        };
        let tunnels = proxy.tunnels.clone();
        let answering = stats::answer(socket, tunnels, certificates, redis, stats_end);
        tokio::task::spawn_local(answering)
    });
    ready();
    let limit = server.max_connections;
    let wait = server.graceful_wait;
    let reason = accept::serve(proxy, adopted, endpoints, wait, limit, drain).await;
    let _ = drained.send(());
    if let Some(stats) = stats {
        let _ = stats.await;
    }
    user_signals.abort();
    trimmer.abort();
    sweeper.abort();
    if let Some(flusher) = flusher {
        flusher.abort();
    }
    if let Some(log) = access_log {
        log.flush();
    }
    Ok(reason)
}

async fn flush_periodically(log: Rc<AccessLog>) {
    let mut tick = tokio::time::interval(access_log::FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        log.flush();
    }
}
