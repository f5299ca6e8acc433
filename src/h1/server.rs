//! One HTTP/1.x client connection: wait for a request holding no buffer, read its head within
//! one `tcpTimeout` of the moment the wait began (idle time and a trickled head share the one
//! deadline, as HAProxy's `timeout http-request`), route it, send it through the proxy's attempt loop
//! (`forward` supplies the sending), relay the answer (`relay`), and loop while both sides keep
//! the connection.
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
use super::forward::{self, Body, Upload};
use super::relay::{self, Relayed};
use crate::access_log::LoggedRequest;
use crate::error_page::Generated;
use crate::proxy::error::ProxyError;
use crate::proxy::open::Connections;
use crate::proxy::{ClientConnection, ClientFailure, Outcome, Proxy, Route, Routed};
use crate::routes::RouteSource;
use crate::wire::buffers;
use crate::wire::encode;
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

/// What follows an exchange.
enum Next {
    KeepAlive,
    Close,
    Http2,
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

    async fn exchange(&mut self, h2c: bool, deadline: Instant) -> Next {
        let head = match self.read_head(h2c, deadline).await {
            Ok(head) => head,
            Err(next) => return next,
        };
        let buf = self.client.buf();
        if head.method(buf) == b"CONNECT" {
            // A reverse proxy tunnels to no address a client names.
            return self.refuse(StatusCode::METHOD_NOT_ALLOWED).await;
        }
        let host = head
            .host(buf)
            .and_then(|host| std::str::from_utf8(host).ok());
        let (target, _) = head.origin_form(buf);
        if let Some(answer) = self
            .proxy
            .secure_redirect(self.peer, host, target, head.debug)
        {
            return self.answer(&head, &answer).await;
        }
        match self.proxy.route(host, head.debug).await {
            Routed::Ping => self.answer(&head, &Generated::ping()).await,
            Routed::Failed(error) => {
                let answer = self.proxy.error_answer(error, head.debug);
                self.answer(&head, &answer).await
            }
            Routed::Found(mut route) => self.forward(&head, &mut route).await,
        }
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
                        return Err(self.refuse(status).await);
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

    /// Sends a routed request through the proxy's attempts and relays what comes back. `head`
    /// and `route` come by reference: the request's future holds them once, not twice.
    async fn forward(&mut self, head: &RequestHead, route: &mut Route) -> Next {
        let proxy = self.proxy;
        let buf = self.client.buf();
        let cookies = head
            .fields
            .iter()
            .filter(|f| f.name(buf).eq_ignore_ascii_case(b"cookie"));
        route.sticky = proxy.sticky_token(cookies.map(|f| f.value(buf)));
        let logged = self.logged_request(head);
        let idle = proxy.idle_timeout;
        let body = match forward::read_small_body(&mut self.client, head, idle).await {
            Ok(body) => body,
            Err(failure) => return self.give_up(failure).await,
        };
        // In a block: the upload's room is not kept while the answer is relayed.
        let (outcome, mut pump) = {
            let mut upload = Upload::new(&mut self.client, head, body, &self.peer.forwarded, proxy);
            let outcome = proxy.forward(route, logged, &mut upload).await;
            (outcome, upload.take_pump())
        };
        let consumed = body.consumed(head);
        match outcome {
            Outcome::Answered(answered) => {
                let keep_alive = self.keeps_alive(head);
                let relayed = relay::relay(
                    proxy,
                    &mut self.client,
                    head,
                    answered,
                    keep_alive,
                    pump.as_mut(),
                    consumed,
                )
                .await;
                // The client may still be sending a body nobody will read (the backend
                // answered early): the connection closes after the answer, lingering.
                self.unread_body |= pump.is_some_and(|pump| !pump.is_done());
                match relayed {
                    Relayed::Whole { keep_alive } => self.finish(consumed, keep_alive),
                    Relayed::Closed => Next::Close,
                    Relayed::InvalidBody { line } => {
                        // Nothing reached the client yet: it can still have an honest answer.
                        let error = ProxyError::BackendIo { replayable: false };
                        let answer = proxy.error_answer(error, head.debug);
                        self.write_generated(head, &answer, true).await;
                        if let Some(mut line) = line {
                            line.set_status(error.status().as_u16());
                            line.write(answer.page.size() as u64);
                        }
                        Next::Close
                    }
                }
            }
            Outcome::Failed { error, line } => {
                // A streamed body was partly read: where the next request starts is unknown.
                let close = matches!(body, Body::Stream) || !self.keeps_alive(head);
                let answer = proxy.error_answer(error, head.debug);
                let written = self.write_generated(head, &answer, close).await;
                if let Some(line) = line {
                    line.write(answer.page.size() as u64);
                }
                self.finish(consumed, written && !close)
            }
            Outcome::Client(failure) => self.give_up(failure).await,
        }
    }

    /// What the access log line shows of the request, copied before the buffer moves on.
    fn logged_request(&self, head: &RequestHead) -> Option<LoggedRequest> {
        let log = self.proxy.access_log.as_ref()?;
        let buf = self.client.buf();
        Some(LoggedRequest::new(
            log.clone(),
            self.peer.peer,
            head.method(buf),
            head.target(buf),
            if head.minor == 0 { "1.0" } else { "1.1" },
            head.referer(buf),
            head.user_agent(buf),
        ))
    }

    /// Ends an exchange the client broke: a 400 for a body that is not valid chunked coding,
    /// nothing for a client that left. Either way the connection closes.
    async fn give_up(&mut self, failure: ClientFailure) -> Next {
        if let ClientFailure::InvalidBody = failure {
            tracing::debug!(peer = %self.peer.peer, "invalid chunked request body");
            return self.refuse(StatusCode::BAD_REQUEST).await;
        }
        Next::Close
    }

    /// Refuses a request with a bare `status` and closes: what follows it cannot be trusted.
    async fn refuse(&mut self, status: StatusCode) -> Next {
        let mut out = Vec::with_capacity(128);
        encode::refusal(&mut out, status);
        let _ = self.client.write(&out, self.proxy.idle_timeout).await;
        Next::Close
    }

    /// Answers with a response of our own (no backend was reached: no access log line, as in
    /// Hipache). The request's body, if any, is left unread, so the connection closes after it.
    async fn answer(&mut self, head: &RequestHead, answer: &Generated) -> Next {
        let close = head.has_body() || !self.keeps_alive(head);
        let written = self.write_generated(head, answer, close).await;
        self.finish(head.len, written && !close)
    }

    async fn write_generated(
        &mut self,
        head: &RequestHead,
        answer: &Generated,
        close: bool,
    ) -> bool {
        let mut out = buffers::take(answer.page.size() + buffers::FIELDS);
        encode::generated_response(&mut out, head.minor, answer, close);
        if head.is_head(self.client.buf()) {
            out.truncate(out.len() - answer.page.size());
        }
        let written = self.client.write(&out, self.proxy.idle_timeout).await;
        buffers::give_back(out);
        written
    }

    /// Whether the connection may carry another request after this one.
    fn keeps_alive(&self, head: &RequestHead) -> bool {
        head.wants_keep_alive() && !self.connections.is_draining()
    }

    /// Drops the request's bytes (`consumed` of them) and says what follows.
    fn finish(&mut self, consumed: usize, keep_alive: bool) -> Next {
        if !keep_alive {
            return Next::Close;
        }
        self.client.consume(0..consumed);
        Next::KeepAlive
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
