//! Sending an HTTP/1.x request to a backend (the front end's part of an attempt): the head
//! rewritten from the client's bytes, and the body.
//!
//! A body up to `REPLAY_LIMIT_BYTES` is read whole before the first attempt so a retry can send
//! it again; a larger one streams to the first backend and is never resent. Once the backend
//! starts answering, sending returns and the rest of the body (`pump`) moves alongside the
//! relay of the answer.

use std::time::Duration;

use tokio::time::Instant;

use super::client::{Client, ClientStream};
use super::pump::BodyPump;
use crate::proxy::backend::{is_idempotent, write_within, Activity, Asked};
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

/// Reads a small body whole. A body the client holds back until it hears `100 Continue`
/// streams instead: the backend says whether it wants it, and its `100` goes to the client.
pub(super) async fn read_small_body<IO: ClientStream>(
    client: &mut Client<IO>,
    head: &RequestHead,
    idle: Duration,
) -> Result<Body, ClientFailure> {
    let length = match head.framing {
        Framing::Length(n) if n <= REPLAY_LIMIT_BYTES => n as usize,
        Framing::Chunked => return check_sent_chunks(client, head).await,
        Framing::Length(_) => return Ok(Body::Stream),
    };
    let end = head.len + length;
    if client.buf().len() < end && head.expects_continue {
        return Ok(Body::Stream);
    }
    while client.buf().len() < end {
        if !client.read_more(Instant::now() + idle).await {
            return Err(ClientFailure::Gone);
        }
    }
    Ok(Body::Buffered { end })
}

/// Walks the chunked body the client already sent, before anything goes to a backend: a
/// broken chunk line there is refused while no backend has seen the request. A line cut at the
/// end of what was read is completed from bytes that are ready, without waiting for more: a
/// client that sent its head and a 100 KB extension at once gets its 400 at the 4 KiB line
/// bound, and one still composing its body is not held up. The body is kept whole when it
/// ended there.
async fn check_sent_chunks<IO: ClientStream>(
    client: &mut Client<IO>,
    head: &RequestHead,
) -> Result<Body, ClientFailure> {
    let mut decoder = Decoder::default();
    let mut walked = head.len;
    loop {
        let progress = decoder
            .advance(&client.buf()[walked..], |_| {})
            .map_err(|_| ClientFailure::InvalidBody)?;
        walked += progress.consumed;
        if progress.done {
            return Ok(Body::Buffered { end: walked });
        }
        let bounded = (walked - head.len) as u64 <= REPLAY_LIMIT_BYTES;
        if !(bounded && decoder.is_inside_size_line() && client.read_ready().await) {
            return Ok(Body::Stream);
        }
    }
}

/// An HTTP/1.x request on its way to a backend.
pub(super) struct Upload<'a, IO> {
    client: &'a mut Client<IO>,
    head: &'a RequestHead,
    body: Body,
    forwarded: &'a Forwarded,
    keep_alive: bool,
    /// The client waits for `100 Continue` before it sends its body: the backend gets the
    /// `Expect` field and answers it.
    forwards_expect: bool,
    /// `tcpTimeout` for the head's write, and for a body that stops moving.
    response_timeout: Duration,
    idle_timeout: Duration,
    /// A streamed body: where it stands, whichever attempt moves it.
    pump: Option<BodyPump>,
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
            forwards_expect: head.expects_continue && matches!(body, Body::Stream),
            response_timeout: proxy.response_timeout,
            idle_timeout: proxy.idle_timeout,
            pump: matches!(body, Body::Stream).then(|| BodyPump::new(head)),
        }
    }

    /// The body still to move once the answer began, if it streams: the relay moves it on.
    pub(super) fn take_pump(&mut self) -> Option<BodyPump> {
        self.pump.take()
    }

    /// Moves a streamed body until it ends or the backend starts answering.
    ///
    /// A backend may answer before it read the whole body: one that refuses it (413, 401)
    /// and stops reading, or one that streams its answer while it reads (an echo). Either
    /// way its answer is read next, and the rest of the body moves alongside its relay.
    async fn move_until_answer(&mut self, stream: &mut BackendStream) -> Result<(), SendError> {
        let Some(pump) = self.pump.as_mut() else {
            return Ok(());
        };
        // `peek`, not `readable`: readiness left over from the stream's previous answer must
        // not pass for a new one.
        let activity = Activity::new(self.idle_timeout);
        let (mut reading, _) = self.client.halves();
        let (mut reader, mut writer) = stream.stream.split();
        let moved = tokio::select! {
            biased;
            moved = pump.run(&mut reading, &mut writer, &activity) => Some(moved),
            _ = reader.peek() => None,
        };
        match moved {
            // Sent whole; or it answered; or it stopped reading (and may have answered before
            // closing): what it said is read next, and without a word it is a 502 as before.
            Some(Ok(())) | None | Some(Err(SendError::Backend { .. })) => Ok(()),
            Some(Err(client)) => Err(client),
        }
    }
}

impl<IO: ClientStream> Exchange for Upload<'_, IO> {
    async fn interim(&mut self, head: &ResponseHead, bytes: &[u8]) -> Result<(), ClientFailure> {
        let mut out = buffers::take(bytes.len() + buffers::FIELDS);
        encode::interim_response(&mut out, bytes, head);
        let written = self.client.write(&out, self.idle_timeout).await;
        buffers::give_back(out);
        written.then_some(()).ok_or(ClientFailure::Gone)
    }

    async fn resume(&mut self, stream: &mut BackendStream) -> Result<(), SendError> {
        self.move_until_answer(stream).await
    }

    fn asked(&self) -> Asked {
        let buf = self.client.buf();
        Asked {
            head: self.head.is_head(buf),
            upgrade: self.head.upgrade(buf).is_some(),
            // HTTP/1.0 clients must not be sent 1xx answers (RFC 9110 §15.2).
            interim: self.head.minor == 1,
            continue_awaited: self.forwards_expect,
        }
    }

    fn is_replayable(&self) -> bool {
        match self.body {
            Body::Buffered { .. } => true,
            // A streamed body can go to another backend until its first byte left (a client
            // waiting for `100 Continue` has sent none).
            Body::Stream => self.pump.as_ref().is_some_and(BodyPump::is_untouched),
        }
    }

    fn is_idempotent(&self) -> bool {
        is_idempotent(self.head.method(self.client.buf()))
    }

    async fn send(&mut self, stream: &mut BackendStream) -> Result<(), SendError> {
        let (head, buf) = (self.head, self.client.buf());
        if let Some(pump) = self.pump.as_mut().filter(|pump| pump.is_untouched()) {
            // An earlier attempt may have walked the body without sending any of it.
            *pump = BodyPump::new(head);
        }
        let mut out = buffers::take(self.body.consumed(head) + buffers::FIELDS);
        let expect = self.forwards_expect;
        encode::request_for_backend(&mut out, buf, head, self.forwarded, self.keep_alive, expect);
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
        self.move_until_answer(stream).await
    }
}
