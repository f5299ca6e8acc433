//! Sending an HTTP/3 request to a backend as HTTP/1.1 (the front end's part of an attempt):
//! its head rewritten for the backend, its body kept whole when small enough to be sent again,
//! streamed once otherwise (`upload`). Once the backend starts answering, sending returns and
//! the rest of a streamed body moves on while the answer is relayed. The backend's interim
//! answers go to the client as HTTP/3 informational responses as they come.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::request::Parts;

use super::upload::Upload;
use super::{RecvHalf, SendHalf};
use crate::proxy::backend::{write_within, Activity, Asked};
use crate::proxy::pool::BackendStream;
use crate::proxy::{ClientFailure, Exchange, SendError};
use crate::wire::response::ResponseHead;
use crate::wire::{buffers, encode, trailers};

/// Requests with a body up to this size are kept whole, so that a retry can send them again.
const REPLAY_LIMIT_BYTES: u64 = 64 * 1024;

/// The client's request body, as far as retries are concerned.
pub(super) enum Payload {
    /// Held in memory: can be sent any number of times. `end`: the last chunk with the
    /// client's trailers, when it sent some (the body then goes in chunks to carry them).
    Replayable { body: Bytes, end: Option<Vec<u8>> },
    /// Streamed from the client: `None` once sending began. `chunked`: it goes to the backend
    /// in chunks (its length unknown, or trailers may follow it); otherwise it must be exactly
    /// `length` bytes.
    Once { body: Option<Upload>, chunked: bool },
}

impl Payload {
    /// No body.
    pub(super) fn empty() -> Self {
        Self::Replayable {
            body: Bytes::new(),
            end: None,
        }
    }

    /// Keeps small bodies whole with their trailers (`length` is the request's
    /// `content-length`); a client that goes away while sending one, or sends nothing of it for
    /// `idle`, is `Gone`, and one whose body is not the length it declared, or whose trailers
    /// cannot be forwarded, sent an `InvalidBody`.
    ///
    /// Without a length, the first of the body is awaited: a request that ends at once (a GET)
    /// has none, and one that does not is streamed in chunks. A client that expects
    /// `100 Continue` sends its body only once a backend said so: its body is streamed, never
    /// waited for here.
    pub(super) async fn from_client(
        mut body: RecvHalf,
        length: Option<u64>,
        trailers_expected: bool,
        expects_continue: bool,
        idle: Duration,
    ) -> Result<Self, ClientFailure> {
        match length {
            Some(0) | None if !expects_continue => {
                let first = within(idle, first_data(&mut body)).await?;
                let Some(first) = first else {
                    return within(idle, ended(&mut body, length.is_some())).await;
                };
                if length == Some(0) {
                    return Err(ClientFailure::InvalidBody);
                }
                let upload = Upload::new(body, true, None, Some(first));
                Ok(Self::Once {
                    body: Some(upload),
                    chunked: true,
                })
            }
            Some(n) if n <= REPLAY_LIMIT_BYTES && !expects_continue => {
                within(idle, whole(&mut body, n)).await
            }
            _ => {
                let chunked = length.is_none() || trailers_expected;
                let length = length.filter(|_| !chunked);
                Ok(Self::Once {
                    body: Some(Upload::new(body, chunked, length, None)),
                    chunked,
                })
            }
        }
    }
}

/// `step` unless the client sends nothing for `idle`.
async fn within<T>(
    idle: Duration,
    step: impl std::future::Future<Output = Result<T, ClientFailure>>,
) -> Result<T, ClientFailure> {
    tokio::time::timeout(idle, step)
        .await
        .map_err(|_| ClientFailure::Gone)?
}

/// The first non-empty piece of the body, or `None` at its end.
async fn first_data(body: &mut RecvHalf) -> Result<Option<Bytes>, ClientFailure> {
    loop {
        match body.recv_data().await {
            Ok(Some(mut data)) if data.has_remaining() => {
                return Ok(Some(data.copy_to_bytes(data.remaining())))
            }
            Ok(Some(_)) => {}
            Ok(None) => return Ok(None),
            Err(_) => return Err(ClientFailure::Gone),
        }
    }
}

/// A request with no body: its trailers, if any, go in a last chunk when `chunked` allows.
async fn ended(body: &mut RecvHalf, has_length: bool) -> Result<Payload, ClientFailure> {
    let trailers = body
        .recv_trailers()
        .await
        .map_err(|_| ClientFailure::Gone)?;
    let end = match trailers {
        // Trailers after no body, on a request without a length: sent as a last chunk.
        Some(fields) if !has_length => {
            let mut end = Vec::new();
            trailers::last_chunk(&mut end, &fields).map_err(|_| ClientFailure::InvalidBody)?;
            Some(end)
        }
        _ => None,
    };
    Ok(Payload::Replayable {
        body: Bytes::new(),
        end,
    })
}

