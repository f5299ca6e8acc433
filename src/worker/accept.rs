//! Accept loops and per-connection serving, tracked for a graceful drain.
//!
//! The accept loop only accepts and spawns; everything else, the TLS handshake (under
//! `tcpTimeout`) included, happens in the connection's task. HTTP/1.x is served by
//! our engine (`crate::h1`). HTTP/2 goes to `crate::h2`: TLS clients that chose it by ALPN,
//! and plain clients that open with the HTTP/2 preface (h2c prior knowledge), which the engine
//! hands over with the bytes it read. Both kinds count in one `Connections`, which a drain
//! tells to close (HTTP/2 with a GOAWAY) and waits for.

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use super::handshake::Tls;
use super::metered::Metered;
use super::prefixed::Prefixed;
use crate::h1::server::{self as h1, Ended};
use crate::proxy::open::Connections;
use crate::proxy::{ClientConnection, Proxy};
use crate::routes::RouteSource;
use crate::wire::headers::Forwarded;

/// How long to pause accepting after an error such as EMFILE, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// `server.maxConnections`: places for client connections, shared by the listeners; a
/// connection holds one for as long as its task lives.
type Places = Option<Arc<Semaphore>>;

/// What every connection task of a worker shares.
struct Shared<S> {
    proxy: Rc<Proxy<S>>,
    http2: ::h2::server::Builder,
    /// Client connections of both protocols (HTTP/1 tunnels included), drained by theirs.
    connections: Connections,
    places: Places,
}

/// A listening socket as a worker serves it.
pub(super) struct Adopted {
    pub(super) listener: TcpListener,
    /// An https listener's TLS.
    pub(super) tls: Option<Rc<Tls>>,
    /// With `https.http3`, the `Alt-Svc` value of its answers.
    pub(super) alt_svc: Option<HeaderValue>,
}

/// Accepts on every listener (and every HTTP/3 `endpoint`) until `drain` resolves, then drains
/// (at most `drain_wait`, which is `gracefulWait`) and returns what `drain` resolved to.
/// Beyond `max_connections` at once, new TCP ones wait in the listen backlog.
pub(super) async fn serve<S: RouteSource, R>(
    proxy: Rc<Proxy<S>>,
    listeners: Vec<Adopted>,
    endpoints: Vec<quinn::Endpoint>,
    drain_wait: Duration,
    max_connections: Option<usize>,
    drain: impl Future<Output = R>,
) -> R {
    let connections = Connections::default();
    let shared = Rc::new(Shared {
        proxy: proxy.clone(),
        http2: crate::h2::connection::builder(),
        connections: connections.clone(),
        places: max_connections.map(|n| Arc::new(Semaphore::new(n))),
    });
    let (stop, stopped) = watch::channel(false);
    let mut loops: Vec<_> = listeners
        .into_iter()
        .map(|adopted| {
            tokio::task::spawn_local(accept_loop(adopted, shared.clone(), stopped.clone()))
        })
        .collect();
    for endpoint in &endpoints {
        let (proxy, connections) = (proxy.clone(), connections.clone());
        let accepting =
            crate::h3::connection::accept(endpoint.clone(), proxy, connections, stopped.clone());
        loops.push(tokio::task::spawn_local(accepting));
    }
    let reason = drain.await;
    let _ = stop.send(true);
    for accept in loops {
        let _ = accept.await;
    }
    connections.start_draining();
    tracing::info!(
        connections = connections.count.open(),
        tunnels = proxy.tunnels.open(),
        "draining"
    );
    drop(shared);
    // Connections and tunnels share one deadline: `gracefulWait` bounds the whole drain.
    let drained = connections.count.all_closed();
    if tokio::time::timeout(drain_wait, drained).await.is_err() {
        tracing::warn!(
            tunnels = proxy.tunnels.open(),
            "drain timed out; closing what is left"
        );
    }
    for endpoint in endpoints {
        endpoint.close(quinn::VarInt::from_u32(0), b"");
    }
    reason
}

