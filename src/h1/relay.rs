//! Relaying a backend's answer to the HTTP/1.x client: its head now, its body as it arrives with
//! the framing the backend wrote (chunks pass as they are), except to an HTTP/1.0 client, which
//! gets the payload of a chunked body and a close at its end. (A 101 that opens a tunnel is the
//! session's to find; `request` writes it.)
//!
//! A streamed upload the backend had not read whole when it began answering moves on at the
//! same time (`pump`): the exchange lasts while either direction moves, each side waiting at
//! most `tcpTimeout` past the last progress of both. An answer that ends cut short is logged.

use std::future::Future;

use http::header::HeaderValue;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::client::{Client, ClientStream};
use super::pump::BodyPump;
use crate::access_log::PendingLine;
use crate::escape::Escaped;
use crate::proxy::backend::{Activity, Answer, BodyRelay};
use crate::proxy::{Answered, ClientFailure, Proxy, SendError};
use crate::wire::buffers;
use crate::wire::encode::{self, ClientFraming, Persistence};
use crate::wire::request::RequestHead;
use crate::wire::response::Framing;

/// How a relay ended.
pub(super) enum Relayed {
    /// The whole answer reached the client; `keep_alive` if the connection may go on.
    Whole { keep_alive: bool },
    /// Cut short: the connection closes.
    Closed,
    /// The backend's chunked body is invalid before anything reached the client, which can
    /// still get an error page; the access log line is the caller's to write.
    InvalidBody { line: Option<PendingLine> },
}

