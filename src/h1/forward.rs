//! Sending an HTTP/1.x request to a backend (the front end's part of an attempt): the head
//! rewritten from the client's bytes, and the body.
//!
//! A body up to `REPLAY_LIMIT_BYTES` is read whole before the first attempt so a retry can send
//! it again; a larger one streams to the first backend and is never resent, and a backend that
//! answers before it read it all has its answer relayed.

use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::time::Instant;

use super::client::{Client, ClientStream};
use crate::proxy::backend::{is_idempotent, write_within, Asked};
use crate::proxy::pool::BackendStream;
use crate::proxy::{ClientFailure, Exchange, Proxy, SendError};
use crate::wire::buffers;
use crate::wire::chunked::Decoder;
use crate::wire::encode;
use crate::wire::headers::Forwarded;
use crate::wire::request::{Framing, RequestHead};
use crate::wire::response::ResponseHead;

/// Requests with a body up to this size are kept whole, so that a retry can send them again.
pub(super) const REPLAY_LIMIT_BYTES: u64 = 64 * 1024;

/// Where the request body is, for the attempts.
#[derive(Clone, Copy)]
pub(super) enum Body {
    /// Whole in the buffer, up to this offset: every attempt sends it.
    Buffered { end: usize },
    /// Still arriving: the first attempt streams it, and it cannot be sent twice.
    Stream,
}

impl Body {
    /// Bytes of the buffer the request took: its head, and its body when buffered there (a
    /// streamed body was removed from the buffer as it went).
    pub(super) fn consumed(self, head: &RequestHead) -> usize {
        match self {
            Self::Buffered { end } => end,
            Self::Stream => head.len,
        }
    }
}

