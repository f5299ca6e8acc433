//! Sending an HTTP/2 request to a backend as HTTP/1.1 (the front end's part of an attempt):
//! its head rewritten for the backend, its body kept whole when small enough to be sent again,
//! streamed once otherwise, in chunks when its length is unknown. Once the backend starts
//! answering, sending returns and the rest of a streamed body (`pump`) moves on from the
//! response body. The backend's interim answers go to the client as HTTP/2 informational
//! responses as they come (`interim`).

use std::cell::RefCell;
use std::time::Duration;

use ::h2::server::SendResponse;
use ::h2::RecvStream;
use bytes::{Bytes, BytesMut};
use http::request::Parts;

use super::pump::UploadPump;
use crate::proxy::backend::{write_within, Activity, Asked};
use crate::proxy::pool::BackendStream;
use crate::proxy::{ClientFailure, Exchange, SendError};
use crate::wire::response::ResponseHead;
use crate::wire::{buffers, encode};

/// Requests with a body up to this size are kept whole, so that a retry can send them again.
pub(crate) const REPLAY_LIMIT_BYTES: u64 = 64 * 1024;

/// The client's request body, as far as retries are concerned.
pub(crate) enum Payload {
    /// Held in memory: can be sent any number of times.
    Replayable(Bytes),
    /// Streamed from the client: `None` once sent.
    Once(Option<RecvStream>),
}

impl Payload {
    /// Keeps small bodies whole (`length` is the request's `content-length`); a client that
    /// goes away while sending one, or sends nothing of it for `idle`, yields `None`.
    ///
    /// A client that expects `100 Continue` sends its body only once a backend said so: its
    /// body is streamed, never waited for here, whatever its size.
    pub(crate) async fn from_client(
        mut body: RecvStream,
        length: Option<u64>,
        expects_continue: bool,
        idle: Duration,
    ) -> Option<Self> {
        if body.is_end_stream() {
            return Some(Self::Replayable(Bytes::new()));
        }
        match length {
            Some(n) if n <= REPLAY_LIMIT_BYTES && !expects_continue => {
                tokio::time::timeout(idle, whole(&mut body))
                    .await
                    .ok()?
                    .map(Self::Replayable)
            }
            _ => Some(Self::Once(Some(body))),
        }
    }
}

/// All of a body, its window given back as it comes; `None` if the client reset it.
async fn whole(body: &mut RecvStream) -> Option<Bytes> {
    let mut all = BytesMut::new();
    while let Some(data) = body.data().await {
        let data = data.ok()?;
        let _ = body.flow_control().release_capacity(data.len());
        if all.is_empty() && body.is_end_stream() {
            // The usual case, one DATA frame: kept as it came.
            return Some(data);
        }
        all.extend_from_slice(&data);
    }
    Some(all.freeze())
}

/// An HTTP/2 request on its way to a backend.
pub(crate) struct Request<'a> {
    /// The head, already rewritten for the backend (origin form, forwarding fields).
    pub(crate) parts: &'a Parts,
    pub(crate) payload: Payload,
    /// `tcpTimeout`: a backend (or a client's body) that stops moving for this long fails.
    pub(crate) timeout: Duration,
    /// A WebSocket opened over HTTP/2: a 101 is the answer hoped for.
    pub(crate) upgrade: bool,
    /// A streamed body once sending began: where it stands.
    pub(crate) pump: Option<UploadPump>,
    /// Where the client's answer goes: interim ones are sent on it as they come.
    pub(crate) respond: &'a RefCell<SendResponse<Bytes>>,
    /// The client sent `expect: 100-continue`: the backend's `100` is relayed to it.
    pub(crate) expects_continue: bool,
}

impl Request<'_> {
    /// The body still to move once the answer began, if it streams: the response body moves
    /// it on.
    pub(crate) fn take_pump(&mut self) -> Option<UploadPump> {
        self.pump.take()
    }
}

