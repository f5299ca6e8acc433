//! Accept loops and per-connection serving: hyper's HTTP/1.1 + HTTP/2 server with upgrades,
//! tracked for a graceful drain.
//!
//! The accept loop only accepts and spawns; everything else happens in the connection's task.

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::proxy::headers::Forwarded;
use crate::proxy::{ClientConnection, Proxy};
use crate::routes::RouteSource;

/// How long to pause accepting after an error such as EMFILE, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Spawns `!Send` futures (HTTP/2 streams) on the worker's `LocalSet`.
#[derive(Clone, Copy)]
struct LocalExec;

impl<F: Future + 'static> hyper::rt::Executor<F> for LocalExec {
    fn execute(&self, future: F) {
        tokio::task::spawn_local(future);
    }
}

/// The limits a worker's connections live under.
pub(super) struct Timeouts {
    /// `tcpTimeout`: a client connection waiting this long for a request head is closed.
    pub(super) idle: Duration,
    /// `gracefulWait`: the most a drain waits for in-flight requests.
    pub(super) drain: Duration,
}

/// Accepts on every listener until `drain` resolves, then drains and returns its output.
pub(super) async fn serve<S: RouteSource, R>(
    proxy: Rc<Proxy<S>>,
    listeners: Vec<(TcpListener, bool)>,
    timeouts: Timeouts,
    drain: impl Future<Output = R>,
) -> R {
    let mut builder = auto::Builder::new(LocalExec);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.idle)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Rc::new(builder);
    let graceful = Rc::new(GracefulShutdown::new());
    let (stop, stopped) = watch::channel(false);
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|(listener, tls)| {
            let context = AcceptContext {
                proxy: proxy.clone(),
                builder: builder.clone(),
                graceful: graceful.clone(),
                tls,
            };
            tokio::task::spawn_local(accept_loop(listener, context, stopped.clone()))
        })
        .collect();
    let reason = drain.await;
    let _ = stop.send(true);
    for accept in loops {
        let _ = accept.await;
    }
    let in_flight = graceful.count();
    tracing::info!(connections = in_flight, "draining");
    // The accept loops are done, so this is the last reference to the tracker.
    if let Ok(graceful) = Rc::try_unwrap(graceful) {
        if tokio::time::timeout(timeouts.drain, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("drain timed out; closing remaining connections");
        }
    }
    reason
}

struct AcceptContext<S> {
    proxy: Rc<Proxy<S>>,
    builder: Rc<auto::Builder<LocalExec>>,
    graceful: Rc<GracefulShutdown>,
    tls: bool,
}

async fn accept_loop<S: RouteSource>(
    listener: TcpListener,
    context: AcceptContext<S>,
    mut stopped: watch::Receiver<bool>,
) {
    let local = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let local_port = stream.local_addr().ok().or(local).map_or(0, |a| a.port());
                spawn_connection(&context, stream, peer, local_port);
            }
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

fn spawn_connection<S: RouteSource>(
    context: &AcceptContext<S>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    local_port: u16,
) {
    let client = Rc::new(ClientConnection {
        peer: peer.ip().to_canonical(),
        forwarded: Forwarded::new(peer.ip().to_canonical(), context.tls, local_port),
    });
    let proxy = context.proxy.clone();
    let service = service_fn(move |request| {
        let (proxy, client) = (proxy.clone(), client.clone());
        async move { Ok::<_, std::convert::Infallible>(proxy.handle(client, request).await) }
    });
    let connection = context
        .builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service);
    let connection = context.graceful.watch(connection.into_owned());
    tokio::task::spawn_local(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "client connection ended with an error");
        }
    });
}
