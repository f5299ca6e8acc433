//! WebSocket over HTTP/2 (RFC 8441), its framing: an extended CONNECT with `:protocol
//! websocket` becomes an HTTP/1.1 Upgrade to the backend ([`as_upgrade`]), sent through the
//! session like any request. When the backend answers 101 with the `Sec-WebSocket-Accept` our
//! key calls for ([`is_accepted`]), the client gets a 200 and its HTTP/2 stream is the client's
//! side of the session's tunnel ([`Tunnel`]), as an HTTP/1.1 connection is. Any other answer is
//! a 502: a 2xx to a CONNECT means the tunnel is open (RFC 9110 §9.3.6), so a backend's own 200
//! and its body cannot be passed on.

use ::h2::server::SendResponse;
use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response};

use super::stream_io::StreamIo;
use crate::proxy::tunnel;
pub(super) use crate::wire::websocket::{as_upgrade, is_accepted};

/// Whether `request` is an extended CONNECT for a WebSocket (RFC 8441 §4).
pub(super) fn is_websocket(request: &Parts) -> bool {
    request.method == Method::CONNECT
        && request
            .extensions
            .get::<::h2::ext::Protocol>()
            .is_some_and(|protocol| protocol.as_str().eq_ignore_ascii_case("websocket"))
}

/// A WebSocket the backend accepted: the client's `200` to send, then the tunnel.
pub(super) struct Tunnel {
    head: Response<()>,
    client: ::h2::RecvStream,
    tunnel: tunnel::Tunnel,
    /// What the backend sent after its 101, for the client before anything else.
    early: Vec<u8>,
}

impl Tunnel {
    pub(super) fn new(
        head: http::response::Parts,
        client: ::h2::RecvStream,
        tunnel: tunnel::Tunnel,
        early: &[u8],
    ) -> Self {
        Self {
            head: Response::from_parts(head, ()),
            client,
            tunnel,
            early: early.to_vec(),
        }
    }

    pub(super) async fn run(self, respond: &mut SendResponse<Bytes>) {
        let Self {
            mut head,
            client,
            tunnel,
            early,
        } = self;
        crate::wire::http_head::add_date(head.headers_mut());
        let Ok(send) = respond.send_response(head, false) else {
            return;
        };
        let mut client = StreamIo::new(client, send);
        tunnel.run(&mut client, &[], &early).await;
    }
}