impl Exchange for Request<'_> {
    fn asked(&self) -> Asked {
        Asked {
            head: self.parts.method == http::Method::HEAD,
            // Other HTTP/2 requests have no upgrades: a 101 from the backend is an error.
            upgrade: self.upgrade,
            // Any HTTP/2 response may be preceded by informational ones (RFC 9113 §8.1).
            interim: true,
            continue_awaited: self.expects_continue,
        }
    }

    fn is_replayable(&self) -> bool {
        match self.payload {
            Payload::Replayable(_) => true,
            // A streamed body can go to another backend until its first byte was taken from
            // the client (one waiting for `100 Continue` has sent none).
            Payload::Once(_) => self.pump.as_ref().is_none_or(UploadPump::is_untouched),
        }
    }

    fn is_idempotent(&self) -> bool {
        self.parts.method.is_idempotent()
    }

    async fn send(&mut self, stream: &mut BackendStream) -> Result<(), SendError> {
        // An HTTP/2 request's length is its `content-length`, if any; otherwise it goes in
        // chunks.
        let chunked = matches!(self.payload, Payload::Once(_))
            && !self
                .parts
                .headers
                .contains_key(http::header::CONTENT_LENGTH);
        let body = match &self.payload {
            Payload::Replayable(bytes) => bytes.len(),
            Payload::Once(_) => 0,
        };
        let mut out = buffers::take(buffers::ANSWER + body);
        encode::request_from_parts(&mut out, self.parts, chunked);
        if let Payload::Replayable(bytes) = &self.payload {
            out.extend_from_slice(bytes);
        }
        let written = write_within(&mut stream.stream, &out, self.timeout).await;
        buffers::give_back(out);
        if !written {
            return Err(SendError::Backend { sent: false });
        }
        let incoming = match &mut self.payload {
            Payload::Once(incoming) => incoming.take(),
            Payload::Replayable(_) => None,
        };
        if let Some(incoming) = incoming {
            self.pump = Some(UploadPump::new(incoming, chunked));
        }
        self.move_body(stream).await
    }

    async fn interim(&mut self, head: &ResponseHead, bytes: &[u8]) -> Result<(), ClientFailure> {
        let interim = http::Response::from_parts(super::head_of(head, bytes), ());
        let sent = self.respond.borrow_mut().send_informational(interim);
        sent.map_err(|_| ClientFailure::Gone)
    }

    async fn resume(&mut self, stream: &mut BackendStream) -> Result<(), SendError> {
        // After a `100`, the body the client held back comes now; after a `103`, more of it.
        self.move_body(stream).await
    }
}

impl Request<'_> {
    /// Moves the streamed body, if any, until it is sent whole or the backend speaks.
    async fn move_body(&mut self, stream: &mut BackendStream) -> Result<(), SendError> {
        let Some(pump) = self.pump.as_mut().filter(|pump| pump.is_moving()) else {
            return Ok(());
        };
        // A backend may answer before it read the whole body: one that refuses it, or one that
        // streams its answer while it reads (an echo). Its answer is read next, and the rest
        // of the body moves on from the response body. A client that stops sending for
        // `tcpTimeout` fails the attempt (it holds the backend stream).
        let activity = Activity::new(self.timeout);
        let (mut reader, mut writer) = stream.stream.split();
        let moving = std::future::poll_fn(|cx| pump.poll_move(cx, &mut writer, &activity));
        let moved = tokio::select! {
            biased;
            moved = activity.within(moving) => Some(moved),
            _ = reader.peek() => None,
        };
        match moved {
            Some(Some(Err(SendError::Client(failure)))) => Err(SendError::Client(failure)),
            // Nothing moved for `tcpTimeout`: the side it waited for is to blame.
            Some(None) if pump.waits_for_backend() => Err(SendError::Backend { sent: true }),
            Some(None) => Err(SendError::Client(ClientFailure::Gone)),
            // Sent whole; or it answered; or it stopped reading (and may have answered before
            // closing): what it said is read next.
            Some(Some(_)) | None => Ok(()),
        }
    }
}
