//! The body an HTTP/2 client receives: a page of our own, or a backend's body read from its
//! stream as the stream's task (`stream`) asks for it.
//!
//! A streamed upload the backend had not read whole when it began answering moves on from
//! here (`pump`), each time the task asks for more of the answer; the answer is silent only when
//! neither direction moved for `tcpTimeout`.
//!
//! The body also closes the books on a request when it is done: it counts the payload bytes the
//! client was sent, gives the backend stream back to the pool once the response was read to its
//! end, and writes the access log line when it is dropped (as Hipache logs on `res.end`).

use std::future::Future;
use std::io::{self, ErrorKind};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;
use tokio_util::io::poll_read_buf;

use super::pump::UploadPump;
use crate::access_log::PendingLine;
use crate::escape::Escaped;
use crate::proxy::backend::{Activity, Answer, BodyRelay};
use crate::proxy::pool::BackendStream;
use crate::proxy::{ClientFailure, SendError};
use crate::wire::response::Framing;
use crate::wire::{buffers, trailers};

pub(crate) struct ResponseBody {
    content: Content,
    /// Bytes of a page of our own handed on.
    sent: u64,
    log: Option<Box<PendingLine>>,
}

enum Content {
    Full(Option<Bytes>),
    Backend(Box<BackendBody>),
}

/// A backend's body: what was read with the head, then the stream, walked by its framing. HTTP/2
/// has its own framing, so chunks are decoded and only payload goes on, then the trailer fields
/// as a frame of their own.
struct BackendBody {
    stream: Option<BackendStream>,
    buf: Vec<u8>,
    /// The unread part of `buf`: `start..end`.
    start: usize,
    end: usize,
    relay: BodyRelay,
    /// Whether the stream may go back to the pool once the body ended.
    reusable: bool,
    done: bool,
    /// `tcpTimeout`: a backend that sends nothing for this long ends the body with an error.
    idle: Duration,
    /// Set once a read had to wait (most answers come whole with their head, and never do),
    /// for `activity`'s last move plus `idle`.
    silence: Option<Pin<Box<Sleep>>>,
    /// The host and the backend, for the line that reports an answer cut short.
    origin: (String, String),
    /// The rest of a streamed upload, and when either direction last moved.
    pump: Option<UploadPump>,
    activity: Activity,
    /// A chunked body's trailer fields, once it ended with some: sent after the data.
    trailers: Option<HeaderMap>,
}

impl ResponseBody {
    pub(crate) fn full(data: impl Into<Bytes>) -> Self {
        Self {
            content: Content::Full(Some(data.into())),
            sent: 0,
            log: None,
        }
    }

    /// The body of `answer`; the stream is kept for the pool when `keep_alive` allows and the
    /// upload (`pump`), if any, reached the backend whole.
    pub(crate) fn backend(
        answer: Answer,
        keep_alive: bool,
        idle: Duration,
        pump: Option<UploadPump>,
        origin: (String, String),
    ) -> Self {
        let Answer { stream, buf, head } = answer;
        let body = BackendBody {
            stream: Some(stream),
            start: head.len,
            end: buf.len(),
            buf,
            relay: BodyRelay::new(head.framing, true),
            reusable: keep_alive && head.reusable,
            done: matches!(head.framing, Framing::Empty | Framing::Length(0)),
            idle,
            silence: None,
            pump,
            activity: Activity::new(idle),
            origin,
            trailers: None,
        };
        Self {
            content: Content::Backend(Box::new(body)),
            sent: 0,
            log: None,
        }
    }

    /// Writes `line` to the access log, with the byte count, when this body is dropped.
    pub(crate) fn log_on_drop(&mut self, line: Box<PendingLine>) {
        self.log = Some(line);
    }

    fn bytes_sent(&self) -> u64 {
        match &self.content {
            Content::Full(_) => self.sent,
            Content::Backend(body) => body.relay.bytes,
        }
    }
}

