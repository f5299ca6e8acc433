//! Forwarding one HTTP/1.x request: the attempts on backends (retried on a fresh pick while the
//! failure allows it), then the response relayed to the client as it arrives, or a tunnel once a
//! backend switched protocols.
//!
//! A body up to `REPLAY_LIMIT_BYTES` is read whole before the first attempt so a retry can send
//! it again; a larger one streams to the first backend and is never resent. Response bodies
//! stream through with their framing as the backend wrote it (chunks pass as they are), except
//! to an HTTP/1.0 client, which gets the payload of a chunked body and a close at its end.

use std::sync::Arc;
use std::time::Instant;

use http::StatusCode;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::backend::{
    is_idempotent, read_response_head, write_within, Answer, Asked, BodyRelay, Unanswered,
};
use super::buffers;
use super::chunked::Decoder;
use super::encode::{self, ClientFraming, Persistence};
use super::pool::BackendStream;
use super::request::{Framing, RequestHead};
use super::response::{self, ResponseHead};
use super::server::{ClientStream, Conn, Next};
use crate::access_log::{LoggedRequest, PendingLine};
use crate::balancer::Attempts;
use crate::proxy::attempt::REPLAY_LIMIT_BYTES;
use crate::proxy::error::ProxyError;
use crate::proxy::headers::{self, DebugInfo};
use crate::proxy::tunnel;
use crate::routes::{Backend, Frontend, Lookup, RouteSource};

/// Where the request body is, for the attempts.
#[derive(Clone, Copy)]
enum Body {
    /// Whole in the buffer, up to this offset: every attempt sends it.
    Buffered { end: usize },
    /// Still arriving: the first attempt streams it, and it cannot be sent twice.
    Stream,
}

/// A failed attempt.
enum Failure {
    Backend(ProxyError),
    /// The client's side broke: nobody is left to answer.
    Client,
    /// The client's chunked body is not valid chunked coding.
    InvalidBody,
}

/// The backend that answered, and when its attempt began.
struct Tried<'a> {
    backend: &'a Backend,
    start: Instant,
}

/// The request facts that outlive the buffer's changes.
struct Request {
    host: String,
    frontend: Arc<Frontend>,
    start: Instant,
    is_head: bool,
}

