//! One forwarding attempt of an HTTP/2 request: a stream to the chosen backend from the worker's
//! pool (the one HTTP/1 clients use), the request written as HTTP/1.1, the response head awaited
//! under `tcpTimeout`. A stale idle stream is retried once on a fresh one, as for HTTP/1.

use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use super::error::ProxyError;
use crate::h1::backend::{read_response_head, write_within, Answer, Asked, Unanswered};
use crate::h1::pool::{BackendPool, BackendStream};
use crate::h1::{buffers, encode};
use crate::routes::Backend;

/// Requests with a body up to this size are kept whole, so that a retry can send them again.
pub const REPLAY_LIMIT_BYTES: u64 = 64 * 1024;

/// The client's request body, as far as retries are concerned.
pub enum Payload {
    /// Held in memory: can be sent any number of times.
    Replayable(Bytes),
    /// Streamed from the client: `None` once sent.
    Once(Option<Incoming>),
}

impl Payload {
    /// Keeps small bodies whole; a client that goes away while sending one, or sends nothing
    /// of it for `idle`, yields `None`.
    pub async fn from_incoming(body: Incoming, idle: Duration) -> Option<Self> {
        use http_body::Body as _;
        match body.size_hint().exact() {
            Some(0) => Some(Self::Replayable(Bytes::new())),
            Some(n) if n <= REPLAY_LIMIT_BYTES => tokio::time::timeout(idle, body.collect())
                .await
                .ok()?
                .ok()
                .map(|collected| Self::Replayable(collected.to_bytes())),
            _ => Some(Self::Once(Some(body))),
        }
    }

    fn is_replayable(&self) -> bool {
        matches!(self, Self::Replayable(_))
    }
}

/// Sends the request described by `parts` and `payload` to `backend` and reads the answer's head.
pub async fn forward(
    pool: &BackendPool,
    backend: &Backend,
    parts: &Parts,
    payload: &mut Payload,
    response_timeout: Duration,
) -> Result<Answer, ProxyError> {
    let replayable = payload.is_replayable();
    // An HTTP/2 request's length is its `content-length`, if any; otherwise it goes in chunks.
    let chunked = !replayable && !parts.headers.contains_key(http::header::CONTENT_LENGTH);
    let mut out = buffers::take();
    encode::request_from_parts(&mut out, parts, chunked);
    if let Payload::Replayable(bytes) = payload {
        out.extend_from_slice(bytes);
    }
    // HTTP/2 has no upgrades: a 101 from the backend is an error.
    let asked = Asked {
        head: parts.method == http::Method::HEAD,
        upgrade: false,
    };
    let idempotent = parts.method.is_idempotent();
    let mut stream = pool.stream(&backend.url).await?;
    let answer = loop {
        match send(&mut stream, &out, payload, chunked, asked, response_timeout).await {
            Ok((buf, head)) => break Ok(Answer { stream, buf, head }),
            // A stream taken idle that the backend had closed (see `Unanswered::is_stale`).
            Err(unanswered) if stream.reused && unanswered.is_stale(idempotent) => {
                match pool.replace(&backend.url, stream).await {
                    Ok(fresh) => stream = fresh,
                    Err(error) => break Err(error),
                }
            }
            Err(unanswered) => break Err(unanswered.error),
        }
    };
    buffers::give_back(out);
    answer
}

async fn send(
    stream: &mut BackendStream,
    head: &[u8],
    payload: &mut Payload,
    chunked: bool,
    asked: Asked,
    timeout: Duration,
) -> Result<(Vec<u8>, crate::h1::response::ResponseHead), Unanswered> {
    let replayable = payload.is_replayable();
    if !write_within(&mut stream.stream, head, timeout).await {
        return Err(Unanswered {
            error: ProxyError::BackendIo { replayable },
            sent: false,
            answered: false,
        });
    }
    if let Payload::Once(incoming) = payload {
        if let Some(incoming) = incoming.take() {
            stream_body(&mut stream.stream, incoming, chunked, timeout).await?;
        }
    }
    read_response_head(&mut stream.stream, asked, timeout, replayable).await
}

/// Copies the client's body frames to the backend, in chunks when its length is unknown; a
/// backend that stops reading for `timeout` fails the attempt.
async fn stream_body(
    backend: &mut tokio::net::TcpStream,
    mut incoming: Incoming,
    chunked: bool,
    timeout: Duration,
) -> Result<(), Unanswered> {
    let failed = Unanswered {
        error: ProxyError::BackendIo { replayable: false },
        sent: true,
        answered: false,
    };
    let mut framing = Vec::with_capacity(24);
    // A client that stops sending holds the backend stream: it gets `timeout` per frame.
    while let Some(frame) = tokio::time::timeout(timeout, incoming.frame())
        .await
        .map_err(|_| Unanswered {
            error: ProxyError::BackendIo { replayable: false },
            sent: true,
            answered: false,
        })?
    {
        let Ok(frame) = frame else {
            return Err(failed);
        };
        let Ok(data) = frame.into_data() else {
            // Trailers: HTTP/1.1 backends are not sent them.
            continue;
        };
        if data.is_empty() {
            continue;
        }
        if chunked {
            framing.clear();
            encode::chunk_head(&mut framing, data.len());
            let written = write_within(backend, &framing, timeout).await
                && write_within(backend, &data, timeout).await
                && write_within(backend, b"\r\n", timeout).await;
            if !written {
                return Err(failed);
            }
        } else if !write_within(backend, &data, timeout).await {
            return Err(failed);
        }
    }
    if chunked && !write_within(backend, encode::LAST_CHUNK, timeout).await {
        return Err(failed);
    }
    Ok(())
}
