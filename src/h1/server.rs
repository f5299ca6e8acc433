//! One HTTP/1.x client connection: wait for a request holding no buffer, read its head under
//! `tcpTimeout`, route it, forward it (`forward`), and loop while both sides keep the connection.
//!
//! Requests are handled one at a time; pipelined bytes wait in the buffer for their turn. A
//! plain connection that opens with the HTTP/2 preface is handed back to the caller for hyper's
//! HTTP/2 server, with the bytes already read.

use std::future::Future;
use std::io;
use std::rc::Rc;

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::backend::write_within;
use super::buffers;
use super::encode;
use super::open::Connections;
use super::request::{HeadError, RequestHead, MAX_HEAD_BYTES};
use crate::error_page::PageBody;
use crate::proxy::error::ProxyError;
use crate::proxy::{ClientConnection, Proxy, Routed};
use crate::routes::RouteSource;

/// The first line of the HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// A client stream the engine can serve: plain TCP, or TLS that chose HTTP/1.1.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + 'static {
    /// Waits, holding no buffer, until a read would make progress.
    fn ready(&self) -> impl Future<Output = io::Result<()>>;
}

impl ClientStream for TcpStream {
    fn ready(&self) -> impl Future<Output = io::Result<()>> {
        self.readable()
    }
}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    async fn ready(&self) -> io::Result<()> {
        let (tcp, tls) = self.get_ref();
        // With no plaintext left in rustls (each read processes every whole record it has),
        // the next request needs bytes from the socket; otherwise it is already here.
        if tls.wants_read() {
            tcp.readable().await
        } else {
            Ok(())
        }
    }
}

/// How a connection ended.
pub enum Ended<IO> {
    Closed,
    /// The client spoke HTTP/2 (prior knowledge): the stream and the bytes read from it.
    Http2 {
        stream: IO,
        read: Vec<u8>,
    },
}

/// What follows an exchange.
pub(super) enum Next {
    KeepAlive,
    Close,
    Http2,
}

/// A client connection while it is served.
pub(super) struct Conn<'a, S, IO> {
    pub(super) proxy: &'a Proxy<S>,
    pub(super) client: &'a ClientConnection,
    pub(super) connections: &'a Connections,
    pub(super) io: IO,
    /// What was read from the client and not yet consumed; empty (no allocation) while idle.
    pub(super) buf: Vec<u8>,
    /// The client is still sending a body nobody will read (the backend answered early):
    /// the connection closes after the answer, lingering so the client can read it.
    pub(super) unread_body: bool,
}

