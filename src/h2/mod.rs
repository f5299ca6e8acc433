//! The HTTP/2 front end, on the `h2` crate: `connection` serves a connection (TLS with ALPN
//! `h2`, or h2c prior knowledge; the frames that come in checked by `frame_check` where the
//! crate would answer with another code than the RFC's) and runs each stream in a task of its
//! own (`stream`), which calls [`serve`]: the stream's request goes through the session
//! (`proxy::Proxy::serve`) with the framing of a [`StreamRequest`]. Its head is held to the
//! HTTP/1 head limits; it is sent to a backend as HTTP/1.1 over the worker's backend pool
//! (`request`, trailers at the end of its chunks), the backend's interim answers are relayed as
//! they come, and the answer is streamed back (`body`, trailers as a last HEADERS frame), its
//! access log line written when it ends. A WebSocket opened with an extended CONNECT (RFC 8441)
//! goes to the backend as an HTTP/1.1 Upgrade, and its stream becomes the client's side of the
//! session's tunnel (`websocket`).

pub(crate) mod body;
pub(crate) mod connection;
mod frame_check;
mod pump;
pub(crate) mod request;
mod stream;
mod stream_io;
mod websocket;

use std::cell::RefCell;
use std::rc::Rc;

use ::h2::server::SendResponse;
use ::h2::RecvStream;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::access_log::PendingLine;
use crate::error_page::{self, Generated, PageBody};
use crate::proxy::backend::Answer;
use crate::proxy::session::{Downstream, Head, Upgrade};
use crate::proxy::tunnel::Tunnel;
use crate::proxy::{Answered, ClientConnection, ClientFailure, Proxy};
use crate::routes::RouteSource;
use crate::wire::headers::{self, DebugInfo};
use crate::wire::hpack::FieldBlock;
use crate::wire::http_head;
use crate::wire::response::ResponseHead;
use body::ResponseBody;
use request::Payload;

/// A request as the client sent it.
type Request = http::Request<RecvStream>;

/// What a stream's task sends once [`serve`] is done: an answer, or the head that opens a
/// WebSocket tunnel and the tunnel.
enum Reply {
    Answer(Response<ResponseBody>),
    /// A backend's answer, its fields encoded for `h2` as they were read (`wire::hpack`).
    Relayed(Relayed),
    Tunnel(websocket::Tunnel),
}

/// A backend's answer as the stream sends it.
struct Relayed {
    status: StatusCode,
    fields: FieldBlock,
    body: ResponseBody,
}

/// Serves one HTTP/2 request through the session; interim answers are sent on `respond` as
/// they come, the rest is left to the caller.
async fn serve<S: RouteSource>(
    proxy: Rc<Proxy<S>>,
    conn: Rc<ClientConnection>,
    request: Request,
    respond: &RefCell<SendResponse<Bytes>>,
) -> Reply {
    let (parts, body) = request.into_parts();
    let mut stream = StreamRequest {
        proxy: &proxy,
        conn: &conn,
        parts,
        body: Some(body),
        respond,
        websocket_key: None,
    };
    proxy.serve(&conn, &mut stream).await
}

/// An HTTP/2 request, as the session drives it.
struct StreamRequest<'r, S> {
    proxy: &'r Proxy<S>,
    conn: &'r ClientConnection,
    parts: http::request::Parts,
    /// The client's body; an extended CONNECT's stream, kept for its tunnel.
    body: Option<RecvStream>,
    respond: &'r RefCell<SendResponse<Bytes>>,
    /// An extended CONNECT sent on as an HTTP/1.1 Upgrade: the `Sec-WebSocket-Key` we sent.
    websocket_key: Option<String>,
}

