//! The HTTP/2 front end, on the `h2` crate: `connection` serves a connection (TLS with ALPN
//! `h2`, or h2c prior knowledge; the frames that come in checked by `frame_check` where the
//! crate would answer with another code than the RFC's) and runs each stream in a task of its
//! own (`stream`), which calls [`serve`]. A request held to the HTTP/1 head limits is routed and
//! sent through the proxy's one attempt loop as HTTP/1.1 over the worker's backend pool
//! (`request`, trailers at the end of its chunks), the backend's interim answers are relayed as
//! they come, and the answer is streamed back (`body`, trailers as a last HEADERS frame), its
//! access log line written when it ends. A WebSocket opened with an extended CONNECT (RFC 8441)
//! is tunnelled to the backend as an HTTP/1.1 Upgrade (`websocket`).

pub(crate) mod body;
pub(crate) mod connection;
mod frame_check;
mod pump;
pub(crate) mod request;
mod stream;
mod stream_io;
mod websocket;

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;

use ::h2::server::SendResponse;
use ::h2::RecvStream;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode, Uri};

use crate::access_log::LoggedRequest;
use crate::error_page::{self, Generated, PageBody};
use crate::proxy::error::ProxyError;
use crate::proxy::{Answered, ClientConnection, ClientFailure, Outcome, Proxy, Route, Routed};
use crate::routes::RouteSource;
use crate::wire::headers::{self, Forwarded};
use crate::wire::response::ResponseHead;
use body::ResponseBody;
use request::Payload;

/// A request as the client sent it.
type Request = http::Request<RecvStream>;

/// What a stream's task sends once [`serve`] is done: an answer, or the head that opens a
/// WebSocket tunnel and the tunnel.
enum Reply {
    Answer(Response<ResponseBody>),
    Tunnel(websocket::Tunnel),
}

