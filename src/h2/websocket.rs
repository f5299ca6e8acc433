//! WebSocket over HTTP/2 (RFC 8441): an extended CONNECT with `:protocol websocket` becomes an
//! HTTP/1.1 Upgrade to the backend, through the same attempt loop as any request. When the
//! backend answers 101 with the `Sec-WebSocket-Accept` our key calls for, the client gets a 200
//! and its HTTP/2 stream is spliced with the backend connection, as an HTTP/1.1 tunnel is. Any
//! other answer is a 502: a 2xx to a CONNECT means the tunnel is open (RFC 9110 §9.3.6), so a
//! backend's own 200 and its body cannot be passed on.

use std::cell::RefCell;
use std::rc::Rc;

use ::h2::server::SendResponse;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use super::request::{self as h2_request, Payload};
use super::stream_io::StreamIo;
use super::{add_set_cookie, head_of, logged_request, prepare_for_backend, respond_with, routed};
use super::{Reply, Request};
use crate::proxy::backend::write_within;
use crate::proxy::conn::BackendConn;
use crate::proxy::error::ProxyError;
use crate::proxy::{tunnel, Answered, ClientConnection, Outcome, Proxy};
use crate::routes::RouteSource;
use crate::wire::headers;
use crate::wire::response::ResponseHead;

/// Whether `request` is an extended CONNECT for a WebSocket (RFC 8441 §4).
pub(super) fn is_websocket(request: &Request) -> bool {
    request.method() == Method::CONNECT
        && request
            .extensions()
            .get::<::h2::ext::Protocol>()
            .is_some_and(|protocol| protocol.as_str().eq_ignore_ascii_case("websocket"))
}

/// Serves one WebSocket over HTTP/2: routes it and opens it on a backend as an HTTP/1.1
/// Upgrade; once the backend accepted, the tunnel is the reply.
pub(super) async fn serve<S: RouteSource>(
    proxy: Rc<Proxy<S>>,
    conn: Rc<ClientConnection>,
    request: Request,
    respond: &RefCell<SendResponse<Bytes>>,
) -> Reply {
    let debug = request.headers().contains_key(headers::X_DEBUG);
    let route = match routed(&proxy, &request, debug).await {
        Ok(route) => route,
        Err(answer) => return Reply::Answer(answer),
    };
    let (mut parts, client) = request.into_parts();
    let logged = logged_request(&proxy, &parts, conn.peer);
    parts.method = Method::GET;
    prepare_for_backend(&mut parts, &conn.forwarded, proxy.pool.keep_alive());
    // The HTTP/1.1 handshake HTTP/2 leaves out (RFC 8441 §5): the backend answers our key, and
    // its answer to it is ours to check, not the client's.
    parts.headers.remove(header::CONNECTION);
    parts.headers.remove(header::SEC_WEBSOCKET_KEY);
    parts
        .headers
        .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    let key = handshake_key();
    if let Ok(value) = HeaderValue::from_str(&key) {
        parts.headers.insert(header::SEC_WEBSOCKET_KEY, value);
    }
    let mut exchange = h2_request::Request {
        parts: &parts,
        payload: Payload::empty(),
        timeout: proxy.response_timeout,
        upgrade: true,
        pump: None,
        respond,
        expects_continue: false,
    };
    match proxy.forward(&route, logged, &mut exchange).await {
        Outcome::Answered(Answered {
            answer,
            debug,
            line,
            set_cookie,
            ..
        }) if is_accepted(&answer.head, &answer.buf, &key) => {
            let mut head = head_of(&answer.head, &answer.buf);
            add_set_cookie(&mut head, set_cookie);
            head.status = StatusCode::OK;
            // A 2xx to a CONNECT has no content (RFC 9110 §9.3.6): the tunnel's bytes follow.
            for name in [
                header::SEC_WEBSOCKET_ACCEPT,
                header::UPGRADE,
                header::CONNECTION,
                header::CONTENT_LENGTH,
            ] {
                head.headers.remove(name);
            }
            if let Some(debug) = &debug {
                headers::add_debug(&mut head.headers, debug);
            }
            // A tunnel's line is written when the answer is sent, with 0 bytes and the status
            // the client got.
            if let Some(mut line) = line {
                line.set_status(StatusCode::OK.as_u16());
                line.write(0);
            }
            let early = answer.buf[answer.head.len..].to_vec();
            Reply::Tunnel(Tunnel {
                head: Response::from_parts(head, ()),
                client,
                backend: answer.stream.into_tunnel(),
                early,
                open: proxy.tunnels.enter(),
                idle: proxy.idle_timeout,
                timeout: proxy.response_timeout,
            })
        }
        // The backend's stream is dropped with its answer, so the connection closes: what it
        // sent after its head is no answer to anything we asked.
        Outcome::Answered(Answered { line, .. }) => {
            let error = ProxyError::UpgradeRefused;
            let line = line.map(|mut line| {
                line.set_status(error.status().as_u16());
                line
            });
            let refused = Outcome::Failed { error, line };
            Reply::Answer(respond_with(&proxy, refused, debug, false, None))
        }
        other => Reply::Answer(respond_with(&proxy, other, debug, false, None)),
    }
}

