//! A worker: one single-threaded runtime that serves the listeners it is given until told to drain.
//!
//! `run` builds the runtime and wires production signals; `serve` takes the future that ends it,
//! so a test or the master's supervision can pass any other. Everything per worker (backend
//! pool, access log buffer, route source handle) lives on this one thread, without locks.

mod accept;
pub mod signals;

use std::future::Future;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use tokio::task::LocalSet;

use crate::access_log::{self, AccessLog};
use crate::config::{Config, Driver};
use crate::error_page::ErrorPages;
use crate::listeners::Listener;
use crate::proxy::client::BackendClient;
use crate::proxy::Proxy;
use crate::routes::file::{FileRoutes, FileRoutesError};
use crate::routes::redis::RedisRoutes;
use crate::routes::RouteSource;
use crate::tls::{Certificates, TlsError};

/// How long in-flight requests may take to finish once draining starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot start the runtime")]
    Runtime(#[source] io::Error),
    #[error("cannot load routes")]
    Routes(#[source] FileRoutesError),
    #[error("cannot set up TLS")]
    Tls(#[source] TlsError),
    #[error("cannot adopt listener {address}")]
    Listener {
        address: std::net::SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// Runs a worker on the current thread until SIGTERM/SIGINT, then drains and returns.
pub fn run(
    config: Config,
    listeners: Vec<Listener>,
    access_log: Option<AccessLog>,
    certificates: Option<Certificates>,
) -> Result<(), WorkerError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(WorkerError::Runtime)?;
    LocalSet::new().block_on(
        &runtime,
        serve(
            config,
            listeners,
            access_log,
            certificates,
            signals::terminated(),
        ),
    )
}

/// Serves until `drain` resolves, then stops accepting and lets in-flight requests finish.
/// The access log and the certificates are opened by the caller, before privileges are dropped.
pub async fn serve(
    config: Config,
    listeners: Vec<Listener>,
    access_log: Option<AccessLog>,
    certificates: Option<Certificates>,
    drain: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let access_log = access_log.map(Rc::new);
    let tls = certificates.map(Rc::new);
    let ttl = config.server.dead_backend_ttl;
    match &config.driver {
        Driver::Redis { read, write } => {
            let routes = RedisRoutes::new(read, write, ttl);
            serve_with(routes, &config, listeners, access_log, tls, drain).await
        }
        Driver::File(path) => {
            let routes = FileRoutes::open(path, ttl).map_err(WorkerError::Routes)?;
            serve_with(routes, &config, listeners, access_log, tls, drain).await
        }
    }
}

async fn serve_with<S: RouteSource>(
    routes: S,
    config: &Config,
    listeners: Vec<Listener>,
    access_log: Option<Rc<AccessLog>>,
    tls: Option<Rc<Certificates>>,
    drain: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let server = &config.server;
    let proxy = Rc::new(Proxy {
        routes,
        client: BackendClient::new(
            server.http_keep_alive,
            server.max_sockets,
            server.tcp_timeout,
        ),
        pages: ErrorPages::from_config(server.static_dir.as_deref()),
        access_log: access_log.clone(),
        retry_on_error: server.retry_on_error,
        dead_backend_on_500: server.dead_backend_on_500,
        response_timeout: server.tcp_timeout,
    });
    let mut adopted: Vec<(tokio::net::TcpListener, Option<_>)> =
        Vec::with_capacity(listeners.len());
    for listener in listeners {
        let address = listener.address;
        let socket = tokio::net::TcpListener::from_std(listener.socket)
            .map_err(|source| WorkerError::Listener { address, source })?;
        // The n-th https listener is config.https[n]: main binds them in that order.
        let acceptor = match (&tls, listener.tls) {
            (Some(certificates), true) => {
                let index = adopted.iter().filter(|(_, a)| a.is_some()).count();
                Some(certificates.acceptor(index).map_err(WorkerError::Tls)?)
            }
            _ => None,
        };
        adopted.push((socket, acceptor));
    }
    let flusher = access_log
        .clone()
        .map(|log| tokio::task::spawn_local(flush_periodically(log)));
    let user_signals =
        tokio::task::spawn_local(signals::handle_user_signals(access_log.clone(), tls));
    accept::serve(proxy, adopted, server.tcp_timeout, drain).await;
    user_signals.abort();
    if let Some(flusher) = flusher {
        flusher.abort();
    }
    if let Some(log) = access_log {
        log.flush();
    }
    Ok(())
}

async fn flush_periodically(log: Rc<AccessLog>) {
    let mut tick = tokio::time::interval(access_log::FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        log.flush();
    }
}
