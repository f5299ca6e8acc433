//! The HTTP/3 front end, on `quinn` (QUIC) and the `h3` crate: `connection` serves an https
//! listener's UDP socket (the endpoint's connections, each request stream in a task of its
//! own, the GOAWAY of a drain), and each request goes through the session
//! (`proxy::Proxy::serve`) with the framing of a [`StreamRequest`]. Its head is checked by
//! `check` (the rules RFC 9114 §4.1.2 and §4.3 set beside what `h3` checks) and held to the
//! HTTP/1 head limits; it is sent to a backend as HTTP/1.1 over the worker's backend pool
//! (`request`, a body streamed by `upload`), interim answers are relayed as they come, and the
//! answer is streamed back while the rest of an upload still moves (`answer`). A WebSocket
//! opened with an extended CONNECT (RFC 9220) goes to the backend as an HTTP/1.1 Upgrade, and
//! its stream becomes the client's side of the session's tunnel (`websocket`).

mod answer;
mod check;
pub(crate) mod connection;
mod request;
mod upload;
mod websocket;

use bytes::Bytes;
use http::header::{self};
use http::StatusCode;

use crate::access_log::PendingLine;
use crate::error_page::Generated;
use crate::proxy::backend::Answer;
use crate::proxy::session::{Downstream, Head, Upgrade};
use crate::proxy::tunnel::Tunnel;
use crate::proxy::{Answered, ClientConnection, ClientFailure, Proxy};
use crate::wire::headers::{self, DebugInfo};
use crate::wire::http_head;
use crate::wire::response::ResponseHead;
use request::Payload;
use upload::Upload;

/// The sending side of a request stream.
type SendHalf = ::h3::server::RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;
/// The receiving side of a request stream: the request's body and trailers.
type RecvHalf = ::h3::server::RequestStream<h3_quinn::RecvStream, Bytes>;

/// An HTTP/3 request, as the session drives it.
struct StreamRequest<'r, S> {
    proxy: &'r Proxy<S>,
    conn: &'r ClientConnection,
    parts: http::request::Parts,
    /// The client's body; an extended CONNECT's stream, kept for its tunnel.
    recv: Option<RecvHalf>,
    send: SendHalf,
    /// An extended CONNECT sent on as an HTTP/1.1 Upgrade: the `Sec-WebSocket-Key` we sent.
    websocket_key: Option<String>,
}

impl<S> Downstream for StreamRequest<'_, S> {
    type Exchange<'a>
        = request::Request<'a>
    where
        Self: 'a;
    type Upload = Option<Upload>;
    type Done = ();

    fn head(&self) -> Head<'_> {
        let parts = &self.parts;
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let method = parts.method.as_str();
        let refusal = if headers::is_over_head_limits(method, target, &parts.headers) {
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        } else if check::is_malformed(parts) {
            Some(StatusCode::BAD_REQUEST)
        } else {
            None
        };
        Head {
            method: method.as_bytes(),
            host: http_head::host_of(parts),
            path: target.as_bytes(),
            logged_target: target.as_bytes(),
            version: "3.0",
            debug: parts.headers.contains_key(headers::X_DEBUG),
            websocket_connect: websocket::is_websocket(parts),
            refusal,
        }
    }

    fn cookies(&self) -> impl Iterator<Item = &[u8]> {
        http_head::cookies(&self.parts)
    }

    fn referer_and_agent(&self) -> (&[u8], &[u8]) {
        http_head::referer_and_agent(&self.parts)
    }

    async fn refuse(&mut self, status: StatusCode) {
        answer::refuse(&mut self.send, status).await;
    }

    async fn answer(&mut self, answer: Generated, line: Option<PendingLine>) {
        let sent = answer::generated(&mut self.send, answer).await;
        if let Some(line) = line {
            line.write(sent);
        }
    }

    /// The client stopped sending its body: its stream may still take an answer.
    async fn client_gone(&mut self, page: impl FnOnce() -> Generated) {
        answer::generated(&mut self.send, page()).await;
    }

    async fn exchange(&mut self) -> Result<request::Request<'_>, ClientFailure> {
        let proxy = self.proxy;
        let keep_alive = proxy.pool.keep_alive();
        let parts = &mut self.parts;
        if websocket::is_websocket(parts) {
            parts.method = http::Method::GET;
            check::prepare_for_backend(parts, &self.conn.forwarded, keep_alive);
            self.websocket_key = Some(websocket::as_upgrade(&mut parts.headers));
            return Ok(request::Request {
                parts: &self.parts,
                payload: Payload::empty(),
                timeout: proxy.response_timeout,
                upgrade: true,
                upload: None,
                send: &mut self.send,
                expects_continue: false,
            });
        }
        let Some(body) = self.recv.take() else {
            // cannot happen: the body is taken here only, once per request
            return Err(ClientFailure::Gone);
        };
        // Read before `te` goes as a hop-by-hop field.
        let trailers_expected = parts
            .headers
            .get_all(header::TE)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
        check::prepare_for_backend(parts, &self.conn.forwarded, keep_alive);
        let expects_continue = parts
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let length = parts.headers.get(header::CONTENT_LENGTH);
        let length = length.and_then(|v| v.to_str().ok()?.parse().ok());
        let idle = proxy.idle_timeout;
        let payload =
            Payload::from_client(body, length, trailers_expected, expects_continue, idle).await?;
        let expects_continue = match &payload {
            Payload::Once { .. } => expects_continue,
            // No body is held back: nothing for a backend to say `100 Continue` to.
            Payload::Replayable { .. } => {
                parts.headers.remove(header::EXPECT);
                false
            }
        };
        Ok(request::Request {
            parts: &self.parts,
            payload,
            timeout: proxy.response_timeout,
            upgrade: false,
            upload: None,
            send: &mut self.send,
            expects_continue,
        })
    }

    fn upload(mut exchange: request::Request<'_>) -> Option<Upload> {
        exchange.upload.take()
    }

    fn upgrade(&self, answer: &Answer) -> Upgrade {
        match &self.websocket_key {
            None => Upgrade::No,
            Some(key) if websocket::is_accepted(&answer.head, &answer.buf, key) => {
                // A 2xx to a CONNECT is what opens its tunnel (RFC 9110 §9.3.6).
                Upgrade::Opened { status: 200 }
            }
            Some(_) => Upgrade::Refused,
        }
    }

    async fn relay(
        &mut self,
        answered: Answered<'_>,
        upload: Option<Upload>,
    ) -> Result<(), Option<PendingLine>> {
        let (keep_alive, idle) = (self.proxy.pool.keep_alive(), self.proxy.idle_timeout);
        answer::relay(&mut self.send, answered, upload, keep_alive, idle).await;
        Ok(())
    }

    async fn tunnel(
        &mut self,
        response: &ResponseHead,
        buf: Vec<u8>,
        debug: Option<DebugInfo<'_>>,
        set_cookie: Option<String>,
        tunnel: Tunnel,
    ) {
        let Some(client) = self.recv.take() else {
            // cannot happen: an extended CONNECT's exchange leaves its stream here
            return answer::refuse(&mut self.send, StatusCode::BAD_GATEWAY).await;
        };
        let mut head = http_head::head_of(response, &buf);
        http_head::add_set_cookie(&mut head, set_cookie);
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
        let early = &buf[response.len..];
        websocket::run(head, &mut self.send, client, tunnel, early).await;
    }
}
