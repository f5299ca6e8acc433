//! A request body too large to keep whole, moved from the client to the backend: while the
//! backend reads it before answering, and on alongside the relay once the answer's head came
//! (a backend that echoes, transcodes or `req.pipe(res)`s streams its answer while it reads the
//! upload: neither direction may wait for the other to end, as Hipache piped both at once).
//!
//! The state lives here, not in the future that moves the body, and every await in it loses
//! nothing when dropped: the front end stops moving the body when an answer begins and picks it
//! up again in the relay.

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::client::{ClientStream, Reading};
use crate::proxy::backend::Activity;
use crate::proxy::{ClientFailure, SendError};
use crate::wire::chunked::Decoder;
use crate::wire::request::{Framing, RequestHead};

/// Where a streamed body stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Moving,
    /// All of it reached the backend.
    Done,
    /// The backend stopped taking it, or the client stopped sending it.
    Stopped,
}

pub(super) struct BodyPump {
    /// The body starts after the head in the client's buffer; what follows it (a pipelined
    /// request) stays there.
    head_len: usize,
    /// Bytes still to come, for a body with a length; `None` for chunked coding.
    remaining: Option<u64>,
    decoder: Decoder,
    /// Bytes after the head already walked (counted, or chunks checked), not yet written.
    ready: usize,
    /// Walked bytes after `ready` that do not go on as they are (a chunked body's trailer
    /// section, held by the decoder): dropped once `ready` is written.
    held: usize,
    /// Bytes of the checked trailer section written, once the body was walked to its end.
    trailer_sent: usize,
    /// The body's end was walked: once `ready` is written, it is done.
    walked_all: bool,
    /// Some of it reached a backend: it cannot go again to another.
    sent_any: bool,
    state: State,
}

impl BodyPump {
    pub(super) fn new(head: &RequestHead) -> Self {
        Self {
            head_len: head.len,
            remaining: match head.framing {
                Framing::Length(n) => Some(n),
                Framing::Chunked => None,
            },
            decoder: Decoder::default(),
            ready: 0,
            held: 0,
            trailer_sent: 0,
            walked_all: false,
            sent_any: false,
            state: State::Moving,
        }
    }

    /// Whether there is more of the body to move.
    pub(super) fn is_moving(&self) -> bool {
        self.state == State::Moving
    }

    /// Whether the whole body reached the backend.
    pub(super) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether none of the body left yet (it is all still in the client's buffer or on its
    /// way): a new pump can send it to another backend.
    pub(super) fn is_untouched(&self) -> bool {
        !self.sent_any
    }

    /// Moves the body until it ends, or until neither direction of the exchange moved for
    /// `tcpTimeout`; an error says who stopped it.
    pub(super) async fn run<IO: ClientStream>(
        &mut self,
        client: &mut Reading<'_, IO>,
        backend: &mut (impl AsyncWrite + Unpin),
        activity: &Activity,
    ) -> Result<(), SendError> {
        if self.state != State::Moving {
            return Ok(());
        }
        let moved = self.move_body(client, backend, activity).await;
        self.state = match moved {
            Ok(()) => State::Done,
            Err(_) => State::Stopped,
        };
        moved
    }

    async fn move_body<IO: ClientStream>(
        &mut self,
        client: &mut Reading<'_, IO>,
        backend: &mut (impl AsyncWrite + Unpin),
        activity: &Activity,
    ) -> Result<(), SendError> {
        let start = self.head_len;
        loop {
            if self.ready == 0 && self.held == 0 && !self.walked_all {
                self.walk(&client.buf()[start..])?;
            }
            if self.ready > 0 {
                let piece = &client.buf()[start..start + self.ready];
                let written = match activity.within(backend.write(piece)).await {
                    Some(Ok(n)) if n > 0 => n,
                    _ => return Err(SendError::Backend { sent: true }),
                };
                activity.touch();
                self.sent_any = true;
                client.consume(start..start + written);
                self.ready -= written;
                continue;
            }
            if self.held > 0 {
                client.consume(start..start + self.held);
                self.held = 0;
            }
            if self.walked_all {
                return self.send_trailers(backend, activity).await;
            }
            match activity.within(client.read_more()).await {
                Some(Ok(n)) if n > 0 => activity.touch(),
                _ => return Err(SendError::Client(ClientFailure::Gone)),
            }
        }
    }

    /// A chunked body's end as it goes on: the checked trailer fields and the blank line.
    async fn send_trailers(
        &mut self,
        backend: &mut (impl AsyncWrite + Unpin),
        activity: &Activity,
    ) -> Result<(), SendError> {
        if self.remaining.is_some() {
            return Ok(());
        }
        loop {
            let section = &self.decoder.trailer_section()[self.trailer_sent..];
            if section.is_empty() {
                return Ok(());
            }
            match activity.within(backend.write(section)).await {
                Some(Ok(n)) if n > 0 => {
                    activity.touch();
                    self.sent_any = true;
                    self.trailer_sent += n;
                }
                _ => return Err(SendError::Backend { sent: true }),
            }
        }
    }

    /// Walks the bytes that arrived since the last walk: how many of them belong to the body.
    fn walk(&mut self, available: &[u8]) -> Result<(), SendError> {
        match self.remaining.as_mut() {
            Some(left) => {
                let take = (*left).min(available.len() as u64);
                *left -= take;
                self.ready = take as usize;
                self.walked_all = *left == 0;
            }
            None => {
                let progress = self
                    .decoder
                    .advance(available, |_| {})
                    .map_err(|_| SendError::Client(ClientFailure::InvalidBody))?;
                self.ready = progress.pass;
                self.held = progress.consumed - progress.pass;
                self.walked_all = progress.done;
            }
        }
        Ok(())
    }
}