/// All of a body that declared `length`, and the end of its chunked form when it has
/// trailers; a body of another length is malformed (RFC 9114 §4.1.2).
async fn whole(body: &mut RecvHalf, length: u64) -> Result<Payload, ClientFailure> {
    let mut all = BytesMut::new();
    while let Some(mut data) = body.recv_data().await.map_err(|_| ClientFailure::Gone)? {
        if (all.len() + data.remaining()) as u64 > length {
            return Err(ClientFailure::InvalidBody);
        }
        while data.has_remaining() {
            let chunk = data.chunk();
            all.extend_from_slice(chunk);
            let n = chunk.len();
            data.advance(n);
        }
    }
    if all.len() as u64 != length {
        return Err(ClientFailure::InvalidBody);
    }
    let end = match body
        .recv_trailers()
        .await
        .map_err(|_| ClientFailure::Gone)?
    {
        Some(fields) => {
            let mut end = Vec::new();
            trailers::last_chunk(&mut end, &fields).map_err(|_| ClientFailure::InvalidBody)?;
            Some(end)
        }
        None => None,
    };
    Ok(Payload::Replayable {
        body: all.freeze(),
        end,
    })
}

/// An HTTP/3 request on its way to a backend.
pub(super) struct Request<'a> {
    /// The head, already rewritten for the backend (origin form, forwarding fields).
    pub(super) parts: &'a Parts,
    pub(super) payload: Payload,
    /// `tcpTimeout`: a backend (or a client's body) that stops moving for this long fails.
    pub(super) timeout: Duration,
    /// A WebSocket opened over HTTP/3: a 101 is the answer hoped for.
    pub(super) upgrade: bool,
    /// A streamed body once sending began: where it stands.
    pub(super) upload: Option<Upload>,
    /// Where the client's answer goes: interim ones are sent on it as they come.
    pub(super) send: &'a mut SendHalf,
    /// The client sent `expect: 100-continue`: the backend's `100` is relayed to it.
    pub(super) expects_continue: bool,
}

impl Exchange for Request<'_> {
    fn asked(&self) -> Asked {
        Asked {
            head: self.parts.method == http::Method::HEAD,
            upgrade: self.upgrade,
            // Any HTTP/3 response may be preceded by informational ones (RFC 9114 §4.1).
            interim: true,
            continue_awaited: self.expects_continue,
        }
    }

    fn is_replayable(&self) -> bool {
        match self.payload {
            Payload::Replayable { .. } => true,
            // A streamed body can go to another backend until its first byte was taken from
            // the client (one waiting for `100 Continue` has sent none).
            Payload::Once { .. } => self.upload.as_ref().is_none_or(Upload::is_untouched),
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
        encode::held_body(&mut out, body, end);
        let written = write_within(&mut stream.stream, &out, self.timeout).await;
        buffers::give_back(out);
        if !written {
            return Err(SendError::Backend { sent: false });
        }
        if let Payload::Once { body, .. } = &mut self.payload {
            if let Some(upload) = body.take() {
                self.upload = Some(upload);
            }
        }
        self.move_body(stream).await
    }

    async fn interim(&mut self, head: &ResponseHead, bytes: &[u8]) -> Result<(), ClientFailure> {
        let interim = http::Response::from_parts(crate::wire::http_head::head_of(head, bytes), ());
        let sent = self.send.send_response(interim).await;
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
        let Some(upload) = self.upload.as_mut().filter(|upload| upload.is_moving()) else {
            return Ok(());
        };
        // A backend may answer before it read the whole body: one that refuses it, or one that
        // streams its answer while it reads (an echo). Its answer is read next, and the rest
        // of the body moves on while the answer is relayed. A client that stops sending for
        // `tcpTimeout` fails the attempt (it holds the backend stream).
        let activity = Activity::new(self.timeout);
        let (mut reader, mut writer) = stream.stream.split();
        let moved = tokio::select! {
            biased;
            moved = activity.within(upload.run(&mut writer, &activity)) => Some(moved),
            () = reader.peek() => None,
        };
        match moved {
            Some(Some(Err(SendError::Client(failure)))) => Err(SendError::Client(failure)),
            // Nothing moved for `tcpTimeout`: the side it waited for is to blame.
            Some(None) if upload.waits_for_backend() => Err(SendError::Backend { sent: true }),
            Some(None) => Err(SendError::Client(ClientFailure::Gone)),
            // Sent whole; or it answered; or it stopped reading (and may have answered before
            // closing): what it said is read next.
            Some(Some(_)) | None => Ok(()),
        }
    }
}
