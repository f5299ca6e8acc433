//! An HTTP/2 request body too large to keep whole, moved to the HTTP/1.1 backend: while the
//! backend reads it before answering, then on from the response body's polls once the answer's
//! head came (a backend that echoes streams its answer while it reads the upload, and neither
//! direction may wait for the other to end).
//!
//! Written as a poll function over state kept here, so that it can stop when an answer begins
//! and go on from inside `body::ResponseBody::poll_frame` without losing a byte.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::h2::{FlowControl, RecvStream};
use bytes::{Buf, Bytes};
use tokio::io::AsyncWrite;

use crate::proxy::backend::Activity;
use crate::proxy::{ClientFailure, SendError};
use crate::wire::{encode, trailers};

pub(crate) struct UploadPump {
    /// `None` once the client's body ended.
    incoming: Option<RecvStream>,
    /// The body goes to the backend in chunks (its length unknown, or trailers may follow).
    chunked: bool,
    /// Framing and data taken from the client, not yet written to the backend; `true` marks
    /// the client's data, whose bytes are given back to its flow-control window once written.
    pending: VecDeque<(Bytes, bool)>,
    /// Where the client's window is given back, still once `incoming` ended: the connection's
    /// window is shared by every stream.
    window: FlowControl,
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

impl UploadPump {
    pub(crate) fn new(mut incoming: RecvStream, chunked: bool) -> Self {
        Self {
            window: incoming.flow_control().clone(),
            incoming: Some(incoming),
            chunked,
            pending: VecDeque::new(),
            taken: false,
            state: State::Moving,
        }
    }

    pub(crate) fn is_moving(&self) -> bool {
        self.state == State::Moving
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether nothing was taken from the client yet: the pump can start again on another
    /// backend stream, behind a new head.
    pub(crate) fn is_untouched(&self) -> bool {
        self.state == State::Moving && !self.taken
    }

    /// Whether it holds bytes the backend has not taken yet (rather than waiting for the
    /// client's next frame).
    pub(crate) fn waits_for_backend(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Moves what it can, touching `activity` on each step forward: ready when the whole body
    /// is written, or with who stopped it.
    pub(crate) fn poll_move(
        &mut self,
        cx: &mut Context<'_>,
        backend: &mut (impl AsyncWrite + Unpin),
        activity: &Activity,
    ) -> Poll<Result<(), SendError>> {
        if self.state != State::Moving {
            return Poll::Ready(Ok(()));
        }
        let moved = self.poll_steps(cx, backend, activity);
        if let Poll::Ready(result) = &moved {
            self.state = match result {
                Ok(()) => State::Done,
                Err(_) => State::Stopped,
            };
        }
        moved
    }

    fn poll_steps(
        &mut self,
        cx: &mut Context<'_>,
        backend: &mut (impl AsyncWrite + Unpin),
        activity: &Activity,
    ) -> Poll<Result<(), SendError>> {
        loop {
            if let Some((front, data)) = self.pending.front_mut() {
                match Pin::new(&mut *backend).poll_write(cx, front) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        activity.touch();
                        front.advance(n);
                        // The client may send as much again: the backend took these bytes,
                        // so a client never runs more than a window ahead of it.
                        if *data {
                            let _ = self.window.release_capacity(n);
                        }
                        if front.is_empty() {
                            self.pending.pop_front();
                        }
                        continue;
                    }
                    Poll::Ready(_) => return Poll::Ready(Err(SendError::Backend { sent: true })),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let Some(incoming) = self.incoming.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match incoming.poll_data(cx) {
                Poll::Ready(None) => {
                    // Trailers end the chunks; a body sent with its length cannot carry them,
                    // and they are dropped (RFC 9110 §6.5.1 lets a proxy).
                    let trailers = match ready!(incoming.poll_trailers(cx)) {
                        Ok(trailers) => trailers,
                        Err(_) => return Poll::Ready(Err(SendError::Client(ClientFailure::Gone))),
                    };
                    self.incoming = None;
                    self.taken = true;
                    if self.chunked {
                        let mut end = Vec::new();
                        let fields = trailers.unwrap_or_default();
                        if trailers::last_chunk(&mut end, &fields).is_err() {
                            let failure = ClientFailure::InvalidBody;
                            return Poll::Ready(Err(SendError::Client(failure)));
                        }
                        self.pending.push_back((Bytes::from(end), false));
                    }
                }
                Poll::Ready(Some(Ok(data))) => {
                    activity.touch();
                    if data.is_empty() {
                        continue;
                    }
                    self.taken = true;
                    if self.chunked {
                        let mut head = Vec::with_capacity(24);
                        encode::chunk_head(&mut head, data.len());
                        self.pending.push_back((Bytes::from(head), false));
                        self.pending.push_back((data, true));
                        self.pending.push_back((Bytes::from_static(b"\r\n"), false));
                    } else {
                        self.pending.push_back((data, true));
                    }
                }
                Poll::Ready(Some(Err(_))) => {
                    return Poll::Ready(Err(SendError::Client(ClientFailure::Gone)))
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
