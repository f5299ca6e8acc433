//! One HTTP/2 client connection on the `h2` crate (its bytes checked on the way in by
//! `frame_check`): the handshake with our SETTINGS, the loop that accepts streams and runs each
//! in a task of its own (`stream`), keep-alive pings, the close of an idle connection, and the
//! graceful close (GOAWAY, then the open streams end) when the worker drains.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use ::h2::server::Builder;
use ::h2::{Ping, PingPong};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use super::frame_check::FrameCheck;
use crate::proxy::open::{Connections, Open, OpenCount};
use crate::proxy::{ClientConnection, Proxy};
use crate::routes::RouteSource;

/// The header list size `h2` decodes before it answers a stream 431 itself, which it also
/// advertises (SETTINGS_MAX_HEADER_LIST_SIZE). It sits well above our own head limits, which
/// `serve` applies per stream with the HTTP/1 front end's 431, because `h2` ends the whole
/// connection (GOAWAY ENHANCE_YOUR_CALM) for a block decoded to over 4 times this, or spread
/// over more CONTINUATION frames than 1.25 times this over the frame size (at least 5): at
/// 256 KiB, a 100 KiB field in frames of 16 KiB (or 8 KiB) is decoded and refused alone, while
/// one stream's head still costs at most this much memory. Ending the connection past those
/// bounds is kept on purpose (the README says why): the whole block must be decoded to refuse
/// its stream, and a client that far over what it was told is abusing it.
const HEADER_LIST_BYTES: u32 = 256 * 1024;

/// The SETTINGS and limits of our HTTP/2 connections: hyper's server defaults, which this front
/// end had before it spoke `h2` directly (a 1 MiB window per stream and per connection rather
/// than the spec's 64 KiB, which holds uploads back on any link with latency), but for the
/// header list size (`HEADER_LIST_BYTES`).
pub(crate) fn builder() -> Builder {
    let mut builder = Builder::new();
    builder
        .initial_window_size(1024 * 1024)
        .initial_connection_window_size(1024 * 1024)
        .max_frame_size(16 * 1024)
        .max_header_list_size(HEADER_LIST_BYTES)
        .max_concurrent_streams(200)
        .max_local_error_reset_streams(Some(1024))
        .max_send_buffer_size(400 * 1024)
        // WebSocket over HTTP/2 (RFC 8441): extended CONNECT is offered in SETTINGS.
        .enable_connect_protocol();
    builder
}

/// Serves HTTP/2 on `io` until the client closes it, it fails, it is idle for `tcpTimeout`, or
/// the drain's GOAWAY took effect; counted in `connections` while it lives. A connection that
/// arrives once draining started is dropped.
pub(crate) async fn serve<S, I>(
    builder: &Builder,
    proxy: Rc<Proxy<S>>,
    client: Rc<ClientConnection>,
    connections: &Connections,
    io: I,
) where
    S: RouteSource,
    I: AsyncRead + AsyncWrite + Unpin + 'static,
{
    // A connection accepted before a drain began is sent a GOAWAY at once (below), which a
    // client answers by retrying elsewhere; closing it without one would look like a failure.
    let _open = connections.count.enter();
    let idle = proxy.idle_timeout;
    let handshake = builder.handshake::<_, Bytes>(FrameCheck::new(io));
    let mut connection = match tokio::time::timeout(idle, handshake).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => return tracing::debug!(%error, "http/2 handshake failed"),
        Err(_) => return tracing::debug!("http/2 handshake timed out"),
    };
    let streams = Streams::default();
    let pings = keep_alive(connection.ping_pong(), idle);
    // Pings keep a silent peer's connection up for ever: with no stream for `tcpTimeout` it is
    // idle, as an HTTP/1 connection would be, and is closed.
    let quiet = streams.idle_for(idle);
    let drain = connections.draining();
    tokio::pin!(pings, quiet, drain);
    let mut closing = false;
    loop {
        tokio::select! {
            accepted = connection.accept() => match accepted {
                Some(Ok((request, respond))) => {
                    let (proxy, client) = (proxy.clone(), client.clone());
                    let open = streams.enter();
                    // Boxed: a stream's future holds the whole session's state (kilobytes),
                    // which the task would otherwise copy at each step of its life (spawned,
                    // bound to the worker's task list, finished); it moves a pointer instead.
                    // The stream's own future, not one that awaits it: awaiting it would copy
                    // it whole into the outer one at its first poll.
                    let serving = super::stream::serve(proxy, client, request, respond, open);
                    tokio::task::spawn_local(Box::pin(serving));
                }
                Some(Err(error)) => {
                    return tracing::debug!(%error, "client connection ended with an error")
                }
                // Closed, by the client or by our GOAWAY once its streams ended.
                None => return,
            },
            () = &mut drain, if !closing => {
                closing = true;
                connection.graceful_shutdown();
            }
            () = &mut pings => return tracing::debug!("http/2 peer stopped answering pings"),
            () = &mut quiet => return tracing::debug!("idle http/2 connection closed"),
        }
    }
}

/// Resolves when the peer leaves a ping unanswered for `idle` (one is sent every `idle`): it is
/// gone, and its streams are closed with the connection.
async fn keep_alive(pings: Option<PingPong>, idle: Duration) {
    let Some(mut pings) = pings else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(idle).await;
        let answered = tokio::time::timeout(idle, pings.ping(Ping::opaque())).await;
        if !matches!(answered, Ok(Ok(_))) {
            return;
        }
    }
}

/// The streams of one HTTP/2 connection: how many are open, and how many ever started.
#[derive(Clone, Default)]
struct Streams {
    open: OpenCount,
    started: Rc<Cell<u64>>,
}

impl Streams {
    fn enter(&self) -> Open {
        self.started.set(self.started.get() + 1);
        self.open.enter()
    }

    /// Resolves once no stream was open or started for a whole `idle` period (so between
    /// `idle` and twice that after the last one ended).
    async fn idle_for(&self, idle: Duration) {
        let mut seen = self.started.get();
        loop {
            tokio::time::sleep(idle).await;
            let started = self.started.get();
            if started == seen && self.open.open() == 0 {
                return;
            }
            seen = started;
        }
    }
}
