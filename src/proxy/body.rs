//! Bodies in both directions: what the backend is sent and what the client receives.
//!
//! The response body also closes the books on a request when it is done: it counts the bytes the
//! client was sent, hands a keep-alive backend connection back to the pool once the response has
//! been read to its end, and writes the access log line when it is dropped (as Hipache logs on
//! `res.end`).

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::client::Idle;
use crate::access_log::PendingLine;

/// A request body for the backend: kept whole (small, so it can be sent again on a retry) or
/// streamed from the client exactly once.
pub enum RequestBody {
    Full(Option<Bytes>),
    Stream(Incoming),
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Self::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Self::Stream(incoming) => Pin::new(incoming).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(data) => data.is_none(),
            Self::Stream(incoming) => incoming.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Self::Stream(incoming) => incoming.size_hint(),
        }
    }
}

enum Content {
    Full(Option<Bytes>),
    Backend(Incoming),
}

/// A response body for the client.
pub struct ResponseBody {
    content: Content,
    bytes: u64,
    /// The backend connection, returned to the pool when the body has been read to its end.
    idle: Option<Idle>,
    log: Option<Box<PendingLine>>,
}

impl ResponseBody {
    pub fn full(data: impl Into<Bytes>) -> Self {
        Self {
            content: Content::Full(Some(data.into())),
            bytes: 0,
            idle: None,
            log: None,
        }
    }

    pub fn backend(incoming: Incoming, idle: Option<Idle>) -> Self {
        Self {
            content: Content::Backend(incoming),
            bytes: 0,
            idle,
            log: None,
        }
    }

    /// Writes `line` to the access log, with the byte count, when this body is dropped.
    pub fn log_on_drop(&mut self, line: Box<PendingLine>) {
        self.log = Some(line);
    }

    fn release_connection(&mut self) {
        if let Some(idle) = self.idle.take() {
            idle.release();
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = match &mut this.content {
            Content::Full(data) => data.take().map(|d| Ok(Frame::data(d))),
            Content::Backend(incoming) => ready!(Pin::new(incoming).poll_frame(cx)),
        };
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
            }
            None => this.release_connection(),
            // A broken backend connection is not returned to the pool.
            Some(Err(_)) => this.idle = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.content {
            Content::Full(data) => data.is_none(),
            Content::Backend(incoming) => incoming.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.content {
            Content::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Content::Backend(incoming) => incoming.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // hyper may stop polling a body it knows is complete (`is_end_stream`): that is an end too.
        if self.is_end_stream() {
            self.release_connection();
        }
        if let Some(line) = self.log.take() {
            line.write(self.bytes);
        }
    }
}
