//! The backend side of an exchange, whichever protocol the client speaks: sending the request
//! over a pooled stream with one fresh retry when an idle stream turns out stale, reading the
//! response head under `tcpTimeout`, and walking the response body's framing.

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::buffers;
use super::chunked::{Decoder, InvalidChunk};
use super::pool::BackendStream;
use super::response::{self, ResponseHead};
use crate::proxy::error::ProxyError;

/// Writes all of `bytes` unless the peer stops reading for `limit`: `false` if it did, or
/// failed.
pub async fn write_within<W: AsyncWrite + Unpin>(
    io: &mut W,
    bytes: &[u8],
    limit: std::time::Duration,
) -> bool {
    matches!(
        tokio::time::timeout(limit, io.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// What an attempt learnt when it failed before any response byte came back.
pub struct Unanswered {
    pub error: ProxyError,
    /// Nothing the backend could have acted on arrived: a stale idle stream.
    pub silent: bool,
}

impl Unanswered {
    /// A stream the backend had closed while idle: reset or EOF before any byte came back.
    pub fn is_stale(&self) -> bool {
        self.silent && matches!(self.error, ProxyError::BackendIo { .. })
    }
}

/// A backend's answer whose head is read.
pub struct Answer {
    pub stream: BackendStream,
    /// The response head and what followed it.
    pub buf: Vec<u8>,
    pub head: ResponseHead,
}

/// Reads a response head, skipping interim (1xx but 101) ones, within `timeout`.
pub async fn read_response_head(
    stream: &mut TcpStream,
    is_head: bool,
    timeout: std::time::Duration,
    replayable: bool,
) -> Result<(Vec<u8>, ResponseHead), Unanswered> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = buffers::take();
    let mut received = false;
    loop {
        buffers::reserve_read(&mut buf);
        let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await;
        let silent = !received;
        let failed = |error| Err(Unanswered { error, silent });
        match read {
            Err(_) => return failed(ProxyError::BackendTimeout { replayable }),
            Ok(Ok(0)) | Ok(Err(_)) => return failed(ProxyError::BackendIo { replayable }),
            Ok(Ok(_)) => received = true,
        }
        loop {
            match ResponseHead::parse(&buf, is_head) {
                Ok(Some(head)) if head.is_interim() => {
                    buf.drain(..head.len);
                }
                Ok(Some(head)) => return Ok((buf, head)),
                Ok(None) => break,
                Err(_) => {
                    return Err(Unanswered {
                        error: ProxyError::BackendIo { replayable },
                        silent: false,
                    })
                }
            }
        }
    }
}

/// What of one piece of a response body goes on, and whether the body ended in it.
pub struct Taken {
    pub pass: usize,
    pub done: bool,
}

/// Moves a response body from the backend's bytes to the client's, framing kept or (for an
/// HTTP/1.0 client) chunks decoded; counts the payload bytes for the access log.
pub struct BodyRelay {
    framing: response::Framing,
    remaining: u64,
    decoder: Decoder,
    dechunk: bool,
    pub bytes: u64,
    /// The backend sent bytes after the end of the response: its stream is not reused.
    pub overran: bool,
}

impl BodyRelay {
    pub fn new(framing: response::Framing, dechunk: bool) -> Self {
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

    /// Walks `input`, a piece of the body: what of it goes to the client is either its first
    /// `pass` bytes as they are, or (decoding chunks) the payload appended to `out`.
    pub fn take(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Taken, InvalidChunk> {
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
                let pass = if dechunk { 0 } else { progress.consumed };
                self.overran |= progress.consumed < input.len();
                (pass, progress.done)
            }
        };
        if self.framing != response::Framing::Chunked {
            self.overran |= pass < input.len() && done;
        }
        Ok(Taken { pass, done })
    }

    /// Whether the backend closing now ends the body properly.
    pub fn ends_at_close(&self) -> bool {
        self.framing == response::Framing::UntilClose
    }
}
