//! Sending an HTTP/2 request to a backend as HTTP/1.1 (the front end's part of an attempt):
//! its head rewritten for the backend, its body kept whole when small enough to be sent again,
//! streamed once otherwise, in chunks when its length is unknown or trailers may follow it
//! (which then end the chunks). Once the backend starts answering, sending returns and the rest
//! of a streamed body (`pump`) moves on from the response body. The backend's interim answers
//! go to the client as HTTP/2 informational responses as they come (`interim`).

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
use crate::wire::headers::Forwarded;
use crate::wire::response::ResponseHead;
use crate::wire::{buffers, encode, trailers};

/// Requests with a body up to this size are kept whole, so that a retry can send them again.
pub(crate) const REPLAY_LIMIT_BYTES: u64 = 64 * 1024;

/// The client's request body, as far as retries are concerned.
pub(crate) enum Payload {
    /// Held in memory: can be sent any number of times. `end`: the last chunk with the
    /// client's trailers, when it sent some (the body then goes in chunks to carry them).
    Replayable { body: Bytes, end: Option<Vec<u8>> },
    /// Streamed from the client: `None` once sent. `chunked`: it goes to the backend in chunks,
    /// which carry its trailers if it sends some.
    Once {
        body: Option<RecvStream>,
        chunked: bool,
    },
}

impl Payload {
    /// No body.
    pub(crate) fn empty() -> Self {
        Self::Replayable {
            body: Bytes::new(),
            end: None,
        }
    }

    /// Keeps small bodies whole with their trailers (`length` is the request's
    /// `content-length`); a client that goes away while sending one, or sends nothing of it for
    /// `idle`, is `Gone`, and one whose trailers HTTP/2 forbids sent an `InvalidBody`.
    ///
    /// A body streamed goes in chunks when its length is unknown, or when the client says it
    /// deals in trailers (`te: trailers`), so that trailers it sends can follow the body.
    ///
    /// A client that expects `100 Continue` sends its body only once a backend said so: its
    /// body is streamed, never waited for here, whatever its size.
    pub(crate) async fn from_client(
        mut body: RecvStream,
        length: Option<u64>,
        trailers_expected: bool,
        expects_continue: bool,
        idle: Duration,
    ) -> Result<Self, ClientFailure> {
        if body.is_end_stream() {
            return Ok(Self::empty());
        }
        match length {
            Some(n) if n <= REPLAY_LIMIT_BYTES && !expects_continue => {
                tokio::time::timeout(idle, whole(&mut body))
                    .await
                    .map_err(|_| ClientFailure::Gone)?
            }
            _ => Ok(Self::Once {
                body: Some(body),
                chunked: length.is_none() || trailers_expected,
            }),
        }
    }
}

/// All of a body, its window given back as it comes, and the end of its chunked form when it
/// has trailers.
async fn whole(body: &mut RecvStream) -> Result<Payload, ClientFailure> {
    let mut all = BytesMut::new();
    let mut first = None;
    while let Some(data) = body.data().await {
        let data = data.map_err(|_| ClientFailure::Gone)?;
        let _ = body.flow_control().release_capacity(data.len());
        if first.is_none() && all.is_empty() {
            // The usual case, one DATA frame: kept as it came.
            first = Some(data);
            continue;
        }
        if let Some(first) = first.take() {
            all.extend_from_slice(&first);
        }
        all.extend_from_slice(&data);
    }
    let body_bytes = first.unwrap_or_else(|| all.freeze());
    let end = match body.trailers().await.map_err(|_| ClientFailure::Gone)? {
        Some(fields) => {
            let mut end = Vec::new();
            trailers::last_chunk(&mut end, &fields).map_err(|_| ClientFailure::InvalidBody)?;
            Some(end)
        }
        None => None,
    };
    Ok(Payload::Replayable {
        body: body_bytes,
        end,
    })
}

/// An HTTP/2 request on its way to a backend.
pub(crate) struct Request<'a> {
    /// The head, its hop-by-hop fields removed; `Host`, the forwarding fields and
    /// `Connection: close` (with `keep_alive` off) are written after it.
    pub(crate) parts: &'a Parts,
    pub(crate) forwarded: &'a Forwarded,
    pub(crate) keep_alive: bool,
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
            Payload::Replayable { .. } => true,
            // A streamed body can go to another backend until its first byte was taken from
            // the client (one waiting for `100 Continue` has sent none).
            Payload::Once { .. } => self.pump.as_ref().is_none_or(UploadPump::is_untouched),
        }
    }

    fn is_idempotent(&self) -> bool {
        self.parts.method.is_idempotent()
    }

    async fn send(&mut self, stream: &mut BackendStream) -> Result<(), SendError> {
        let chunked = match &self.payload {
            Payload::Replayable { end, .. } => end.is_some(),
            Payload::Once { chunked, .. } => *chunked,
        };
        let (body, end) = match &self.payload {
            Payload::Replayable { body, end } => (&body[..], end.as_deref()),
            Payload::Once { .. } => (&[][..], None),
        };
        let mut out = buffers::take(buffers::ANSWER + body.len() + end.map_or(0, <[u8]>::len));
        encode::request_from_parts(&mut out, self.parts, chunked);
        let authority = self.parts.uri.authority().map(|a| a.as_str());
        let headers = &self.parts.headers;
        encode::append_request_fields(
            &mut out,
            headers,
            authority,
            self.forwarded,
            self.keep_alive,
        );
        encode::held_body(&mut out, body, end);
        let written = write_within(&mut stream.stream, &out, self.timeout).await;
        buffers::give_back(out);
        if !written {
            return Err(SendError::Backend { sent: false });
        }
        let incoming = match &mut self.payload {
            Payload::Once { body, .. } => body.take(),
            Payload::Replayable { .. } => None,
        };
        if let Some(incoming) = incoming {
            self.pump = Some(UploadPump::new(incoming, chunked));
        }
        self.move_body(stream).await
    }

    async fn interim(&mut self, head: &ResponseHead, bytes: &[u8]) -> Result<(), ClientFailure> {
        let interim = http::Response::from_parts(crate::wire::http_head::head_of(head, bytes), ());
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
