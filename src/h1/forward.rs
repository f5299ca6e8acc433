//! Forwarding one HTTP/1.x request: the attempts on backends, retried on a fresh pick while the
//! failure allows it, until one answers (`relay` takes the answer on from there).
//!
//! A body up to `REPLAY_LIMIT_BYTES` is read whole before the first attempt so a retry can send
//! it again; a larger one streams to the first backend and is never resent, and a backend that
//! answers before it read it all has its answer relayed.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::AsyncReadExt;

use super::backend::{is_idempotent, read_response_head, write_within, Answer, Asked, Unanswered};
use super::buffers;
use super::chunked::Decoder;
use super::encode;
use super::pool::BackendStream;
use super::request::{Framing, RequestHead};
use super::response::ResponseHead;
use super::server::{ClientStream, Conn, Next};
use crate::access_log::LoggedRequest;
use crate::balancer::Attempts;
use crate::proxy::attempt::REPLAY_LIMIT_BYTES;
use crate::proxy::error::ProxyError;
use crate::routes::{Backend, Frontend, Lookup, RouteSource};

/// Where the request body is, for the attempts.
#[derive(Clone, Copy)]
pub(super) enum Body {
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
pub(super) struct Tried<'a> {
    pub(super) backend: &'a Backend,
    pub(super) start: Instant,
}

/// The request facts that outlive the buffer's changes.
pub(super) struct Request {
    pub(super) host: String,
    pub(super) frontend: Arc<Frontend>,
    pub(super) start: Instant,
    pub(super) is_head: bool,
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
            frontend,
        };
        let frontend = &request.frontend;
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
                        .note_failure(&request.host, frontend, backend, error);
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
        // A streamed body was partly read: where the next request starts is unknown.
        let close = matches!(body, Body::Stream) || !self.keeps_alive(&head);
        let (written, page_size) = self.write_error_page(&head, error, close).await;
        // A request that never reached a backend attempt gets no line, as in Hipache.
        if let (Some((_, backend_start)), Some(logged)) = (failure, logged) {
            let status = error.status().as_u16();
            logged
                .into_pending(status, frontend.clone(), request.start, backend_start)
                .write(page_size);
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
}

/// Bytes of the buffer the request took: its head, and its body when buffered there.
pub(super) fn consumed(head: &RequestHead, body: Body) -> usize {
    match body {
        Body::Buffered { end } => end,
        // A streamed body was removed from the buffer as it went.
        Body::Stream => head.len,
    }
}