/// How long a connection closing on an unread body keeps reading (and dropping) it, so that
/// the client, still sending, reads the answer before a reset (nginx's lingering close).
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves `io` until the client or the proxy closes it, or it turns out to be HTTP/2.
pub async fn serve<S: RouteSource, IO: ClientStream>(
    proxy: Rc<Proxy<S>>,
    client: Rc<ClientConnection>,
    connections: Connections,
    io: IO,
    h2c: bool,
) -> Ended<IO> {
    let _open = connections.count.enter();
    let mut conn = Conn {
        proxy: &proxy,
        client: &client,
        connections: &connections,
        io,
        buf: Vec::new(),
        unread_body: false,
    };
    let mut first = true;
    loop {
        if conn.buf.is_empty() {
            buffers::give_back(std::mem::take(&mut conn.buf));
            if !conn.wait_for_request().await {
                return Ended::Closed;
            }
            conn.buf = buffers::take();
        }
        // Boxed: an idle connection keeps only this loop's small state, not a request's.
        let next = Box::pin(conn.exchange(h2c && first)).await;
        first = false;
        match next {
            Next::KeepAlive => {}
            Next::Close => break,
            Next::Http2 => {
                return Ended::Http2 {
                    stream: conn.io,
                    read: conn.buf,
                }
            }
        }
    }
    buffers::give_back(conn.buf);
    // Closing our side first lets the client see the end of the last response at once. TLS
    // flushes what it holds and a close_notify first: a client that stopped reading must not
    // keep the connection (and a drain) waiting.
    let _ = tokio::time::timeout(proxy.idle_timeout, conn.io.shutdown()).await;
    if conn.unread_body {
        let mut sink = vec![0u8; 4096];
        let drain = async { while matches!(conn.io.read(&mut sink).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
    Ended::Closed
}

impl<S: RouteSource, IO: ClientStream> Conn<'_, S, IO> {
    /// Waits for the next request's first bytes: `false` if the connection should close
    /// instead (idle past `tcpTimeout`, a drain began, or the client left).
    async fn wait_for_request(&mut self) -> bool {
        let ready = tokio::time::timeout(self.proxy.idle_timeout, self.io.ready());
        // Readiness first: a request already waiting when a drain starts is served (with
        // `Connection: close`), not dropped unanswered.
        tokio::select! {
            biased;
            ready = ready => matches!(ready, Ok(Ok(()))),
            () = self.connections.draining() => false,
        }
    }

    async fn exchange(&mut self, h2c: bool) -> Next {
        let head = match self.read_head(h2c).await {
            Ok(head) => head,
            Err(next) => return next,
        };
        if head.method(&self.buf) == b"CONNECT" {
            // A reverse proxy tunnels to no address a client names.
            return self.refuse(StatusCode::METHOD_NOT_ALLOWED).await;
        }
        let host = head
            .host(&self.buf)
            .and_then(|host| std::str::from_utf8(host).ok());
        match self.proxy.route(host).await {
            Routed::Ping => {
                let ok = PageBody::Text("ok");
                self.answer(&head, StatusCode::OK, &ok, None).await
            }
            Routed::Failed(error) => self.answer_error(&head, error).await,
            Routed::Found { host, lookup } => self.forward(head, host, lookup).await,
        }
    }

    /// Reads until a whole head is in the buffer, within `tcpTimeout` of its first byte.
    async fn read_head(&mut self, h2c: bool) -> Result<RequestHead, Next> {
        let deadline = Instant::now() + self.proxy.idle_timeout;
        loop {
            if !self.buf.is_empty() {
                match RequestHead::parse(&self.buf) {
                    Ok(Some(head)) => return Ok(head),
                    Ok(None) => {}
                    Err(_) if h2c && self.buf.starts_with(H2_PREFACE) => return Err(Next::Http2),
                    Err(error) => {
                        let status = match error {
                            HeadError::Malformed => StatusCode::BAD_REQUEST,
                            HeadError::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                        };
                        tracing::debug!(peer = %self.client.peer, %status, "unreadable request");
                        return Err(self.refuse(status).await);
                    }
                }
            }
            // A head ends with a line: bytes without `\n` cannot complete it, so a client that
            // trickles bytes does not make the whole head be parsed again for each one.
            loop {
                let before = self.buf.len();
                buffers::reserve_read(&mut self.buf);
                match tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Err(Next::Close),
                    Ok(Ok(_)) => {}
                }
                if self.buf[before..].contains(&b'\n') || self.buf.len() >= MAX_HEAD_BYTES {
                    break;
                }
            }
        }
    }

    /// Refuses a request with a bare `status` and closes: what follows it cannot be trusted.
    pub(super) async fn refuse(&mut self, status: StatusCode) -> Next {
        let mut out = Vec::with_capacity(128);
        encode::refusal(&mut out, status);
        let _ = write_within(&mut self.io, &out, self.proxy.idle_timeout).await;
        Next::Close
    }

    /// Answers a request that reached no backend: no access log line, as in Hipache.
    pub(super) async fn answer_error(&mut self, head: &RequestHead, error: ProxyError) -> Next {
        let (page, debug) = self.error_page(head, error);
        self.answer(head, error.status(), &page, debug).await
    }

    /// The page that answers `error`, and its `X-Debug-Error` value when the client asked.
    fn error_page(
        &self,
        head: &RequestHead,
        error: ProxyError,
    ) -> (PageBody, Option<&'static str>) {
        let page = self.proxy.pages.body(error.status(), error.reason());
        (page, head.debug.then(|| error.reason()))
    }

    /// Writes the page that answers `error`; returns whether it was written and its body's
    /// size, for the access log.
    pub(super) async fn write_error_page(
        &mut self,
        head: &RequestHead,
        error: ProxyError,
        close: bool,
    ) -> (bool, u64) {
        let (page, debug) = self.error_page(head, error);
        let written = self
            .write_generated(head, error.status(), &page, close, debug)
            .await;
        (written, page.size() as u64)
    }

    /// Writes a response of our own; the request's body, if any, is left unread, so the
    /// connection closes after it.
    pub(super) async fn answer(
        &mut self,
        head: &RequestHead,
        status: StatusCode,
        page: &PageBody,
        debug_error: Option<&str>,
    ) -> Next {
        let close = head.has_body() || !self.keeps_alive(head);
        let written = self
            .write_generated(head, status, page, close, debug_error)
            .await;
        self.finish(head.len, written && !close)
    }

    pub(super) async fn write_generated(
        &mut self,
        head: &RequestHead,
        status: StatusCode,
        page: &PageBody,
        close: bool,
        debug_error: Option<&str>,
    ) -> bool {
        let mut out = buffers::take();
        encode::generated_response(&mut out, head.minor, status, page, close, debug_error);
        if head.is_head(&self.buf) {
            out.truncate(out.len() - page.size());
        }
        let written = write_within(&mut self.io, &out, self.proxy.idle_timeout).await;
        buffers::give_back(out);
        written
    }

    /// Whether the connection may carry another request after this one.
    pub(super) fn keeps_alive(&self, head: &RequestHead) -> bool {
        head.wants_keep_alive() && !self.connections.is_draining()
    }

    /// Drops the request's bytes (`consumed` of them) and says what follows.
    pub(super) fn finish(&mut self, consumed: usize, keep_alive: bool) -> Next {
        if !keep_alive {
            return Next::Close;
        }
        self.buf.drain(..consumed.min(self.buf.len()));
        Next::KeepAlive
    }
}
