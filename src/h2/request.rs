//! Sending an HTTP/2 request to a backend as HTTP/1.1 (the front end's part of an attempt):
//! its head rewritten for the backend, its body kept whole when small enough to be sent again,
//! streamed once otherwise, in chunks when its length is unknown.

use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use crate::proxy::backend::{write_within, Asked};
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
        match &mut self.payload {
            Payload::Once(incoming) => match incoming.take() {
                Some(incoming) => stream_body(stream, incoming, chunked, self.timeout).await,
                None => Ok(()),
            },
            Payload::Replayable(_) => Ok(()),
        }
    }
}

/// Copies the client's body frames to the backend, in chunks when its length is unknown; a
/// backend that stops reading for `timeout` fails the attempt, and so does a client that stops
/// sending (it holds the backend stream).
async fn stream_body(
    stream: &mut BackendStream,
    mut incoming: Incoming,
    chunked: bool,
    timeout: Duration,
) -> Result<(), SendError> {
    let backend = &mut stream.stream;
    let backend_failed = SendError::Backend { sent: true };
    let mut framing = Vec::with_capacity(24);
    loop {
        let frame = match tokio::time::timeout(timeout, incoming.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => break,
            Ok(Some(Err(_))) | Err(_) => return Err(SendError::Client(ClientFailure::Gone)),
        };
        let Ok(data) = frame.into_data() else {
            // Trailers: HTTP/1.1 backends are not sent them.
            continue;
        };
        if data.is_empty() {
            continue;
        }
        let written = if chunked {
            framing.clear();
            encode::chunk_head(&mut framing, data.len());
            write_within(backend, &framing, timeout).await
                && write_within(backend, &data, timeout).await
                && write_within(backend, b"\r\n", timeout).await
        } else {
            write_within(backend, &data, timeout).await
        };
        if !written {
            return Err(backend_failed);
        }
    }
    if chunked && !write_within(backend, encode::LAST_CHUNK, timeout).await {
        return Err(backend_failed);
    }
    Ok(())
}
