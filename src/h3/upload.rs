//! An HTTP/3 request body too large to keep whole, moved to the HTTP/1.1 backend: while the
//! backend reads it before answering, then on beside the answer once its head came (a backend
//! that echoes streams its answer while it reads the upload, and neither direction may wait
//! for the other to end).
//!
//! Each step keeps what it took in `pending` before it writes, so that a step dropped between
//! its awaits (the backend began answering) loses no byte: the next call goes on from there.
//! A body that does not end at the length it declared is malformed (RFC 9114 §4.1.2) and is
//! never completed to the backend: it gets a closed connection instead.

use std::collections::VecDeque;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::RecvHalf;
use crate::proxy::backend::Activity;
use crate::proxy::{ClientFailure, SendError};
use crate::wire::{encode, trailers};

pub(crate) struct Upload {
    /// `None` once the client's body ended.
    incoming: Option<RecvHalf>,
    /// The body goes to the backend in chunks (its length unknown, or trailers may follow).
    chunked: bool,
    /// Sent with its length: the length it declared.
    length: Option<u64>,
    /// Bytes of the body taken from the client.
    received: u64,
    /// Framing and data taken from the client, not yet written to the backend.
    pending: VecDeque<Bytes>,
    /// Some of the body (or its end) was taken from the client.
    taken: bool,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Moving,
    Done,
    /// The backend stopped taking it, or the client stopped sending it.
    Stopped,
}

impl Upload {
    /// `first`: the start of the body, already read.
    pub(super) fn new(
        incoming: RecvHalf,
        chunked: bool,
        length: Option<u64>,
        first: Option<Bytes>,
    ) -> Self {
        let mut upload = Self {
            incoming: Some(incoming),
            chunked,
            length,
            received: 0,
            pending: VecDeque::new(),
            taken: false,
            state: State::Moving,
        };
        if let Some(first) = first {
            // Taken from the client already; not yet sent anywhere, so still replayable.
            upload.received = first.len() as u64;
            upload.push_data(first);
        }
        upload
    }

    pub(super) fn is_moving(&self) -> bool {
        self.state == State::Moving
    }

    pub(super) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether nothing was sent to a backend yet: the upload can start again on another
    /// backend stream, behind a new head.
    pub(super) fn is_untouched(&self) -> bool {
        self.state == State::Moving && !self.taken
    }

    /// Whether it holds bytes the backend has not taken yet (rather than waiting for the
    /// client's next frame).
    pub(super) fn waits_for_backend(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Moves the body to `backend` until it is sent whole (`Ok`) or who stopped it, touching
    /// `activity` on each step forward. Dropping it between steps loses nothing.
    pub(super) async fn run(
        &mut self,
        backend: &mut (impl AsyncWrite + Unpin),
        activity: &Activity,
    ) -> Result<(), SendError> {
        while self.state == State::Moving {
            match self.step(backend, activity).await {
                Ok(true) => self.state = State::Done,
                Ok(false) => {}
                Err(error) => {
                    self.state = State::Stopped;
                    return Err(error);
                }
            }
        }
        match self.state {
            State::Stopped => Err(SendError::Backend { sent: true }),
            _ => Ok(()),
        }
    }

    /// One write to the backend or one read from the client: `true` once all is written.
    async fn step(
        &mut self,
        backend: &mut (impl AsyncWrite + Unpin),
        activity: &Activity,
    ) -> Result<bool, SendError> {
        if let Some(front) = self.pending.front_mut() {
            self.taken = true;
            match backend.write(front).await {
                Ok(n) if n > 0 => {
                    activity.touch();
                    front.advance(n);
                    if front.is_empty() {
                        self.pending.pop_front();
                    }
                    return Ok(false);
                }
                _ => return Err(SendError::Backend { sent: true }),
            }
        }
        let Some(incoming) = self.incoming.as_mut() else {
            let _ = backend.flush().await;
            return Ok(true);
        };
        let gone = SendError::Client(ClientFailure::Gone);
        match incoming.recv_data().await {
            Ok(Some(mut data)) => {
                activity.touch();
                let data = data.copy_to_bytes(data.remaining());
                self.received += data.len() as u64;
                // Checked before it is queued: bytes past the length never reach the backend.
                if self.length.is_some_and(|length| self.received > length) {
                    return Err(SendError::Client(ClientFailure::InvalidBody));
                }
                if !data.is_empty() {
                    self.push_data(data);
                }
                Ok(false)
            }
            Ok(None) => {
                // Trailers end the chunks; a body sent with its length cannot carry them, and
                // they are dropped (RFC 9110 §6.5.1 lets a proxy).
                let trailers = incoming.recv_trailers().await.map_err(|_| gone)?;
                self.incoming = None;
                if self.length.is_some_and(|length| self.received != length) {
                    return Err(SendError::Client(ClientFailure::InvalidBody));
                }
                if self.chunked {
                    let mut end = Vec::new();
                    let fields = trailers.unwrap_or_default();
                    if trailers::last_chunk(&mut end, &fields).is_err() {
                        return Err(SendError::Client(ClientFailure::InvalidBody));
                    }
                    self.pending.push_back(Bytes::from(end));
                }
                Ok(false)
            }
            Err(_) => Err(gone),
        }
    }

    /// Queues `data` for the backend, in a chunk of its own when the body goes in chunks.
    fn push_data(&mut self, data: Bytes) {
        if self.chunked {
            let mut head = Vec::with_capacity(24);
            encode::chunk_head(&mut head, data.len());
            self.pending.push_back(Bytes::from(head));
            self.pending.push_back(data);
            self.pending.push_back(Bytes::from_static(b"\r\n"));
        } else {
            self.pending.push_back(data);
        }
    }
}
