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

/// A body kept whole or streamed from a peer exactly once: what the backend is sent (kept whole
/// when small, so a retry can send it again), and the content of what the client receives.
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

/// A response body for the client.
pub struct ResponseBody {
    content: RequestBody,
    bytes: u64,
    /// The backend connection, returned to the pool when the body has been read to its end.
    idle: Option<Idle>,
    log: Option<Box<PendingLine>>,
}

impl ResponseBody {
    pub fn full(data: impl Into<Bytes>) -> Self {
        Self {
            content: RequestBody::Full(Some(data.into())),
            bytes: 0,
            idle: None,
            log: None,
        }
    }

    pub fn backend(incoming: Incoming, idle: Option<Idle>) -> Self {
        Self {
            content: RequestBody::Stream(incoming),
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
        let frame = ready!(Pin::new(&mut this.content).poll_frame(cx));
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
        self.content.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.content.size_hint()
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
