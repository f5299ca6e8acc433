//! Relaying a backend's answer to the HTTP/1.x client: its head now, its body as it arrives with
//! the framing the backend wrote (chunks pass as they are), except to an HTTP/1.0 client, which
//! gets the payload of a chunked body and a close at its end; or, after a 101, a tunnel.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::client::{Client, ClientStream};
use crate::access_log::PendingLine;
use crate::proxy::backend::{write_within, Answer, BodyRelay};
use crate::proxy::{tunnel, Answered, Proxy};
use crate::wire::buffers;
use crate::wire::encode::{self, ClientFraming, Persistence};
use crate::wire::request::RequestHead;
use crate::wire::response::Framing;

/// How a relay ended.
pub(super) enum Relayed {
    /// The whole answer reached the client; `keep_alive` if the connection may go on.
    Whole { keep_alive: bool },
    /// Cut short, or a tunnel that ended: the connection closes.
    Closed,
    /// The backend's chunked body is invalid before anything reached the client, which can
    /// still get an error page; the access log line is the caller's to write.
    InvalidBody { line: Option<PendingLine> },
}

/// Sends the backend's answer on to the client. `keep_alive`: whether the client's side allows
/// another request; `unread_body`: the client is still sending a body the backend stopped
/// reading, so the backend stream cannot be reused; `consumed`: the request's bytes in the
/// client's buffer (what follows is a tunnel's early bytes).
pub(super) async fn relay<S, IO: ClientStream>(
    proxy: &Proxy<S>,
    client: &mut Client<IO>,
    head: &RequestHead,
    answered: Answered<'_>,
    keep_alive: bool,
    unread_body: bool,
    consumed: usize,
) -> Relayed {
    let Answered {
        answer,
        backend,
        debug,
        mut line,
        set_cookie,
    } = answered;
    let Answer {
        stream: mut backend_stream,
        buf: mut backend_buf,
        head: response,
    } = answer;
    let idle = proxy.idle_timeout;
    let mut out = buffers::take();
    if response.status == 101 && head.upgrade(client.buf()).is_some() {
        encode::response_for_client(
            &mut out,
            &backend_buf,
            &response,
            head.minor,
            ClientFraming::AsSent,
            Persistence::Upgrade,
            debug.as_ref(),
        );
        set_cookie_field(&mut out, set_cookie.as_deref());
        out.extend_from_slice(&backend_buf[response.len..]);
        buffers::give_back(backend_buf);
        let written = client.write(&out, idle).await;
        buffers::give_back(out);
        // A tunnel's line is written when the 101 is sent, with 0 bytes.
        if let Some(line) = line.take() {
            line.write(0);
        }
        if written {
            // A tunnel is no request: it leaves its place under maxSockets at once.
            tunnel_to(proxy, client, consumed, backend_stream.into_tunnel()).await;
        }
        return Relayed::Closed;
    }
    let dechunk = response.framing == Framing::Chunked && head.minor == 0;
    let client_framing = match response.coded && head.minor == 1 {
        true => ClientFraming::Coded,
        false => ClientFraming::AsSent,
    };
    let close =
        !keep_alive || response.framing == Framing::UntilClose || dechunk || response.status == 101;
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
    let mut body_relay = BodyRelay::new(response.framing, dechunk);
    let mut start = response.len;
    let mut head_sent = false;
    let complete = loop {
        let input = &backend_buf[start..];
        let Ok(taken) = body_relay.take(input, &mut out) else {
            tracing::warn!(backend = %backend.url, "backend sent invalid chunks");
            if !head_sent {
                buffers::give_back(out);
                buffers::give_back(backend_buf);
                return Relayed::InvalidBody { line };
            }
            break false;
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
        if !client.write(piece, idle).await {
            break false;
        }
        out.clear();
        if taken.done {
            break true;
        }
        backend_buf.clear();
        start = 0;
        buffers::reserve_read(&mut backend_buf);
        let read = tokio::time::timeout(idle, backend_stream.stream.read_buf(&mut backend_buf));
        match read.await {
            Ok(Ok(0)) => break body_relay.ends_at_close(),
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => break false,
        }
    };
    buffers::give_back(out);
    buffers::give_back(backend_buf);
    if let Some(line) = line {
        line.write(body_relay.bytes);
    }
    let whole_exchange = complete && !unread_body && !body_relay.overran;
    if whole_exchange && proxy.pool.keep_alive() && response.reusable {
        backend_stream.release();
    }
    match complete {
        // A response cut short leaves the client nothing to trust on this connection.
        true => Relayed::Whole { keep_alive: !close },
        false => Relayed::Closed,
    }
}

/// Sticky sessions: the cookie goes on the head just written.
fn set_cookie_field(out: &mut Vec<u8>, set_cookie: Option<&str>) {
    if let Some(value) = set_cookie {
        encode::append_field(out, b"Set-Cookie", value.as_bytes());
    }
}

/// Splices client and backend after a 101, counted in the worker's tunnels; bytes the client
/// sent early are delivered first.
async fn tunnel_to<S, IO: ClientStream>(
    proxy: &Proxy<S>,
    client: &mut Client<IO>,
    consumed: usize,
    mut backend: TcpStream,
) {
    let _open = proxy.tunnels.enter();
    let (io, early) = client.take_for_tunnel(consumed);
    let idle = proxy.idle_timeout;
    if !early.is_empty() && !write_within(&mut backend, &early, idle).await {
        return;
    }
    tunnel::splice_streams(io, &mut backend, proxy.response_timeout).await;
}