impl BackendBody {
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            if self.done {
                self.finish();
                return Poll::Ready(None);
            }
            if self.start < self.end {
                let mut payload = Vec::new();
                let input = &self.buf[self.start..self.end];
                let taken = self
                    .relay
                    .take(input, &mut payload)
                    .map_err(|_| self.cut_short("backend sent invalid chunks"))?;
                let data = match taken.pass {
                    0 => Bytes::from(payload),
                    pass => Bytes::copy_from_slice(&input[..pass]),
                };
                self.start = self.end;
                self.done = taken.done;
                if taken.done {
                    let trailers = trailers::to_map(self.relay.trailer_section());
                    self.trailers = (!trailers.is_empty()).then_some(trailers);
                }
                if !data.is_empty() {
                    return Poll::Ready(Some(Ok(data)));
                }
                continue;
            }
            let Some(stream) = self.stream.as_mut() else {
                return Poll::Ready(None);
            };
            if let Some(pump) = self.pump.as_mut().filter(|pump| pump.is_moving()) {
                // Ready means done or stopped, which the pump remembers; pending, it is
                // woken with this body. A request found malformed at its end (its trailers)
                // was not sent whole, and its answer is not given: the stream is reset.
                let moved = pump.poll_move(cx, &mut stream.stream, &self.activity);
                if let Poll::Ready(Err(SendError::Client(ClientFailure::InvalidBody))) = moved {
                    self.stream = None;
                    let malformed = "client sent malformed trailers";
                    return Poll::Ready(Some(Err(io::Error::new(
                        ErrorKind::InvalidData,
                        malformed,
                    ))));
                }
            }
            // Read into the buffer's spare room, which is not zeroed first: the buffer is the
            // response's own, and zeroing it would cost each answer 16 KiB of writes.
            self.buf.clear();
            self.buf.reserve(buffers::LARGE);
            let filled = match poll_read_buf(Pin::new(&mut stream.stream), cx, &mut self.buf) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(_)) => {
                    self.stream = None;
                    return Poll::Ready(Some(Err(self.cut_short("backend failed mid-answer"))));
                }
                Poll::Pending => {
                    let quiet_until = self.activity.last() + self.idle;
                    let silence = self
                        .silence
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(quiet_until)));
                    if quiet_until > silence.deadline() {
                        silence.as_mut().reset(quiet_until);
                    }
                    ready!(silence.as_mut().poll(cx));
                    self.stream = None;
                    return Poll::Ready(Some(Err(self.cut_short("idle past tcpTimeout"))));
                }
            };
            // What was read moves the deadline on: the timer is reset from it only when a
            // read next has to wait.
            self.activity.touch();
            (self.start, self.end) = (0, filled);
            if filled == 0 {
                if self.relay.ends_at_close() {
                    self.done = true;
                    self.reusable = false;
                    continue;
                }
                self.stream = None;
                return Poll::Ready(Some(Err(self.cut_short("backend closed mid-answer"))));
            }
        }
    }

    /// Logs an answer that ends before its framing says, and the error that resets the
    /// client's stream.
    fn cut_short(&self, why: &'static str) -> io::Error {
        let (host, backend) = &self.origin;
        let bytes = self.relay.bytes;
        tracing::warn!(host = %Escaped(host), backend = %Escaped(backend), reason = why, bytes, "answer cut short");
        io::Error::other(why)
    }

    /// Gives the stream back when it carried exactly this response.
    fn finish(&mut self) {
        if let Some(stream) = self.stream.take() {
            let body_sent = self.pump.as_ref().is_none_or(UploadPump::is_done);
            if self.reusable && body_sent && !self.relay.overran {
                stream.release();
            }
        }
        buffers::give_back(std::mem::take(&mut self.buf));
    }
}

impl ResponseBody {
    fn content_backend(&mut self) -> Option<&mut BackendBody> {
        match &mut self.content {
            Content::Backend(body) => Some(body),
            Content::Full(_) => None,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        match &mut this.content {
            Content::Full(data) => Poll::Ready(data.take().map(|d| {
                this.sent += d.len() as u64;
                Ok(Frame::data(d))
            })),
            Content::Backend(body) => match ready!(body.poll_data(cx)) {
                Some(data) => Poll::Ready(Some(data.map(Frame::data))),
                None => Poll::Ready(body.trailers.take().map(|t| Ok(Frame::trailers(t)))),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.content {
            Content::Full(data) => data.is_none(),
            Content::Backend(body) => body.done && body.trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.content {
            Content::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Content::Backend(_) => SizeHint::default(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        let bytes = self.bytes_sent();
        if let Some(body) = self.content_backend() {
            // A body known complete may not be polled again: that is an end too.
            if body.done {
                body.finish();
            }
        }
        if let Some(line) = self.log.take() {
            line.write(bytes);
        }
    }
}