impl<S: RouteSource, IO: ClientStream> Conn<'_, S, IO> {
    pub(super) async fn forward(
        &mut self,
        head: RequestHead,
        host: String,
        lookup: Lookup,
    ) -> Next {
        let Lookup { frontend, dead } = lookup;
        let buf = &self.buf;
        let request = Request {
            host,
            start: Instant::now(),
            is_head: head.is_head(buf),
            frontend: frontend.clone(),
        };
        let logged = self.proxy.access_log.as_ref().map(|log| {
            LoggedRequest::new(
                log.clone(),
                self.client.peer,
                head.method(buf),
                head.target(buf),
                if head.minor == 0 { "1.0" } else { "1.1" },
                head.referer(buf),
                head.user_agent(buf),
            )
        });
        let body = match self.read_small_body(&head).await {
            Ok(body) => body,
            Err(failure) => return self.give_up(failure).await,
        };
        let mut attempts = Attempts::new(&frontend.backends, &dead, self.proxy.retry_on_error);
        let mut failure = None;
        while let Some(backend) = attempts.next(&mut rand::rng()) {
            let backend_start = Instant::now();
            match self.attempt(backend, &head, body, &request).await {
                Ok(answer) => {
                    let line = logged.map(|logged| {
                        let status = answer.head.status;
                        logged.into_pending(status, frontend.clone(), request.start, backend_start)
                    });
                    let tried = Tried {
                        backend,
                        start: backend_start,
                    };
                    return self.relay(&head, body, &request, tried, answer, line).await;
                }
                Err(Failure::Backend(error)) => {
                    self.proxy
                        .note_failure(&request.host, &frontend, backend, error);
                    failure = Some((error, backend_start));
                    if !attempts.may_retry(error.is_retryable()) {
                        break;
                    }
                }
                Err(failure) => return self.give_up(failure).await,
            }
        }
        let error = match failure {
            Some((error, _)) => error,
            None if frontend.backends.is_empty() => ProxyError::BadBackendUrl,
            None => ProxyError::NoLiveBackend,
        };
        let page = self.proxy.pages.body(error.status(), error.reason());
        let debug = head.debug.then(|| error.reason());
        // A streamed body was partly read: where the next request starts is unknown.
        let close = matches!(body, Body::Stream) || !self.keeps_alive(&head);
        let written = self
            .write_generated(&head, error.status(), &page, close, debug)
            .await;
        // A request that never reached a backend attempt gets no line, as in Hipache.
        if let (Some((_, backend_start)), Some(logged)) = (failure, logged) {
            let status = error.status().as_u16();
            logged
                .into_pending(status, frontend.clone(), request.start, backend_start)
                .write(page.size() as u64);
        }
        self.finish(consumed(&head, body), written && !close)
    }

    /// Ends an exchange the client broke: a 400 for a body that is not valid chunked coding,
    /// nothing for a client that left. Either way the connection closes.
    async fn give_up(&mut self, failure: Failure) -> Next {
        if let Failure::InvalidBody = failure {
            tracing::debug!(peer = %self.client.peer, "invalid chunked request body");
            return self.refuse(http::StatusCode::BAD_REQUEST).await;
        }
        Next::Close
    }

    /// Reads a small body whole (answering `100-continue` first if it is still to come).
    async fn read_small_body(&mut self, head: &RequestHead) -> Result<Body, Failure> {
        let length = match head.framing {
            Framing::Length(n) if n <= REPLAY_LIMIT_BYTES => n as usize,
            Framing::Chunked => {
                let mut decoder = Decoder::default();
                let whole = decoder
                    .advance(&self.buf[head.len..], |_| {})
                    .map_err(|_| Failure::InvalidBody)?;
                return Ok(match whole.done {
                    true => Body::Buffered {
                        end: head.len + whole.consumed,
                    },
                    false => Body::Stream,
                });
            }
            Framing::Length(_) => return Ok(Body::Stream),
        };
        let end = head.len + length;
        let idle = self.proxy.idle_timeout;
        if self.buf.len() < end
            && head.expects_continue
            && !write_within(&mut self.io, encode::CONTINUE, idle).await
        {
            return Err(Failure::Client);
        }
        while self.buf.len() < end {
            self.buf.reserve(end - self.buf.len());
            let read =
                tokio::time::timeout(self.proxy.idle_timeout, self.io.read_buf(&mut self.buf));
            match read.await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return Err(Failure::Client),
            }
        }
        Ok(Body::Buffered { end })
    }

    /// Sends the request to `backend` and reads its response head.
    async fn attempt(
        &mut self,
        backend: &Backend,
        head: &RequestHead,
        body: Body,
        request: &Request,
    ) -> Result<Answer, Failure> {
        let pool = &self.proxy.pool;
        let mut stream = pool.stream(&backend.url).await.map_err(Failure::Backend)?;
        let mut out = buffers::take();
        encode::request_for_backend(
            &mut out,
            &self.buf,
            head,
            &self.client.forwarded,
            pool.keep_alive(),
        );
        if let Body::Buffered { end } = body {
            out.extend_from_slice(&self.buf[head.len..end]);
        }
        let asked = Asked {
            head: request.is_head,
            upgrade: head.upgrade(&self.buf).is_some(),
        };
        let idempotent = is_idempotent(head.method(&self.buf));
        let answer = loop {
            match self
                .exchange_once(&mut stream, &out, head, body, asked)
                .await
            {
                Ok((buf, head)) => break Ok(Answer { stream, buf, head }),
                // A stream taken idle that the backend had closed: a fresh one carries the
                // request, in its place under maxSockets.
                Err(Ok(unanswered)) if stream.reused && unanswered.is_stale(idempotent) => {
                    match pool.replace(&backend.url, stream).await {
                        Ok(fresh) => stream = fresh,
                        Err(error) => break Err(Failure::Backend(error)),
                    }
                }
                Err(Ok(unanswered)) => break Err(Failure::Backend(unanswered.error)),
                Err(Err(client)) => break Err(client),
            }
        };
        buffers::give_back(out);
        answer
    }

    /// Writes `out` (and streams the body), then reads the response head under `tcpTimeout`.
    async fn exchange_once(
        &mut self,
        stream: &mut BackendStream,
        out: &[u8],
        head: &RequestHead,
        body: Body,
        asked: Asked,
    ) -> Result<(Vec<u8>, ResponseHead), Result<Unanswered, Failure>> {
        let replayable = matches!(body, Body::Buffered { .. });
        if !write_within(&mut stream.stream, out, self.proxy.response_timeout).await {
            return Err(Ok(Unanswered {
                error: ProxyError::BackendIo { replayable },
                sent: false,
                answered: false,
            }));
        }
        if let Body::Stream = body {
            let idle = self.proxy.idle_timeout;
            if head.expects_continue && !write_within(&mut self.io, encode::CONTINUE, idle).await {
                return Err(Err(Failure::Client));
            }
            // A backend may answer before it read the whole body (413, 401...) and stop
            // reading: its answer is what the client gets, then, not a 502 for a stalled write.
            // `peek`, not `readable`: readiness left over from the stream's previous answer
            // must not pass for a new one.
            let (mut reader, mut writer) = stream.stream.split();
            let mut first = [0u8; 1];
            let streamed = tokio::select! {
                biased;
                streamed = self.stream_body(head, &mut writer) => Some(streamed),
                _ = reader.peek(&mut first) => None,
            };
            match streamed {
                Some(Ok(())) => {}
                // It answered, or stopped reading (and may have answered before closing):
                // what it said is read next; without a word it is a 502 as before.
                None | Some(Err(Ok(_))) => self.unread_body = true,
                Some(Err(Err(client))) => return Err(Err(client)),
            }
        }
        read_response_head(
            &mut stream.stream,
            asked,
            self.proxy.response_timeout,
            replayable,
        )
        .await
        .map_err(Ok)
    }

    /// Copies a body that did not fit the replay limit from the client to the backend, leaving
    /// the bytes that follow it (a pipelined request) in the buffer after the head.
    async fn stream_body(
        &mut self,
        head: &RequestHead,
        backend: &mut (impl tokio::io::AsyncWrite + Unpin),
    ) -> Result<(), Result<Unanswered, Failure>> {
        let backend_failed = Ok(Unanswered {
            error: ProxyError::BackendIo { replayable: false },
            sent: true,
            answered: false,
        });
        let mut remaining = match head.framing {
            Framing::Length(n) => Some(n),
            Framing::Chunked => None,
        };
        let mut decoder = Decoder::default();
        loop {
            let available = &self.buf[head.len..];
            let (take, done) = match remaining.as_mut() {
                Some(left) => {
                    let take = (*left).min(available.len() as u64) as usize;
                    *left -= take as u64;
                    (take, *left == 0)
                }
                None => {
                    let progress = decoder
                        .advance(available, |_| {})
                        .map_err(|_| Err(Failure::InvalidBody))?;
                    (progress.consumed, progress.done)
                }
            };
            if !write_within(backend, &available[..take], self.proxy.idle_timeout).await {
                return Err(backend_failed);
            }
            self.buf.drain(head.len..head.len + take);
            if done {
                return Ok(());
            }
            buffers::reserve_read(&mut self.buf);
            let read =
                tokio::time::timeout(self.proxy.idle_timeout, self.io.read_buf(&mut self.buf));
            match read.await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return Err(Err(Failure::Client)),
            }
        }
    }

    /// Sends the backend's answer on to the client: its head now, its body as it comes.
    async fn relay(
        &mut self,
        head: &RequestHead,
        body: Body,
        request: &Request,
        tried: Tried<'_>,
        answer: Answer,
        mut line: Option<PendingLine>,
    ) -> Next {
        let Tried {
            backend,
            start: backend_start,
        } = tried;
        let Answer {
            stream: mut backend_stream,
            buf: mut backend_buf,
            head: response,
        } = answer;
        let proxy = self.proxy;
        if headers::marks_dead(
            response.status,
            response.retry_after,
            proxy.dead_backend_on_500,
        ) {
            let code = StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY);
            proxy.mark_dead(&request.host, &request.frontend, backend, code.as_str());
        }
        let debug = head.debug.then(|| {
            let now = Instant::now();
            (now - request.start, now - backend_start)
        });
        let debug_info = debug.map(|(total, in_backend)| DebugInfo {
            backend_url: backend.url.as_str(),
            backend_index: backend.index,
            frontend_id: &request.frontend.id,
            host: &request.host,
            total_ms: total.as_millis(),
            backend_ms: in_backend.as_millis(),
        });
        let mut out = buffers::take();
        if response.status == 101 && head.upgrade(&self.buf).is_some() {
            encode::response_for_client(
                &mut out,
                &backend_buf,
                &response,
                head.minor,
                ClientFraming::AsSent,
                Persistence::Upgrade,
                debug_info.as_ref(),
            );
            out.extend_from_slice(&backend_buf[response.len..]);
            buffers::give_back(backend_buf);
            let written = write_within(&mut self.io, &out, proxy.idle_timeout).await;
            buffers::give_back(out);
            // A tunnel's line is written when the 101 is sent, with 0 bytes.
            if let Some(line) = line.take() {
                line.write(0);
            }
            if written {
                // A tunnel is no request: it leaves its place under maxSockets at once.
                self.tunnel(consumed(head, body), backend_stream.into_tunnel())
                    .await;
            }
            return Next::Close;
        }
        let dechunk = response.framing == response::Framing::Chunked && head.minor == 0;
        let client_framing = match response.coded && head.minor == 1 {
            true => ClientFraming::Coded,
            false => ClientFraming::AsSent,
        };
        let close = !self.keeps_alive(head)
            || self.unread_body
            || response.framing == response::Framing::UntilClose
            || dechunk
            || response.status == 101;
        let persistence = if close {
            Persistence::Close
        } else {
            Persistence::KeepAlive
        };
        encode::response_for_client(
            &mut out,
            &backend_buf,
            &response,
            head.minor,
            client_framing,
            persistence,
            debug_info.as_ref(),
        );
        let mut body_relay = BodyRelay::new(response.framing, dechunk);
        let mut start = response.len;
        let mut head_sent = false;
        let complete = loop {
            let input = &backend_buf[start..];
            let Ok(taken) = body_relay.take(input, &mut out) else {
                tracing::warn!(host = %request.host, backend = %backend.url, "backend sent invalid chunks");
                if !head_sent {
                    // Nothing reached the client yet: it can still have an honest answer.
                    let error = ProxyError::BackendIo { replayable: false };
                    let page = proxy.pages.body(error.status(), error.reason());
                    let debug = head.debug.then(|| error.reason());
                    self.write_generated(head, error.status(), &page, true, debug)
                        .await;
                    if let Some(mut line) = line.take() {
                        line.set_status(error.status().as_u16());
                        line.write(page.size() as u64);
                    }
                }
                break false;
            };
            head_sent = true;
            // The head and a first piece go out in one write; later pieces straight from the
            // backend's buffer, uncopied.
            let piece = if out.is_empty() {
                &input[..taken.pass]
            } else {
                out.extend_from_slice(&input[..taken.pass]);
                &out[..]
            };
            if !write_within(&mut self.io, piece, proxy.idle_timeout).await {
                break false;
            }
            out.clear();
            if taken.done {
                break true;
            }
            backend_buf.clear();
            start = 0;
            buffers::reserve_read(&mut backend_buf);
            let read = tokio::time::timeout(
                proxy.idle_timeout,
                backend_stream.stream.read_buf(&mut backend_buf),
            );
            match read.await {
                Ok(Ok(0)) => break body_relay.ends_at_close(),
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => break false,
            }
        };
        buffers::give_back(out);
        buffers::give_back(backend_buf);
        if let Some(line) = line {
            line.write(body_relay.bytes);
        }
        let whole_exchange = complete && !self.unread_body && !body_relay.overran;
        if whole_exchange && proxy.pool.keep_alive() && response.reusable {
            backend_stream.release();
        }
        // A response cut short leaves the client nothing to trust on this connection.
        self.finish(consumed(head, body), complete && !close)
    }

    /// Splices client and backend after a 101, counted in the worker's tunnels; bytes either
    /// side sent early are delivered first.
    async fn tunnel(&mut self, consumed: usize, mut backend: TcpStream) {
        let _open = self.proxy.tunnels.enter();
        let early = self.buf.get(consumed..).unwrap_or_default();
        let idle = self.proxy.idle_timeout;
        if !early.is_empty() && !write_within(&mut backend, early, idle).await {
            return;
        }
        buffers::give_back(std::mem::take(&mut self.buf));
        tunnel::splice_streams(&mut self.io, &mut backend, self.proxy.response_timeout).await;
    }
}

/// Bytes of the buffer the request took: its head, and its body when buffered there.
fn consumed(head: &RequestHead, body: Body) -> usize {
    match body {
        Body::Buffered { end } => end,
        // A streamed body was removed from the buffer as it went.
        Body::Stream => head.len,
    }
}
