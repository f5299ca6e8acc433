//! One HTTP/1.x client connection: wait for a request holding no buffer, read its head within
//! one `tcpTimeout` of the moment the wait began (idle time and a trickled head share the one
//! deadline, as HAProxy's `timeout http-request`), hand the request to the session
//! (`proxy::Proxy::serve`, with the framing of `request`), and loop while both sides keep the
//! connection. A head that cannot be read is refused here: there is no request to hand on.
//!
//! Requests are handled one at a time; pipelined bytes wait in the buffer for their turn. A
//! plain connection that opens with the HTTP/2 preface is handed back to the caller for our
//! HTTP/2 server, with the bytes already read.

use std::rc::Rc;
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::client::{Client, ClientStream};
use super::request::{refuse, Next, Request};
use crate::proxy::open::Connections;
use crate::proxy::{ClientConnection, Proxy};
use crate::routes::RouteSource;
use crate::wire::request::{HeadError, RequestHead, MAX_HEAD_BYTES};

/// The first line of the HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// How long a connection closing on an unread body keeps reading (and dropping) it, so that
/// the client, still sending, reads the answer before a reset (nginx's lingering close).
const LINGER: Duration = Duration::from_secs(2);

/// How a connection ended.
pub(crate) enum Ended<IO> {
    Closed,
    /// The client spoke HTTP/2 (prior knowledge): the stream and the bytes read from it.
    Http2 {
        stream: IO,
        read: Vec<u8>,
    },
}

/// A client connection while it is served.
struct Conn<'a, S, IO> {
    proxy: &'a Proxy<S>,
    peer: &'a ClientConnection,
    connections: &'a Connections,
    client: Client<IO>,
    /// The client is still sending a body nobody will read (the backend answered early):
    /// the connection closes after the answer, lingering so the client can read it.
    unread_body: bool,
}

/// Serves `io` until the client or the proxy closes it, or it turns out to be HTTP/2.
pub(crate) async fn serve<S: RouteSource, IO: ClientStream>(
    proxy: Rc<Proxy<S>>,
    peer: Rc<ClientConnection>,
    connections: Connections,
    io: IO,
    h2c: bool,
) -> Ended<IO> {
    let _open = connections.count.enter();
    let mut conn = Conn {
        proxy: &proxy,
        peer: &peer,
        connections: &connections,
        client: Client::new(io),
        unread_body: false,
    };
    let mut first = true;
    loop {
        // One deadline for the wait and the head: a client silent for most of `tcpTimeout` must
        // not get another whole `tcpTimeout` to trickle its head in.
        let deadline = Instant::now() + proxy.idle_timeout;
        if conn.client.buf().is_empty() {
            conn.client.release();
            if !conn.wait_for_request(deadline, first).await {
                return Ended::Closed;
            }
        }
        // Boxed: an idle connection keeps only this loop's small state, not a request's.
        let next = Box::pin(conn.exchange(h2c && first, deadline)).await;
        first = false;
        match next {
            Next::KeepAlive => {}
            Next::Close => break,
            Next::Http2 => {
                let (stream, read) = conn.client.into_parts();
                return Ended::Http2 { stream, read };
            }
        }
    }
    conn.close().await;
    Ended::Closed
}

impl<S: RouteSource, IO: ClientStream> Conn<'_, S, IO> {
    /// Waits for the next request's first bytes: `false` if the connection should close
    /// instead (silent past `deadline`, a drain began, or the client left).
    async fn wait_for_request(&mut self, deadline: Instant, first: bool) -> bool {
        // A connection accepted just before a drain began was opened to send a request, which
        // may be on its way: closing it would reset a request no client retries on a fresh
        // connection. It gets its one request (answered with `Connection: close`).
        if first {
            return self.client.read_when_ready(deadline).await;
        }
        // Readiness first: a request already waiting when a drain starts is served (with
        // `Connection: close`), not dropped unanswered.
        tokio::select! {
            biased;
            ready = self.client.read_when_ready(deadline) => ready,
            () = self.connections.draining() => false,
        }
    }

    /// Reads a request's head and lets the session take the request through.
    async fn exchange(&mut self, h2c: bool, deadline: Instant) -> Next {
        let head = match self.read_head(h2c, deadline).await {
            Ok(head) => head,
            Err(next) => return next,
        };
        let (proxy, peer) = (self.proxy, self.peer);
        let mut request = Request::new(proxy, peer, self.connections, &mut self.client, head);
        let next = proxy.serve(peer, &mut request).await;
        self.unread_body |= request.unread_body;
        next
    }

    /// Reads until a whole head is in the buffer, by `deadline`.
    async fn read_head(&mut self, h2c: bool, deadline: Instant) -> Result<RequestHead, Next> {
        loop {
            let buf = self.client.buf();
            if !buf.is_empty() {
                match RequestHead::parse(buf) {
                    Ok(Some(head)) => return Ok(head),
                    Ok(None) => {}
                    Err(_) if h2c && buf.starts_with(H2_PREFACE) => return Err(Next::Http2),
                    Err(error) => {
                        let status = match error {
                            HeadError::Malformed => StatusCode::BAD_REQUEST,
                            HeadError::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                        };
                        tracing::debug!(peer = %self.peer.peer, %status, "unreadable request");
                        let idle = self.proxy.idle_timeout;
                        return Err(refuse(&mut self.client, status, idle).await);
                    }
                }
            }
            // A head ends with a line: bytes without `\n` cannot complete it, so a client that
            // trickles bytes does not make the whole head be parsed again for each one.
            loop {
                let before = self.client.buf().len();
                if !self.client.read_more(deadline).await {
                    return Err(Next::Close);
                }
                let buf = self.client.buf();
                if buf[before..].contains(&b'\n') || buf.len() >= MAX_HEAD_BYTES {
                    break;
                }
            }
        }
    }

    /// Closing our side first lets the client see the end of the last response at once. TLS
    /// flushes what it holds and a close_notify first: a client that stopped reading must not
    /// keep the connection (and a drain) waiting.
    async fn close(&mut self) {
        self.client.release();
        let io = self.client.io();
        let _ = tokio::time::timeout(self.proxy.idle_timeout, io.shutdown()).await;
        if self.unread_body {
            let mut sink = vec![0u8; 4096];
            let drain = async { while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {} };
            let _ = tokio::time::timeout(LINGER, drain).await;
        }
    }
}
