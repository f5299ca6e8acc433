//! Sending an HTTP/2 request to a backend as HTTP/1.1 (the front end's part of an attempt):
//! its head rewritten for the backend, its body kept whole when small enough to be sent again,
//! streamed once otherwise, in chunks when its length is unknown. Once the backend starts
//! answering, sending returns and the rest of a streamed body (`pump`) moves on from the
//! response body.

use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use super::pump::UploadPump;
use crate::proxy::backend::{write_within, Activity, Asked};
use crate::proxy::pool::BackendStream;
use crate::proxy::{ClientFailure, Exchange, SendError};
use crate::wire::{buffers, encode};

/// Requests with a body up to this size are kept whole, so that a retry can send them again.
pub(crate) const REPLAY_LIMIT_BYTES: u64 = 64 * 1024;

/// The client's request body, as far as retries are concerned.
pub(crate) enum Payload {
    /// Held in memory: can be sent any number of times.
    Replayable(Bytes),
    /// Streamed from the client: `None` once sent.
    Once(Option<Incoming>),
}

impl Payload {
    /// Keeps small bodies whole; a client that goes away while sending one, or sends nothing
    /// of it for `idle`, yields `None`.
    pub(crate) async fn from_incoming(body: Incoming, idle: Duration) -> Option<Self> {
        use http_body::Body as _;
        match body.size_hint().exact() {
            Some(0) => Some(Self::Replayable(Bytes::new())),
            Some(n) if n <= REPLAY_LIMIT_BYTES => tokio::time::timeout(idle, body.collect())
                .await
                .ok()?
                .ok()
                .map(|collected| Self::Replayable(collected.to_bytes())),
            _ => Some(Self::Once(Some(body))),
        }
    }
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
            // hyper's server cannot send 1xx answers: interim ones are skipped.
            interim: false,
        }
    }

    fn is_replayable(&self) -> bool {
        matches!(self.payload, Payload::Replayable(_))
    }

    fn is_idempotent(&self) -> bool {
        self.parts.method.is_idempotent()
    }

    async fn send(&mut self, stream: &mut BackendStream) -> Result<(), SendError> {
        // An HTTP/2 request's length is its `content-length`, if any; otherwise it goes in
        // chunks.
        let chunked = !self.is_replayable()
            && !self
                .parts
                .headers
                .contains_key(http::header::CONTENT_LENGTH);
        let mut out = buffers::take();
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
        let Some(pump) = self.pump.as_mut() else {
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