impl<S> Downstream for StreamRequest<'_, S> {
    type Exchange<'a>
        = request::Request<'a>
    where
        Self: 'a;
    type Upload = Option<pump::UploadPump>;
    type Done = Reply;

    fn head(&self) -> Head<'_> {
        let parts = &self.parts;
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let method = parts.method.as_str();
        let refusal = if headers::is_over_head_limits(method, target, &parts.headers) {
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        } else if is_ambiguous(parts) {
            Some(StatusCode::BAD_REQUEST)
        } else {
            None
        };
        Head {
            method: method.as_bytes(),
            host: http_head::host_of(parts),
            path: target.as_bytes(),
            // An HTTP/2 request's URI carries scheme and authority, which an HTTP/1.1 client
            // would not have sent: its path is logged, as Hipache's `req.url` would be.
            logged_target: target.as_bytes(),
            version: "2.0",
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

    async fn refuse(&mut self, status: StatusCode) -> Reply {
        Reply::Answer(refused(status))
    }

    async fn answer(&mut self, answer: Generated, line: Option<PendingLine>) -> Reply {
        let mut response = generated(answer);
        if let Some(line) = line {
            response.body_mut().log_on_drop(Box::new(line));
        }
        Reply::Answer(response)
    }

    /// The client stopped sending its body: its stream may still take an answer.
    async fn client_gone(&mut self, page: impl FnOnce() -> Generated) -> Reply {
        Reply::Answer(generated(page()))
    }

    async fn exchange(&mut self) -> Result<request::Request<'_>, ClientFailure> {
        let proxy = self.proxy;
        let keep_alive = proxy.pool.keep_alive();
        let parts = &mut self.parts;
        if websocket::is_websocket(parts) {
            parts.method = http::Method::GET;
            headers::strip_hop_by_hop(&mut parts.headers);
            self.websocket_key = Some(websocket::as_upgrade(&mut parts.headers));
            return Ok(request::Request {
                parts: &self.parts,
                forwarded: &self.conn.forwarded,
                keep_alive,
                payload: Payload::empty(),
                timeout: proxy.response_timeout,
                upgrade: true,
                pump: None,
                respond: self.respond,
                expects_continue: false,
            });
        }
        let Some(body) = self.body.take() else {
            // cannot happen: the body is taken here only, once per request
            return Err(ClientFailure::Gone);
        };
        // Read before `te` goes as a hop-by-hop field.
        let trailers_expected = parts
            .headers
            .get_all(header::TE)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
        headers::strip_hop_by_hop(&mut parts.headers);
        let mut expects_continue = parts
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if expects_continue && body.is_end_stream() {
            // No body is held back: nothing for a backend to say `100 Continue` to.
            parts.headers.remove(header::EXPECT);
            expects_continue = false;
        }
        let length = parts.headers.get(header::CONTENT_LENGTH);
        let length = length.and_then(|v| v.to_str().ok()?.parse().ok());
        let idle = proxy.idle_timeout;
        let payload =
            Payload::from_client(body, length, trailers_expected, expects_continue, idle).await?;
        Ok(request::Request {
            parts: &self.parts,
            forwarded: &self.conn.forwarded,
            keep_alive,
            payload,
            timeout: proxy.response_timeout,
            upgrade: false,
            pump: None,
            respond: self.respond,
            expects_continue,
        })
    }

    fn upload(mut exchange: request::Request<'_>) -> Option<pump::UploadPump> {
        exchange.take_pump()
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

    /// The backend's answer streamed on: its stream goes back to the pool afterwards when
    /// `keepAlive` allows; `pump` moves the rest of a streamed upload.
    async fn relay(
        &mut self,
        answered: Answered<'_>,
        pump: Option<pump::UploadPump>,
    ) -> Result<Reply, Option<PendingLine>> {
        let Answered {
            answer,
            host,
            backend,
            debug,
            line,
            set_cookie,
        } = answered;
        let origin = (host.to_owned(), backend.url.to_string());
        let (keep_alive, idle) = (self.proxy.pool.keep_alive(), self.proxy.idle_timeout);
        let body = |answer| {
            let mut body = ResponseBody::backend(answer, keep_alive, idle, pump, origin);
            if let Some(line) = line {
                body.log_on_drop(Box::new(line));
            }
            body
        };
        // `X-Debug-*` fields replace any the backend sent, which takes a `HeaderMap`; answers
        // without them (all but a debugging client's) are encoded as they were read.
        Ok(match &debug {
            None => {
                let (status, fields) = encoded_head(&answer.head, &answer.buf, set_cookie);
                let body = body(answer);
                Reply::Relayed(Relayed {
                    status,
                    fields,
                    body,
                })
            }
            Some(debug) => {
                let mut head = http_head::head_of(&answer.head, &answer.buf);
                http_head::add_set_cookie(&mut head, set_cookie);
                headers::add_debug(&mut head.headers, debug);
                Reply::Answer(Response::from_parts(head, body(answer)))
            }
        })
    }

    async fn tunnel(
        &mut self,
        response: &ResponseHead,
        buf: Vec<u8>,
        debug: Option<DebugInfo<'_>>,
        set_cookie: Option<String>,
        tunnel: Tunnel,
    ) -> Reply {
        let Some(client) = self.body.take() else {
            // cannot happen: an extended CONNECT's exchange leaves its stream here
            return Reply::Answer(fallback_response(StatusCode::BAD_GATEWAY));
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
        Reply::Tunnel(websocket::Tunnel::new(
            head,
            client,
            tunnel,
            &buf[response.len..],
        ))
    }
}

/// A backend's status and the fields that reach the client (`ResponseHead::client_fields`, as
/// `http_head::head_of` takes them), with the `Set-Cookie` the attempt loop asked for, encoded
/// for `h2` (`buf` holds the head's bytes).
fn encoded_head(
    head: &ResponseHead,
    buf: &[u8],
    set_cookie: Option<String>,
) -> (StatusCode, FieldBlock) {
    let mut fields = FieldBlock::with_capacity(head.len + 32);
    for field in head.client_fields(buf) {
        fields.push(field.name(buf), field.value(buf));
    }
    if let Some(cookie) = set_cookie {
        fields.push_checked(b"set-cookie", cookie.as_bytes());
    }
    (http_head::status_of(head), fields)
}

/// A bare `status` with no body: the request is refused before any routing.
fn refused(status: StatusCode) -> Response<ResponseBody> {
    let mut refused = Response::new(ResponseBody::full(Bytes::new()));
    *refused.status_mut() = status;
    refused
}

/// A response of our own (an error page, `__ping__`'s `ok`) as an HTTP/2 response.
fn generated(answer: Generated) -> Response<ResponseBody> {
    let mut builder = error_page::response_head(answer.status, &answer.page);
    if let Some(location) = answer.location.as_deref() {
        builder = builder.header(header::LOCATION, location);
    }
    if let Some(reason) = answer.debug_error {
        builder = builder
            .header(headers::X_DEBUG_ERROR, HeaderValue::from_static(reason))
            .header(headers::X_DEBUG_VERSION, headers::VERSION);
    }
    let body = match answer.page {
        PageBody::Html(page) => ResponseBody::full(page),
        PageBody::Text(text) => ResponseBody::full(Bytes::from_static(text.as_bytes())),
    };
    builder
        .body(body)
        .unwrap_or_else(|_| fallback_response(answer.status))
}

/// A request that routing and the backend could read two ways, malformed under RFC 9113 §8.3.1:
/// two `host` fields (routing takes the first, a backend may take the last and serve another
/// tenant), a `host` that names another authority than `:authority` (compared ASCII
/// case-insensitively, ports as written), or `:path *` on anything but OPTIONS.
fn is_ambiguous(parts: &http::request::Parts) -> bool {
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return true;
    }
    let authority = parts.uri.authority();
    if let (Some(host), Some(authority)) = (host, authority) {
        if !host
            .as_bytes()
            .eq_ignore_ascii_case(authority.as_str().as_bytes())
        {
            return true;
        }
    }
    parts.uri.path() == "*" && parts.method != http::Method::OPTIONS
}

/// Only reached if a static header failed to build, which the unit tests rule out.
#[cold]
fn fallback_response(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(Bytes::new()));
    *response.status_mut() = status;
    response
}