async fn accept_loop<S: RouteSource>(
    adopted: Adopted,
    shared: Rc<Shared<S>>,
    mut stopped: watch::Receiver<bool>,
) {
    let Adopted {
        listener,
        tls,
        alt_svc,
    } = adopted;
    let local = listener.local_addr().ok();
    // Accept errors (EMFILE at the open file limit) come back every pause for as long as the
    // cause lasts: one line when it starts, one with the count when it ends.
    let mut failed: u64 = 0;
    loop {
        let place = match &shared.places {
            Some(places) => tokio::select! {
                place = places.clone().acquire_owned() => place.ok(),
                _ = stopped.changed() => return,
            },
            None => None,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                if failed > 0 {
                    tracing::warn!(failed, "accepting again");
                    failed = 0;
                }
                let _ = stream.set_nodelay(true);
                let local_port = stream.local_addr().ok().or(local).map_or(0, |a| a.port());
                let client = Rc::new(ClientConnection {
                    peer: peer.ip().to_canonical(),
                    tls: tls.is_some(),
                    tls_version: None,
                    forwarded: Forwarded::new(peer.ip().to_canonical(), tls.is_some(), local_port),
                    alt_svc: alt_svc.clone(),
                });
                let serving = serve_connection(shared.clone(), tls.clone(), stream, peer, client);
                tokio::task::spawn_local(async move {
                    let _place = place;
                    serving.await;
                });
            }
            Err(error) => {
                if failed == 0 {
                    tracing::warn!(%error, "accept failing; new connections wait until it works");
                }
                failed += 1;
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// One connection's task: TLS first if the listener has it, then HTTP/1 or HTTP/2.
///
/// Only the plain HTTP/1 path is inline: a task holds room for its largest state for as long
/// as it lives, and the TLS and HTTP/2 states (about 5 KiB) would make every idle plain
/// connection pay for them.
async fn serve_connection<S: RouteSource>(
    shared: Rc<Shared<S>>,
    tls: Option<Rc<Tls>>,
    stream: TcpStream,
    peer: SocketAddr,
    client: Rc<ClientConnection>,
) {
    let _open = crate::metrics::connection_opened();
    let Some(tls) = tls else {
        let (proxy, connections) = (shared.proxy.clone(), shared.connections.clone());
        if let Ended::Http2 { stream, read } =
            h1::serve(proxy, client.clone(), connections, Metered(stream), true).await
        {
            Box::pin(serve_http2(&shared, client, Prefixed::new(read, stream))).await;
        }
        return;
    };
    Box::pin(serve_tls(&shared, &tls, stream, peer, client)).await;
}

async fn serve_tls<S: RouteSource>(
    shared: &Shared<S>,
    tls: &Tls,
    stream: TcpStream,
    peer: SocketAddr,
    client: Rc<ClientConnection>,
) {
    // Counted from the accept on, like a plain connection: a drain that began during the
    // handshake waits for it and serves the connection's request, where closing it would reset
    // a client that did nothing wrong.
    let _open = shared.connections.count.enter();
    let stream = match tls.accept(stream, shared.proxy.idle_timeout).await {
        Ok(stream) => Metered(stream),
        Err(error) => return tracing::debug!(%peer, %error, "tls handshake failed"),
    };
    let session = stream.0.get_ref().1;
    let mut client = client;
    // The accept loop hands each connection its own `client`, shared by nothing yet: the
    // version is written in place, with no new allocation.
    if let Some(fresh) = Rc::get_mut(&mut client) {
        fresh.tls_version = session.protocol_version().map(tls_version_name);
    }
    if session.alpn_protocol() == Some(b"h2") {
        serve_http2(shared, client, stream).await;
    } else {
        let (proxy, connections) = (shared.proxy.clone(), shared.connections.clone());
        h1::serve(proxy, client, connections, stream, false).await;
    }
}

/// A TLS version as the access log names it.
fn tls_version_name(version: rustls::ProtocolVersion) -> &'static str {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        rustls::ProtocolVersion::TLSv1_1 => "TLSv1.1",
        rustls::ProtocolVersion::TLSv1_0 => "TLSv1.0",
        _ => "TLS",
    }
}

/// Serves HTTP/2 on `stream`, counted with the other connections for the drain.
async fn serve_http2<S, I>(shared: &Shared<S>, client: Rc<ClientConnection>, stream: I)
where
    S: RouteSource,
    I: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let proxy = shared.proxy.clone();
    crate::h2::connection::serve(&shared.http2, proxy, client, &shared.connections, stream).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_page::ErrorPages;
    use crate::proxy::pool::{BackendPool, BackendTls};
    use crate::routes::file::FileRoutes;

    /// Every open connection holds its task's future for as long as it lives: what a thousand
    /// idle keep-alive connections cost is mostly this size.
    #[test]
    fn a_plain_connection_task_stays_small() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("routes.json");
            std::fs::write(&path, "{}").unwrap();
            let second = Duration::from_secs(1);
            let proxy = Rc::new(Proxy {
                routes: FileRoutes::open(&path, second, Default::default()).unwrap(),
                pool: BackendPool::new(
                    true,
                    10,
                    second,
                    BackendTls::new(crate::config::BackendTrust {
                        ca: None,
                        ca_certs: Vec::new(),
                        verify: true,
                    }),
                ),
                pages: ErrorPages::bundled(),
                access_log: None,
                retry_on_error: 1,
                dead_backend_on_500: true,
                response_timeout: second,
                idle_timeout: second,
                tunnels: Default::default(),
                force_secure: None,
                sticky: None,
                acme: None,
            });
            let shared = Rc::new(Shared {
                proxy,
                http2: crate::h2::connection::builder(),
                connections: Connections::default(),
                places: None,
            });
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let peer = listener.local_addr().unwrap();
            let stream = TcpStream::connect(peer).await.unwrap();
            let client = Rc::new(ClientConnection {
                peer: peer.ip(),
                tls: false,
                tls_version: None,
                forwarded: Forwarded::new(peer.ip(), false, peer.port()),
                alt_svc: None,
            });
            let task = serve_connection(shared, None, stream, peer, client);
            let size = std::mem::size_of_val(&task);
            assert!(size <= 1024, "a connection task takes {size} bytes");
        });
    }
}