/// How the relay of an answer's body ended.
enum End {
    Complete,
    /// The backend's chunks are invalid; `head_sent`: the client already has part of the answer.
    InvalidChunks {
        head_sent: bool,
    },
    /// The client stopped reading or left.
    ClientGone,
    /// The backend closed, failed or went silent before the end, or the client's upload was
    /// invalid: why.
    Cut(&'static str),
}

/// Sends the backend's answer on to the client. `keep_alive`: whether the client's side allows
/// another request; `pump`: a streamed body, which moves on alongside the answer if the backend
/// had not read all of it.
pub(super) async fn relay<S, IO: ClientStream>(
    proxy: &Proxy<S>,
    client: &mut Client<IO>,
    head: &RequestHead,
    answered: Answered<'_>,
    keep_alive: bool,
    mut pump: Option<&mut BodyPump>,
    alt_svc: Option<&HeaderValue>,
) -> Relayed {
    let Answered {
        answer,
        host,
        backend,
        debug,
        line,
        set_cookie,
    } = answered;
    let Answer {
        stream: mut backend_stream,
        buf: mut backend_buf,
        head: response,
    } = answer;
    let idle = proxy.idle_timeout;
    let mut out = buffers::take(backend_buf.len() + buffers::FIELDS);
    let dechunk = response.framing == Framing::Chunked && head.minor == 0;
    let client_framing = match response.coded && head.minor == 1 {
        true => ClientFraming::Coded,
        false => ClientFraming::AsSent,
    };
    // An upload not yet sent whole when the head goes out may never be: where the next
    // request would start is unknown, so the connection is not promised to it.
    let body_pending = pump.as_ref().is_some_and(|pump| !pump.is_done());
    let close = !keep_alive
        || body_pending
        || response.framing == Framing::UntilClose
        || dechunk
        || response.status == 101;
    let persistence = match close {
        true => Persistence::Close,
        false => Persistence::KeepAlive,
    };
    encode::response_for_client(
        &mut out,
        &backend_buf,
        &response,
        head.minor,
        client_framing,
        persistence,
        debug.as_ref(),
    );
    set_cookie_field(&mut out, set_cookie.as_deref());
    alt_svc_field(&mut out, alt_svc);
    let mut body_relay = BodyRelay::new(response.framing, dechunk);
    let activity = Activity::new(idle);
    let start = response.len;
    let ended = match pump.as_deref_mut() {
        Some(pump) if pump.is_moving() => {
            let (mut reading, mut writing) = client.halves();
            let (mut from_backend, mut to_backend) = backend_stream.stream.split();
            let relaying = relay_body(
                &mut body_relay,
                &mut out,
                &mut backend_buf,
                start,
                &mut from_backend,
                &mut writing,
                &activity,
            );
            let pumping = pump.run(&mut reading, &mut to_backend, &activity);
            // Boxed, as the tunnel below: the two directions' state (about 1.4 KiB) would
            // otherwise be room every busy connection keeps for the rare upload streamed
            // alongside its answer.
            Box::pin(alongside(relaying, pumping)).await
        }
        // The common case, unsplit: nothing moves the other way.
        _ => {
            let backend = &mut backend_stream.stream;
            let (buf, out) = (&mut backend_buf, &mut out);
            relay_body(
                &mut body_relay,
                out,
                buf,
                start,
                backend,
                client.io(),
                &activity,
            )
            .await
        }
    };
    buffers::give_back(out);
    buffers::give_back(backend_buf);
    let complete = match ended {
        End::Complete => true,
        End::InvalidChunks { head_sent: false } => return Relayed::InvalidBody { line },
        End::InvalidChunks { head_sent: true } => {
            tracing::warn!(host = %Escaped(host), backend = %Escaped(backend.url.as_str()), "backend sent invalid chunks");
            false
        }
        End::ClientGone => {
            tracing::debug!(host = %Escaped(host), backend = %Escaped(backend.url.as_str()), "client left mid-answer");
            false
        }
        End::Cut(why) => {
            let bytes = body_relay.bytes;
            tracing::warn!(host = %Escaped(host), backend = %Escaped(backend.url.as_str()), reason = why, bytes, "answer cut short");
            false
        }
    };
    if let Some(line) = line {
        line.write(body_relay.bytes);
    }
    let body_sent = pump.is_none_or(|pump| pump.is_done());
    let whole_exchange = complete && body_sent && !body_relay.overran;
    if whole_exchange && proxy.pool.keep_alive() && response.reusable {
        backend_stream.release();
    }
    match complete {
        // A response cut short leaves the client nothing to trust on this connection.
        true => Relayed::Whole { keep_alive: !close },
        false => Relayed::Closed,
    }
}

/// Relays the answer and moves the upload at once, until the answer ends. An upload that
/// ends first (done, or stopped by either side) leaves the answer to go on alone; one whose
/// chunks turn out invalid ends the exchange.
async fn alongside(
    relaying: impl Future<Output = End>,
    pumping: impl Future<Output = Result<(), SendError>>,
) -> End {
    let (mut relaying, mut pumping) = (std::pin::pin!(relaying), std::pin::pin!(pumping));
    let mut pumped = false;
    loop {
        tokio::select! {
            biased;
            ended = &mut relaying => return ended,
            moved = &mut pumping, if !pumped => {
                pumped = true;
                if let Err(SendError::Client(ClientFailure::InvalidBody)) = moved {
                    return End::Cut("invalid chunked upload");
                }
            }
        }
    }
}

/// Walks the answer's body from the backend to the client: what came with the head (from
/// `start` in `buf`), then each read, until its framing says it ended.
async fn relay_body(
    body: &mut BodyRelay,
    out: &mut Vec<u8>,
    buf: &mut Vec<u8>,
    mut start: usize,
    backend: &mut (impl AsyncRead + Unpin),
    client: &mut (impl AsyncWrite + Unpin),
    activity: &Activity,
) -> End {
    let mut head_sent = false;
    loop {
        let input = &buf[start..];
        let Ok(taken) = body.take(input, out) else {
            return End::InvalidChunks { head_sent };
        };
        head_sent = true;
        // The head and a first piece go out in one write; later pieces straight from the
        // backend's buffer, uncopied.
        let piece = if out.is_empty() {
            &input[..taken.pass]
        } else {
            out.extend_from_slice(&input[..taken.pass]);
            &out[..]
        };
        match activity.within(client.write_all(piece)).await {
            Some(Ok(())) => activity.touch(),
            _ => return End::ClientGone,
        }
        out.clear();
        if taken.done {
            return End::Complete;
        }
        let filled = buf.len() == buf.capacity();
        buf.clear();
        start = 0;
        buffers::reserve_stream_read(buf, filled);
        match activity.within(backend.read_buf(buf)).await {
            Some(Ok(0)) if body.ends_at_close() => return End::Complete,
            Some(Ok(0)) => return End::Cut("backend closed mid-answer"),
            Some(Ok(_)) => activity.touch(),
            Some(Err(_)) => return End::Cut("backend failed mid-answer"),
            None => return End::Cut("idle past tcpTimeout"),
        }
    }
}

/// The `Set-Cookie` the attempt loop asked for goes on the head just written.
/// With HTTP/3 on, the `Alt-Svc` field of an https answer, on the head just written.
pub(super) fn alt_svc_field(out: &mut Vec<u8>, alt_svc: Option<&HeaderValue>) {
    if let Some(value) = alt_svc {
        encode::append_field(out, b"Alt-Svc", value.as_bytes());
    }
}

pub(super) fn set_cookie_field(out: &mut Vec<u8>, set_cookie: Option<&str>) {
    if let Some(value) = set_cookie {
        encode::append_field(out, b"Set-Cookie", value.as_bytes());
    }
}