/// Whether the backend's answer opens the WebSocket asked for with `key`: a 101 to `websocket`
/// whose `Sec-WebSocket-Accept` is the one `key` calls for (RFC 6455 §4.2.2), which proves the
/// backend read our handshake rather than answering something else with a 101.
fn is_accepted(head: &ResponseHead, buf: &[u8], key: &str) -> bool {
    let upgrade = head.upgrade(buf);
    if head.status != 101 || !upgrade.is_some_and(|u| u.eq_ignore_ascii_case(b"websocket")) {
        return false;
    }
    let expected = accept_for(key);
    let mut accepts = head.fields.iter().filter(|field| {
        field
            .name(buf)
            .eq_ignore_ascii_case(header::SEC_WEBSOCKET_ACCEPT.as_str().as_bytes())
    });
    // One field, with exactly the value: two could be read two ways.
    match (accepts.next(), accepts.next()) {
        (Some(field), None) => field.value(buf) == expected.as_bytes(),
        _ => false,
    }
}

/// The `Sec-WebSocket-Accept` a server answers `key` with: base64 of the SHA-1 of the key and
/// the protocol's GUID (RFC 6455 §4.2.2).
fn accept_for(key: &str) -> String {
    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut context =
        crate::crypto::digest::Context::new(&crate::crypto::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(key.as_bytes());
    context.update(GUID.as_bytes());
    base64(context.finish().as_ref())
}

/// A WebSocket the backend accepted: the client's `200` to send, then the splice.
pub(super) struct Tunnel {
    head: Response<()>,
    client: ::h2::RecvStream,
    backend: BackendConn,
    /// What the backend sent after its 101, for the client before anything else.
    early: Vec<u8>,
    /// Counts the tunnel for a drain while it lives.
    open: crate::proxy::open::Open,
    idle: std::time::Duration,
    timeout: std::time::Duration,
}

impl Tunnel {
    pub(super) async fn run(self, respond: &mut SendResponse<Bytes>) {
        let Self {
            mut head,
            client,
            mut backend,
            early,
            open,
            idle,
            timeout,
        } = self;
        super::stream::add_date(head.headers_mut());
        let Ok(send) = respond.send_response(head, false) else {
            return;
        };
        let _open = open;
        let mut client = StreamIo::new(client, send);
        if !early.is_empty() && !write_within(&mut client, &early, idle).await {
            return;
        }
        tunnel::splice_streams(&mut client, &mut backend, timeout).await;
    }
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes in base64 (RFC 6455 §4.1).
fn handshake_key() -> String {
    let bytes: [u8; 16] = rand::random();
    base64(&bytes)
}

/// `bytes` in base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut key = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                key.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                key.push('=');
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_keys_are_sixteen_random_bytes_in_base64() {
        let key = handshake_key();
        assert_eq!(key.len(), 24, "{key}");
        assert!(key.ends_with("=="), "{key}");
        assert!(key[..22]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
        assert_ne!(key, handshake_key());
    }

    #[test]
    fn the_accept_value_is_the_one_of_rfc_6455() {
        // RFC 6455 §1.3's example.
        let accept = accept_for("dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
