//! HTTP/3 connections on one https listener's UDP socket: the QUIC transport's limits, the
//! loop that takes the endpoint's connections, and each connection's loop, which runs every
//! request stream in a task of its own and, when the worker drains, sends a GOAWAY, lets the
//! streams it had begun end, then closes.
//!
//! Bounds: a handshake, and a request stream's head, each get `tcpTimeout`; a connection with
//! no packet for `tcpTimeout` is closed by QUIC's idle timeout; a client has at most
//! `MAX_STREAMS` request streams open at once, and its unread data is bounded by the windows
//! (per stream and per connection) it is given.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{IdleTimeout, TransportConfig, VarInt};
use tokio::sync::watch;

use super::StreamRequest;
use crate::metrics::names::Counter;
use crate::proxy::open::{Connections, Open, OpenCount};
use crate::proxy::{ClientConnection, Proxy};
use crate::routes::RouteSource;
use crate::wire::headers::Forwarded;

/// Request streams a client may have open at once (HTTP/2's `max_concurrent_streams` is 200;
/// each HTTP/3 stream also holds a window of its own).
const MAX_STREAMS: u32 = 100;
/// What a client may send ahead on one stream before we read it.
const STREAM_WINDOW_BYTES: u32 = 1024 * 1024;
/// What a client may send ahead on all its streams together.
const CONNECTION_WINDOW_BYTES: u32 = 4 * 1024 * 1024;
/// The field section size `h3` decodes before it refuses a request 431 itself, and which it
/// advertises: above our own head limits (applied per request with the HTTP/1 front end's
/// 431), as HTTP/2's header list size is.
const FIELD_SECTION_BYTES: u64 = 256 * 1024;
/// How long a drained connection waits at least, once its last stream ended, for the client to
/// close it, before it closes it: time for the last answer to arrive, and to be sent again if
/// it was lost.
const MIN_LINGER: Duration = Duration::from_secs(1);
/// The application error code of a connection closed without a fault (RFC 9114 §8.1).
const NO_ERROR: u32 = 0x100;

/// One HTTP/3 connection's server side.
type Connection = ::h3::server::Connection<h3_quinn::Connection, Bytes>;
/// A request stream whose head is still to be read.
type Resolver = ::h3::server::RequestResolver<h3_quinn::Connection, Bytes>;

/// The QUIC server configuration over `tls` (ALPN `h3`), with our transport limits; QUIC's idle
/// timeout is `idle` (`tcpTimeout`).
pub(crate) fn server_config(tls: Arc<QuicServerConfig>, idle: Duration) -> quinn::ServerConfig {
    let mut transport = TransportConfig::default();
    transport
        .max_idle_timeout(IdleTimeout::try_from(idle).ok())
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_STREAMS))
        // The client's control stream and its two QPACK streams; push is never enabled.
        .max_concurrent_uni_streams(VarInt::from_u32(3))
        .stream_receive_window(VarInt::from_u32(STREAM_WINDOW_BYTES))
        .receive_window(VarInt::from_u32(CONNECTION_WINDOW_BYTES))
        .send_window(u64::from(CONNECTION_WINDOW_BYTES));
    let mut config = quinn::ServerConfig::with_crypto(tls);
    config.transport_config(Arc::new(transport));
    config
}

/// Takes `endpoint`'s connections until `stopped` changes, then takes no more; each is served
/// in a task of its own, counted in `connections`.
pub(crate) async fn accept<S: RouteSource>(
    endpoint: quinn::Endpoint,
    proxy: Rc<Proxy<S>>,
    connections: Connections,
    mut stopped: watch::Receiver<bool>,
) {
    let local_port = endpoint.local_addr().map_or(0, |a| a.port());
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = stopped.changed() => break,
        };
        let Some(incoming) = incoming else { break };
        let (proxy, connections) = (proxy.clone(), connections.clone());
        tokio::task::spawn_local(async move {
            let _open = connections.count.enter();
            let _metered = crate::metrics::connection_opened();
            serve(incoming, proxy, &connections, local_port).await;
        });
    }
    // New connections are refused from now on; the endpoint goes on for those open.
    endpoint.set_server_config(None);
}