/// Serves one HTTP/2 request; interim answers are sent on `respond` as they come, the rest is
/// left to the caller.
async fn serve<S: RouteSource>(
    proxy: Rc<Proxy<S>>,
    conn: Rc<ClientConnection>,
    request: Request,
    respond: &RefCell<SendResponse<Bytes>>,
) -> Reply {
    let debug = request.headers().contains_key(headers::X_DEBUG);
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    if headers::is_over_head_limits(request.method().as_str(), target, request.headers()) {
        return Reply::Answer(refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
    }
    if is_ambiguous(&request) {
        return Reply::Answer(refused(StatusCode::BAD_REQUEST));
    }
    // Before the WebSocket branch: an extended CONNECT over h2c gets the redirect too.
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    if let Some(answer) = proxy.secure_redirect(&conn, host_of(&request), target.as_bytes(), debug)
    {
        return Reply::Answer(generated(answer));
    }
    if websocket::is_websocket(&request) {
        return websocket::serve(proxy, conn, request, respond).await;
    }
    if request.method() == http::Method::CONNECT {
        // A reverse proxy tunnels to no address a client names.
        return Reply::Answer(refused(StatusCode::METHOD_NOT_ALLOWED));
    }
    let route = match routed(&proxy, &request, debug).await {
        Ok(route) => route,
        Err(answer) => return Reply::Answer(answer),
    };
    let (mut parts, body) = request.into_parts();
    let logged = logged_request(&proxy, &parts, conn.peer);
    // Read before `te` goes as a hop-by-hop field.
    let trailers_expected = parts
        .headers
        .get_all(header::TE)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    prepare_for_backend(&mut parts, &conn.forwarded, proxy.pool.keep_alive());
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
    let payload = Payload::from_client(body, length, trailers_expected, expects_continue, idle);
    let payload = match payload.await {
        Ok(payload) => payload,
        Err(failure) => return Reply::Answer(given_up(&proxy, failure, debug)),
    };
    let mut exchange = request::Request {
        parts: &parts,
        payload,
        timeout: proxy.response_timeout,
        upgrade: false,
        pump: None,
        respond,
        expects_continue,
    };
    let outcome = proxy.forward(&route, logged, &mut exchange).await;
    let pump = exchange.take_pump();
    Reply::Answer(respond_with(
        &proxy,
        outcome,
        debug,
        proxy.pool.keep_alive(),
        pump,
    ))
}

/// The request's route, with the backend its sticky cookie names; or the answer of our own
/// (`__ping__`, or the error) when it has none.
async fn routed<S: RouteSource>(
    proxy: &Proxy<S>,
    request: &Request,
    debug: bool,
) -> Result<Route, Response<ResponseBody>> {
    let mut route = match proxy.route(host_of(request), debug).await {
        Routed::Ping => return Err(generated(Generated::ping())),
        Routed::Failed(error) => return Err(generated(proxy.error_answer(error, debug))),
        Routed::Found(route) => route,
    };
    let cookies = request.headers().get_all(header::COOKIE).iter();
    route.sticky = proxy.sticky_token(cookies.map(HeaderValue::as_bytes));
    Ok(route)
}

/// A bare `status` with no body: the request is refused before any routing.
fn refused(status: StatusCode) -> Response<ResponseBody> {
    let mut refused = Response::new(ResponseBody::full(Bytes::new()));
    *refused.status_mut() = status;
    refused
}

/// The client's response to how the attempts ended: the backend's answer streamed on (its
/// stream back to the pool afterwards when `keep_alive`; `pump` moves the rest of a streamed
/// upload), or the page of the error.
fn respond_with<S: RouteSource>(
    proxy: &Proxy<S>,
    outcome: Outcome<'_>,
    debug: bool,
    keep_alive: bool,
    pump: Option<pump::UploadPump>,
) -> Response<ResponseBody> {
    match outcome {
        Outcome::Answered(Answered {
            answer,
            host,
            backend,
            debug,
            line,
            set_cookie,
        }) => {
            let mut head = head_of(&answer.head, &answer.buf);
            add_set_cookie(&mut head, set_cookie);
            if let Some(debug) = &debug {
                headers::add_debug(&mut head.headers, debug);
            }
            let origin = (host.to_owned(), backend.url.to_string());
            let idle = proxy.idle_timeout;
            let mut body = ResponseBody::backend(answer, keep_alive, idle, pump, origin);
            if let Some(line) = line {
                body.log_on_drop(Box::new(line));
            }
            Response::from_parts(head, body)
        }
        Outcome::Failed { error, line } => {
            let mut response = generated(proxy.error_answer(error, debug));
            if let Some(line) = line {
                response.body_mut().log_on_drop(Box::new(line));
            }
            response
        }
        Outcome::Client(failure) => given_up(proxy, failure, debug),
    }
}

/// The answer to a request whose client broke it: a 400 for a malformed body (its trailers),
/// before anything was sent; otherwise the client stopped sending its body and nobody is left
/// to read an answer.
fn given_up<S: RouteSource>(
    proxy: &Proxy<S>,
    failure: ClientFailure,
    debug: bool,
) -> Response<ResponseBody> {
    match failure {
        ClientFailure::InvalidBody => refused(StatusCode::BAD_REQUEST),
        ClientFailure::Gone => {
            let error = ProxyError::BackendIo { replayable: false };
            generated(proxy.error_answer(error, debug))
        }
    }
}

/// The request line and client facts of an access log line, taken before the request moves
/// on. An HTTP/2 request's URI carries scheme and authority, which an HTTP/1.1 client would not
/// have sent: its path is logged, as Hipache's `req.url` would be.
fn logged_request<S>(
    proxy: &Proxy<S>,
    parts: &http::request::Parts,
    client: IpAddr,
) -> Option<LoggedRequest> {
    let log = proxy.access_log.as_ref()?;
    let text = |name| {
        parts
            .headers
            .get(name)
            .map_or(&b""[..], HeaderValue::as_bytes)
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    Some(LoggedRequest::new(
        log.clone(),
        client,
        parts.method.as_str().as_bytes(),
        path.as_bytes(),
        "2.0",
        text(header::REFERER),
        text(header::USER_AGENT),
    ))
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
fn is_ambiguous(request: &Request) -> bool {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return true;
    }
    let authority = request.uri().authority();
    if let (Some(host), Some(authority)) = (host, authority) {
        if !host
            .as_bytes()
            .eq_ignore_ascii_case(authority.as_str().as_bytes())
        {
            return true;
        }
    }
    request.uri().path() == "*" && request.method() != http::Method::OPTIONS
}

/// Sticky sessions: the cookie the attempt loop asked for goes on the answer's head.
fn add_set_cookie(head: &mut http::response::Parts, set_cookie: Option<String>) {
    if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::try_from(c).ok()) {
        head.headers.append(header::SET_COOKIE, cookie);
    }
}

/// `Host`, or the authority of an HTTP/2 (or absolute-form) request.
fn host_of(request: &Request) -> Option<&str> {
    match request.headers().get(header::HOST) {
        Some(value) => value.to_str().ok(),
        None => request.uri().authority().map(|a| a.as_str()),
    }
}

/// Origin-form URI, a `Host` header, and the forwarding headers.
fn prepare_for_backend(parts: &mut http::request::Parts, forwarded: &Forwarded, keep_alive: bool) {
    if let Some(authority) = parts.uri.authority() {
        if !parts.headers.contains_key(header::HOST) {
            if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(header::HOST, host);
            }
        }
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        if let Ok(origin_form) = Uri::try_from(path) {
            parts.uri = origin_form;
        }
    }
    headers::rewrite_request(&mut parts.headers, forwarded, keep_alive);
}

/// A backend's status and fields (hop-by-hop ones left out) as the client's response head; `buf`
/// holds the head's bytes.
fn head_of(head: &ResponseHead, buf: &[u8]) -> http::response::Parts {
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    headers.reserve(head.fields.len());
    for field in head.client_fields(buf) {
        let name = http::HeaderName::from_bytes(field.name(buf));
        let value = HeaderValue::from_bytes(field.value(buf));
        if let (Ok(name), Ok(value)) = (name, value) {
            headers.append(name, value);
        }
    }
    response.into_parts().0
}

/// Only reached if a static header failed to build, which the unit tests rule out.
#[cold]
fn fallback_response(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(Bytes::new()));
    *response.status_mut() = status;
    response
}
