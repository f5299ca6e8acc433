//! An HTTP/2 request body too large to keep whole, moved to the HTTP/1.1 backend: while the
//! backend reads it before answering, then on from the response body's polls once the answer's
//! head came (a backend that echoes streams its answer while it reads the upload, and neither
//! direction may wait for the other to end).
//!
//! Written as a poll function over state kept here, so that it can stop when an answer begins
//! and go on from inside `body::ResponseBody::poll_frame` without losing a byte.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::Body as _;
use hyper::body::Incoming;
use tokio::io::AsyncWrite;

use crate::proxy::backend::Activity;
use crate::proxy::{ClientFailure, SendError};
use crate::wire::encode;

pub(crate) struct UploadPump {
    /// `None` once the client's body ended.
    incoming: Option<Incoming>,
    /// Without a `content-length`, the body goes to the backend in chunks.
    chunked: bool,
    /// Framing and data taken from the client, not yet written to the backend.
    pending: VecDeque<Bytes>,
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
    pub(crate) fn new(incoming: Incoming, chunked: bool) -> Self {
        Self {
            incoming: Some(incoming),
            chunked,
            pending: VecDeque::new(),
            state: State::Moving,
        }
    }

    pub(crate) fn is_moving(&self) -> bool {
        self.state == State::Moving
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
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
            if let Some(front) = self.pending.front_mut() {
                match Pin::new(&mut *backend).poll_write(cx, front) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        activity.touch();
                        front.advance(n);
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
            match Pin::new(incoming).poll_frame(cx) {
                Poll::Ready(None) => {
                    self.incoming = None;
                    if self.chunked {
                        self.pending
                            .push_back(Bytes::from_static(encode::LAST_CHUNK));
                    }
                }
                Poll::Ready(Some(Ok(frame))) => {
                    activity.touch();
                    // Trailers: HTTP/1.1 backends are not sent them.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
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
                Poll::Ready(Some(Err(_))) => {
                    return Poll::Ready(Err(SendError::Client(ClientFailure::Gone)))
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
