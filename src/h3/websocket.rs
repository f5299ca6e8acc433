//! WebSocket over HTTP/3 (RFC 9220), its framing: an extended CONNECT with `:protocol
//! websocket` becomes an HTTP/1.1 Upgrade to the backend (`wire::websocket`), sent through the
//! session like any request. When the backend answers 101 with the `Sec-WebSocket-Accept` our
//! key calls for, the client gets a 200 and its request stream is the client's side of the
//! session's tunnel, as an HTTP/1.1 connection is; any other answer is a 502.
//!
//! The tunnel runs over a byte pipe: one end is the tunnel's client, the other is moved to and
//! from the stream's DATA frames here, each direction as the other side takes it.

use bytes::{Buf, Bytes};
use http::request::Parts;
use http::{Method, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::{RecvHalf, SendHalf};
use crate::proxy::tunnel::Tunnel;
pub(super) use crate::wire::websocket::{as_upgrade, is_accepted};

/// What the pipe between the stream and the tunnel holds in each direction.
const PIPE_BYTES: usize = 64 * 1024;

/// Whether `request` is an extended CONNECT for a WebSocket (RFC 9220 §3).
pub(super) fn is_websocket(request: &Parts) -> bool {
    request.method == Method::CONNECT
        && request
            .extensions
            .get::<::h3::ext::Protocol>()
            .is_some_and(|protocol| protocol.as_str().eq_ignore_ascii_case("websocket"))
}

/// Sends the client's `200` (`head`), then runs `tunnel` between the backend and the stream;
/// `early` is what the backend sent after its 101, for the client before anything else.
pub(super) async fn run(
    mut head: http::response::Parts,
    send: &mut SendHalf,
    recv: RecvHalf,
    tunnel: Tunnel,
    early: &[u8],
) {
    crate::wire::http_head::add_date(&mut head.headers);
    if send
        .send_response(Response::from_parts(head, ()))
        .await
        .is_err()
    {
        return;
    }
    let (mut ours, theirs) = tokio::io::duplex(PIPE_BYTES);
    let (from_pipe, to_pipe) = tokio::io::split(theirs);
    let early = early.to_vec();
    let splice = tunnel.run(&mut ours, &[], &early);
    let up = from_client(recv, to_pipe);
    let down = to_client(send, from_pipe);
    // The tunnel ends the exchange: its end closes the pipe, which ends both directions.
    tokio::join!(splice, up, down);
}

/// The client's DATA frames into the pipe, until the client ends its side.
async fn from_client(mut recv: RecvHalf, mut pipe: tokio::io::WriteHalf<DuplexStream>) {
    while let Ok(Some(mut data)) = recv.recv_data().await {
        let data = data.copy_to_bytes(data.remaining());
        if pipe.write_all(&data).await.is_err() {
            return;
        }
    }
    let _ = pipe.shutdown().await;
}

/// The pipe into DATA frames to the client, until the tunnel ends its side.
async fn to_client(send: &mut SendHalf, mut pipe: tokio::io::ReadHalf<DuplexStream>) {
    let mut buf = vec![0u8; PIPE_BYTES];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if send
                    .send_data(Bytes::copy_from_slice(&buf[..n]))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    let _ = send.finish().await;
}