/// Reads a small body whole (answering `100-continue` first if it is still to come).
pub(super) async fn read_small_body<IO: ClientStream>(
    client: &mut Client<IO>,
    head: &RequestHead,
    idle: Duration,
) -> Result<Body, ClientFailure> {
    let length = match head.framing {
        Framing::Length(n) if n <= REPLAY_LIMIT_BYTES => n as usize,
        Framing::Chunked => {
            let mut decoder = Decoder::default();
            let whole = decoder
                .advance(&client.buf()[head.len..], |_| {})
                .map_err(|_| ClientFailure::InvalidBody)?;
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
    if client.buf().len() < end
        && head.expects_continue
        && !client.write(encode::CONTINUE, idle).await
    {
        return Err(ClientFailure::Gone);
    }
    while client.buf().len() < end {
        if !client.read_more(Instant::now() + idle).await {
            return Err(ClientFailure::Gone);
        }
    }
    Ok(Body::Buffered { end })
}

/// An HTTP/1.x request on its way to a backend.
pub(super) struct Upload<'a, IO> {
    client: &'a mut Client<IO>,
    head: &'a RequestHead,
    body: Body,
    forwarded: &'a Forwarded,
    keep_alive: bool,
    /// `tcpTimeout` for the head's write, and for a body that stops moving.
    response_timeout: Duration,
    idle_timeout: Duration,
    unread_body: bool,
}

impl<'a, IO: ClientStream> Upload<'a, IO> {
    pub(super) fn new<S>(
        client: &'a mut Client<IO>,
        head: &'a RequestHead,
        body: Body,
        forwarded: &'a Forwarded,
        proxy: &Proxy<S>,
    ) -> Self {
        Self {
            client,
            head,
            body,
            forwarded,
            keep_alive: proxy.pool.keep_alive(),
            response_timeout: proxy.response_timeout,
            idle_timeout: proxy.idle_timeout,
            unread_body: false,
        }
    }

    /// Whether the backend answered (or stopped reading) before the whole body was sent: the
    /// client is still sending bytes nobody will read.
    pub(super) fn unread_body(&self) -> bool {
        self.unread_body
    }

    /// Copies a body that did not fit the replay limit from the client to the backend, leaving
    /// the bytes that follow it (a pipelined request) in the buffer after the head.
    async fn stream_body(
        &mut self,
        backend: &mut (impl AsyncWrite + Unpin),
    ) -> Result<(), SendError> {
        let head = self.head;
        let idle = self.idle_timeout;
        let mut remaining = match head.framing {
            Framing::Length(n) => Some(n),
            Framing::Chunked => None,
        };
        let mut decoder = Decoder::default();
        loop {
            let available = &self.client.buf()[head.len..];
            let (take, pass, done) = match remaining.as_mut() {
                Some(left) => {
                    let take = (*left).min(available.len() as u64) as usize;
                    *left -= take as u64;
                    (take, take, *left == 0)
                }
                None => {
                    let progress = decoder
                        .advance(available, |_| {})
                        .map_err(|_| SendError::Client(ClientFailure::InvalidBody))?;
                    (progress.consumed, progress.pass, progress.done)
                }
            };
            // A chunked body's trailer section is held back by the decoder and sent at its end,
            // checked and without framing fields.
            let trailers = match (done, remaining) {
                (true, None) => decoder.trailer_section(),
                _ => &[],
            };
            if !write_within(backend, &available[..pass], idle).await
                || !(trailers.is_empty() || write_within(backend, trailers, idle).await)
            {
                return Err(SendError::Backend { sent: true });
            }
            self.client.consume(head.len..head.len + take);
            if done {
                return Ok(());
            }
            if !self.client.read_more(Instant::now() + idle).await {
                return Err(SendError::Client(ClientFailure::Gone));
            }
        }
    }
}

impl<IO: ClientStream> Exchange for Upload<'_, IO> {
    async fn interim(&mut self, head: &ResponseHead, bytes: &[u8]) -> Result<(), ClientFailure> {
        // The proxy meets `Expect: 100-continue` itself (the field is not forwarded): a
        // backend's own 100 would be a second one, or one nobody asked for.
        if head.status == 100 {
            return Ok(());
        }
        let mut out = buffers::take();
        encode::interim_response(&mut out, bytes, head);
        let written = self.client.write(&out, self.idle_timeout).await;
        buffers::give_back(out);
        written.then_some(()).ok_or(ClientFailure::Gone)
    }

    fn asked(&self) -> Asked {
        let buf = self.client.buf();
        Asked {
            head: self.head.is_head(buf),
            upgrade: self.head.upgrade(buf).is_some(),
            // HTTP/1.0 clients must not be sent 1xx answers (RFC 9110 §15.2).
            interim: self.head.minor == 1,
        }
    }

    fn is_replayable(&self) -> bool {
        matches!(self.body, Body::Buffered { .. })
    }

    fn is_idempotent(&self) -> bool {
        is_idempotent(self.head.method(self.client.buf()))
    }

    async fn send(&mut self, stream: &mut BackendStream) -> Result<(), SendError> {
        let (head, buf) = (self.head, self.client.buf());
        let mut out = buffers::take();
        encode::request_for_backend(&mut out, buf, head, self.forwarded, self.keep_alive);
        if let Body::Buffered { end } = self.body {
            let body = &buf[head.len..end];
            match head.framing {
                // Trailers go on checked and without framing fields (`wire::chunked`).
                Framing::Chunked if Decoder::copy_whole(body, &mut out).is_err() => {
                    buffers::give_back(out);
                    return Err(SendError::Client(ClientFailure::InvalidBody));
                }
                Framing::Chunked => {}
                Framing::Length(_) => out.extend_from_slice(body),
            }
        }
        let written = write_within(&mut stream.stream, &out, self.response_timeout).await;
        buffers::give_back(out);
        if !written {
            return Err(SendError::Backend { sent: false });
        }
        if let Body::Buffered { .. } = self.body {
            return Ok(());
        }
        if head.expects_continue && !self.client.write(encode::CONTINUE, self.idle_timeout).await {
            return Err(SendError::Client(ClientFailure::Gone));
        }
        // A backend may answer before it read the whole body (413, 401...) and stop reading:
        // its answer is what the client gets, then, not a 502 for a stalled write. `peek`, not
        // `readable`: readiness left over from the stream's previous answer must not pass for
        // a new one.
        let (mut reader, mut writer) = stream.stream.split();
        let mut first = [0u8; 1];
        let streamed = tokio::select! {
            biased;
            streamed = self.stream_body(&mut writer) => Some(streamed),
            _ = reader.peek(&mut first) => None,
        };
        match streamed {
            Some(Ok(())) => Ok(()),
            // It answered, or stopped reading (and may have answered before closing): what it
            // said is read next; without a word it is a 502 as before.
            None | Some(Err(SendError::Backend { .. })) => {
                self.unread_body = true;
                Ok(())
            }
            Some(Err(client)) => Err(client),
        }
    }
}
