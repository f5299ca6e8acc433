//! The backend side of an exchange, whichever protocol the client speaks: sending the request
//! over a pooled stream with one fresh retry when an idle stream turns out stale, reading the
//! response head under `tcpTimeout`, and walking the response body's framing.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::conn::BackendConn;
use super::error::ProxyError;
use super::pool::BackendStream;
use crate::wire::buffers;
use crate::wire::chunked::{Decoder, InvalidChunk};
use crate::wire::response::{self, ResponseHead};

/// Writes all of `bytes` unless the peer stops reading for `limit`: `false` if it did, or
/// failed.
pub(crate) async fn write_within<W: AsyncWrite + Unpin>(
    io: &mut W,
    bytes: &[u8],
    limit: Duration,
) -> bool {
    matches!(
        tokio::time::timeout(limit, io.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// When an exchange last moved, in either direction. An upload and its answer relayed at once
/// each wait `tcpTimeout` past the last progress of either: a backend that echoes slowly while
/// the client is still sending is not idle, nor is a client waiting for a long answer.
pub(crate) struct Activity {
    last: Cell<Instant>,
    idle: Duration,
}

impl Activity {
    pub(crate) fn new(idle: Duration) -> Self {
        Self {
            last: Cell::new(Instant::now()),
            idle,
        }
    }

    /// Bytes moved one way or the other.
    pub(crate) fn touch(&self) {
        self.last.set(Instant::now());
    }

    /// When either direction last moved.
    pub(crate) fn last(&self) -> Instant {
        self.last.get()
    }

    /// Runs `step` until it ends, or until neither direction moved for `tcpTimeout`: `None`
    /// then. `step` must be cancel-safe only in the sense that dropping it loses nothing the
    /// caller needs, as with any timeout.
    pub(crate) async fn within<F: Future>(&self, step: F) -> Option<F::Output> {
        let mut step = std::pin::pin!(step);
        loop {
            let deadline = self.last.get() + self.idle;
            match tokio::time::timeout_at(deadline, step.as_mut()).await {
                Ok(output) => return Some(output),
                Err(_) if self.last.get() + self.idle <= Instant::now() => return None,
                Err(_) => {}
            }
        }
    }
}

/// How an attempt failed, as far as sending the request again is concerned.
pub(crate) struct Unanswered {
    pub(crate) error: ProxyError,
    /// The whole request (or the start of a streamed body) reached the backend's socket.
    pub(crate) sent: bool,
    /// Some bytes of an answer came back.
    pub(crate) answered: bool,
}

impl Unanswered {
    /// A stream taken idle that its backend had closed: sent again on a fresh stream, when the
    /// request never left, or when the backend may have seen it but it is `idempotent`
    /// (RFC 9110 §9.2.2) and can be resent whole. A POST that got no answer is not sent twice.
    pub(crate) fn is_stale(&self, idempotent: bool) -> bool {
        let ProxyError::BackendIo { replayable } = self.error else {
            return false;
        };
        !self.answered && (!self.sent || (idempotent && replayable))
    }
}

/// Methods a client may send twice with the effect of once (RFC 9110 §9.2.2).
pub(crate) fn is_idempotent(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
    )
}

/// What the request lets its answer be.
#[derive(Clone, Copy)]
pub(crate) struct Asked {
    /// A HEAD request: the answer has no body whatever its fields say.
    pub(crate) head: bool,
    /// An upgrade request: a 101 is a valid answer (to anything else it is a backend error).
    pub(crate) upgrade: bool,
    /// The client takes interim answers (1xx but 101): they are handed back one by one
    /// rather than skipped.
    pub(crate) interim: bool,
    /// The client waits for `100 Continue` and the backend was asked for it: a `100` is
    /// relayed only then, since one nobody asked for tells the client nothing (RFC 9110
    /// §15.2.1).
    pub(crate) continue_awaited: bool,
}

/// A backend's answer whose head is read.
pub(crate) struct Answer {
    pub(crate) stream: BackendStream,
    /// The response head and what followed it.
    pub(crate) buf: Vec<u8>,
    pub(crate) head: ResponseHead,
}

/// Reads a response head within `timeout`, starting with the bytes already in `buf`. An interim
/// answer (1xx but 101) is returned like a final one: the caller relays or skips it, and moves
/// the request body on before it reads the next head.
pub(crate) async fn read_response_head(
    stream: &mut BackendConn,
    mut buf: Vec<u8>,
    asked: Asked,
    timeout: Duration,
    replayable: bool,
) -> Result<(Vec<u8>, ResponseHead), Unanswered> {
    let deadline = Instant::now() + timeout;
    let mut answered = !buf.is_empty();
    loop {
        let invalid = Unanswered {
            error: ProxyError::BackendIo { replayable },
            sent: true,
            answered,
        };
        if !buf.is_empty() {
            match ResponseHead::parse(&buf, asked.head) {
                Ok(Some(head)) if head.status == 101 && !asked.upgrade => return Err(invalid),
                Ok(Some(head)) => return Ok((buf, head)),
                Ok(None) => {}
                Err(_) => return Err(invalid),
            }
        }
        buffers::reserve_read(&mut buf);
        let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await;
        let failed = |error| {
            Err(Unanswered {
                error,
                sent: true,
                answered,
            })
        };
        match read {
            Err(_) => return failed(ProxyError::BackendTimeout { replayable }),
            Ok(Ok(0)) | Ok(Err(_)) => return failed(ProxyError::BackendIo { replayable }),
            Ok(Ok(_)) => answered = true,
        }
    }
}

/// What of one piece of a response body goes on, and whether the body ended in it.
pub(crate) struct Taken {
    pub(crate) pass: usize,
    pub(crate) done: bool,
}

/// Moves a response body from the backend's bytes to the client's, framing kept or (for an
/// HTTP/1.0 client) chunks decoded; counts the payload bytes for the access log.
pub(crate) struct BodyRelay {
    framing: response::Framing,
    remaining: u64,
    decoder: Decoder,
    dechunk: bool,
    pub(crate) bytes: u64,
    /// The backend sent bytes after the end of the response: its stream is not reused.
    pub(crate) overran: bool,
}

impl BodyRelay {
    pub(crate) fn new(framing: response::Framing, dechunk: bool) -> Self {
        Self {
            framing,
            remaining: match framing {
                response::Framing::Length(n) => n,
                _ => 0,
            },
            decoder: Decoder::default(),
            dechunk,
            bytes: 0,
            overran: false,
        }
    }

    /// Walks `input`, a piece of the body: what of it goes to the client is its first `pass`
    /// bytes as they are, then what was appended to `out` (decoded payload, or the end of a
    /// chunked body with its rewritten trailers).
    pub(crate) fn take(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Taken, InvalidChunk> {
        let (pass, done) = match self.framing {
            response::Framing::Empty => (0, true),
            response::Framing::Length(_) => {
                let take = self.remaining.min(input.len() as u64) as usize;
                self.remaining -= take as u64;
                self.bytes += take as u64;
                (take, self.remaining == 0)
            }
            response::Framing::UntilClose => {
                self.bytes += input.len() as u64;
                (input.len(), false)
            }
            response::Framing::Chunked => {
                let dechunk = self.dechunk;
                let progress = self.decoder.advance(input, |range| {
                    if dechunk {
                        out.extend_from_slice(&input[range]);
                    }
                })?;
                self.bytes = self.decoder.payload;
                self.overran |= progress.consumed < input.len();
                match (dechunk, progress.done) {
                    (true, _) => (0, progress.done),
                    (false, false) => (progress.pass, false),
                    // The trailer section goes on checked and without framing fields, after
                    // the chunks: both in `out`.
                    (false, true) => {
                        out.extend_from_slice(&input[..progress.pass]);
                        out.extend_from_slice(self.decoder.trailer_section());
                        (0, true)
                    }
                }
            }
        };
        if self.framing != response::Framing::Chunked {
            self.overran |= pass < input.len() && done;
        }
        Ok(Taken { pass, done })
    }

    /// The trailer section of a chunked body that ended, checked and rewritten (`\r\n` when it
    /// had no field, and for other framings).
    pub(crate) fn trailer_section(&self) -> &[u8] {
        match self.framing {
            response::Framing::Chunked => self.decoder.trailer_section(),
            _ => b"\r\n",
        }
    }

    /// Whether the backend closing now ends the body properly.
    pub(crate) fn ends_at_close(&self) -> bool {
        self.framing == response::Framing::UntilClose
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requests_the_backend_cannot_have_acted_on_are_resent() {
        let unanswered = |replayable, sent, answered| Unanswered {
            error: ProxyError::BackendIo { replayable },
            sent,
            answered,
        };
        // Never left: resent whatever it is.
        assert!(unanswered(false, false, false).is_stale(false));
        // Sent whole, no answer: only an idempotent request goes again.
        assert!(unanswered(true, true, false).is_stale(true));
        assert!(!unanswered(true, true, false).is_stale(false));
        // A streamed body cannot go again; an answer began; a timeout is no stale stream.
        assert!(!unanswered(false, true, false).is_stale(true));
        assert!(!unanswered(true, true, true).is_stale(true));
        let timeout = Unanswered {
            error: ProxyError::BackendTimeout { replayable: true },
            sent: true,
            answered: false,
        };
        assert!(!timeout.is_stale(true));
    }
}
