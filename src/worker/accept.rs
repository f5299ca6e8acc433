//! Accept loops and per-connection serving: hyper's HTTP/1.1 + HTTP/2 server with upgrades,
//! tracked for a graceful drain.
//!
//! The accept loop only accepts and spawns; everything else, the TLS handshake (under
//! `tls::HANDSHAKE_TIMEOUT`) included, happens in the connection's task. HTTP/2 is served to TLS
//! clients that chose it by ALPN and to plain clients that open with the HTTP/2 preface (h2c
//! prior knowledge): the auto builder detects the preface either way.

use std::future::Future;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::proxy::headers::Forwarded;
use crate::proxy::{ClientConnection, Proxy};
use crate::routes::RouteSource;
use crate::tls;

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
    listeners: Vec<(TcpListener, Option<TlsAcceptor>)>,
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
                graceful: Rc::downgrade(&graceful),
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
    let tunnels = proxy.tunnels.clone();
    tracing::info!(
        connections = graceful.count(),
        tunnels = tunnels.open(),
        "draining"
    );
    // Connections and tunnels share one deadline: `gracefulWait` bounds the whole drain.
    let drained = async {
        // The accept loops are done and connection tasks hold only weak references (upgraded
        // for an instant, never across an await), so this is the last strong one.
        if let Ok(graceful) = Rc::try_unwrap(graceful) {
            graceful.shutdown().await;
        }
        tunnels.all_closed().await;
    };
    if tokio::time::timeout(timeouts.drain, drained).await.is_err() {
        tracing::warn!(
            tunnels = tunnels.open(),
            "drain timed out; closing what is left"
        );
    }
    reason
}

struct AcceptContext<S> {
    proxy: Rc<Proxy<S>>,
    builder: Rc<auto::Builder<LocalExec>>,
    graceful: Weak<GracefulShutdown>,
    tls: Option<TlsAcceptor>,
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
    stream: TcpStream,
    peer: SocketAddr,
    local_port: u16,
) {
    let client = Rc::new(ClientConnection {
        peer: peer.ip().to_canonical(),
        forwarded: Forwarded::new(peer.ip().to_canonical(), context.tls.is_some(), local_port),
    });
    let (proxy, builder, graceful) = (
        context.proxy.clone(),
        context.builder.clone(),
        context.graceful.clone(),
    );
    let Some(acceptor) = context.tls.clone() else {
        serve_connection(proxy, &builder, &graceful, client, stream);
        return;
    };
    tokio::task::spawn_local(async move {
        match tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => serve_connection(proxy, &builder, &graceful, client, stream),
            Ok(Err(error)) => tracing::debug!(%peer, %error, "tls handshake failed"),
            Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
        }
    });
}

/// Serves HTTP on an accepted (and, for https, decrypted) stream in its own task, watched for
/// the drain; a connection that arrives once draining started is dropped.
fn serve_connection<S, I>(
    proxy: Rc<Proxy<S>>,
    builder: &auto::Builder<LocalExec>,
    graceful: &Weak<GracefulShutdown>,
    client: Rc<ClientConnection>,
    stream: I,
) where
    S: RouteSource,
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let Some(graceful) = graceful.upgrade() else {
        return;
    };
    let service = service_fn(move |request| {
        let (proxy, client) = (proxy.clone(), client.clone());
        // Boxed: hyper keeps room for one request future in every connection, and ours is about
        // 3 KiB, which an idle keep-alive connection would otherwise hold for nothing.
        let handling = Box::pin(proxy.handle(client, request));
        async move { Ok::<_, std::convert::Infallible>(handling.await) }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    let connection = graceful.watch(connection.into_owned());
    tokio::task::spawn_local(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "client connection ended with an error");
        }
    });
}