/// Serves one connection until the client closes it, it fails, or a drain's GOAWAY took effect.
async fn serve<S: RouteSource>(
    incoming: quinn::Incoming,
    proxy: Rc<Proxy<S>>,
    connections: &Connections,
    local_port: u16,
) {
    let idle = proxy.idle_timeout;
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(error) => return tracing::debug!(%error, "quic connection refused"),
    };
    let quic = match tokio::time::timeout(idle, connecting).await {
        Ok(Ok(quic)) => quic,
        Ok(Err(error)) => return tracing::debug!(%error, "quic handshake failed"),
        Err(_) => return tracing::debug!("quic handshake timed out"),
    };
    let _counted = CountedOnClose(quic.clone());
    let peer = quic.remote_address().ip().to_canonical();
    let client = Rc::new(ClientConnection {
        peer,
        tls: true,
        // QUIC runs on TLS 1.3 only.
        tls_version: Some("TLSv1.3"),
        forwarded: Forwarded::new(peer, true, local_port),
        alt_svc: None,
    });
    let mut builder = ::h3::server::builder();
    builder
        .max_field_section_size(FIELD_SECTION_BYTES)
        .enable_extended_connect(true);
    let built = builder.build(h3_quinn::Connection::new(quic.clone()));
    let mut connection: Connection = match tokio::time::timeout(idle, built).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => return tracing::debug!(%error, "http/3 connection failed"),
        Err(_) => return tracing::debug!("http/3 connection timed out"),
    };
    let streams = OpenCount::default();
    let drain = connections.draining();
    tokio::pin!(drain);
    let mut closing = false;
    loop {
        tokio::select! {
            accepted = connection.accept() => match accepted {
                Ok(Some(resolver)) => {
                    let (proxy, client, open) = (proxy.clone(), client.clone(), streams.enter());
                    tokio::task::spawn_local(stream(resolver, proxy, client, open));
                }
                // The client's GOAWAY, and its requests ended.
                Ok(None) => return,
                Err(error) => {
                    return tracing::debug!(%error, "http/3 connection ended with an error")
                }
            },
            () = &mut drain, if !closing => {
                closing = true;
                // Requests begun go on; the client sends new ones on another connection.
                if connection.shutdown(0).await.is_err() {
                    return;
                }
            }
            () = streams.all_closed(), if closing => {
                // The last answers may still be in flight, and a close now would drop them:
                // the client closes once it has them, or we do after a few round trips.
                let linger = (quic.rtt() * 4).max(MIN_LINGER).min(idle);
                let _ = tokio::time::timeout(linger, quic.closed()).await;
                quic.close(VarInt::from_u32(NO_ERROR), b"");
                return;
            }
        }
    }
}

/// One request stream's task: its head read (within `tcpTimeout`), then the request served.
async fn stream<S: RouteSource>(
    resolver: Resolver,
    proxy: Rc<Proxy<S>>,
    client: Rc<ClientConnection>,
    _open: Open,
) {
    let (request, stream) =
        match tokio::time::timeout(proxy.idle_timeout, resolver.resolve_request()).await {
            Ok(Ok(resolved)) => resolved,
            // A malformed head: `h3` reset the stream (H3_MESSAGE_ERROR), or answered a 431.
            Ok(Err(error)) => return tracing::debug!(%error, "http/3 request refused"),
            Err(_) => return tracing::debug!("http/3 request head timed out"),
        };
    let (send, recv) = stream.split();
    let (parts, ()) = request.into_parts();
    let mut request = StreamRequest {
        proxy: &proxy,
        conn: &client,
        parts,
        recv: Some(recv),
        send,
        websocket_key: None,
    };
    proxy.serve(&client, &mut request).await;
}

/// Adds a connection's bytes to `bytes.in` and `bytes.out` when it ends: for QUIC, the bytes of
/// its UDP datagrams (quinn keeps the count; HTTP/1 and HTTP/2 count their HTTP bytes).
struct CountedOnClose(quinn::Connection);

impl Drop for CountedOnClose {
    fn drop(&mut self) {
        let stats = self.0.stats();
        crate::metrics::add(Counter::BytesIn, stats.udp_rx.bytes);
        crate::metrics::add(Counter::BytesOut, stats.udp_tx.bytes);
    }
}
