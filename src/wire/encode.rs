//! Writing heads (pure): the request a backend receives, the response a client receives, and the
//! responses the proxy makes itself (error pages, `__ping__`, 400/431 for unreadable requests).
//!
//! Fields pass through as the peer wrote them, byte for byte, except the hop-by-hop ones; the
//! framing and connection headers of each hop are written here, never copied.

use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;

use super::fields::{self, Kind};
use super::headers::{self, DebugInfo, DebugValue, Forwarded};
use super::request::{Framing, RequestHead};
use super::response::ResponseHead;
use crate::ascii;
use crate::error_page::{Generated, PageBody};

/// How the response body reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientFraming {
    /// The backend's `Content-Length` (or no body, or a close) delimits it.
    AsSent,
    /// The body passes as the backend coded it (chunks...), and so do its `Transfer-Encoding`
    /// fields, which are otherwise hop-by-hop.
    Coded,
}

/// What the `Connection` header of a response to the client says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Persistence {
    /// The connection stays open; HTTP/1.0 clients are told so.
    KeepAlive,
    Close,
    /// A 101 for this protocol: the connection becomes a tunnel.
    Upgrade,
}

/// The request as the backend receives it: origin-form, hop-by-hop fields removed, Hipache's
/// forwarding headers added where the client sent none.
pub(crate) fn request_for_backend(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &RequestHead,
    forwarded: &Forwarded,
    keep_alive: bool,
    forward_expect: bool,
) {
    let (path, authority) = head.origin_form(buf);
    out.extend_from_slice(head.method(buf));
    out.push(b' ');
    if path.first() == Some(&b'?') {
        out.push(b'/');
    }
    out.extend_from_slice(path);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let (false, Some(authority)) = (head.has_host_field(), authority) {
        field(out, b"Host", authority);
    }
    let mut length_sent = false;
    for f in &head.fields {
        // A `100-continue` the client no longer waits on (its body came whole with the
        // head) is dropped: the body goes with the head.
        let expect = f.kind == Kind::Expect && head.expects_continue && !forward_expect;
        // Equal `Content-Length` fields were accepted as one: the backend gets that one.
        let repeated_length =
            f.kind == Kind::ContentLength && std::mem::replace(&mut length_sent, true);
        if !expect
            && !repeated_length
            && fields::is_forwarded(f, &head.fields, buf, head.connection.lists_headers)
        {
            field(out, f.name(buf), f.value(buf));
        }
    }
    for (name, value) in forwarded.missing(head.forwarded) {
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if head.framing == Framing::Chunked {
        // The client's fields said exactly this (`request` accepts nothing else); written anew
        // so that its spelling and spacing never reach a backend that reads them differently.
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    match head.upgrade(buf) {
        Some(protocol) => {
            field(out, b"Upgrade", protocol);
            out.extend_from_slice(b"Connection: upgrade\r\n");
        }
        // Hipache's default: one backend connection per request, closed by the backend.
        None if !keep_alive => out.extend_from_slice(b"Connection: close\r\n"),
        None => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// An HTTP/2 client's request as an HTTP/1.1 backend receives it. `parts` is already prepared
/// (hop-by-hop fields removed; `Host` and the forwarding headers added, or appended next by
/// `append_request_fields`); `chunked`
/// says the body goes in chunks (its length unknown, or trailers to carry), in place of any
/// `content-length`.
pub(crate) fn request_from_parts(out: &mut Vec<u8>, parts: &http::request::Parts, chunked: bool) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        // A chunked body has no length: both would frame it two ways.
        let length = chunked && name == http::header::CONTENT_LENGTH;
        if name != http::header::COOKIE && !length {
            field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    // HTTP/2 clients send one field per cookie; HTTP/1.1 wants them in one (RFC 9113 §8.2.3).
    let mut cookies = parts.headers.get_all(http::header::COOKIE).iter();
    if let Some(first) = cookies.next() {
        out.extend_from_slice(b"cookie: ");
        out.extend_from_slice(first.as_bytes());
        for cookie in cookies {
            out.extend_from_slice(b"; ");
            out.extend_from_slice(cookie.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    if chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A held request body after its head: as is, or, when `end` (the last chunk, with the client's
/// trailers) is given, as one chunk followed by `end`.
pub(crate) fn held_body(out: &mut Vec<u8>, body: &[u8], end: Option<&[u8]>) {
    let Some(end) = end else {
        out.extend_from_slice(body);
        return;
    };
    if !body.is_empty() {
        chunk_head(out, body.len());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(end);
}

/// The head of one chunk of `len` bytes (RFC 9112 §7.1).
pub(crate) fn chunk_head(out: &mut Vec<u8>, len: usize) {
    let mut digits = [0u8; 16];
    let (mut i, mut n) = (digits.len(), len);
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// An interim answer (1xx but 101) as an HTTP/1.1 client receives it: the backend's status and
/// fields, hop-by-hop ones left out.
pub(crate) fn interim_response(out: &mut Vec<u8>, buf: &[u8], head: &ResponseHead) {
    let reason = match head.reason(buf) {
        [] => canonical_reason(head.status).as_bytes(),
        reason => reason,
    };
    status_line(out, 1, head.status, reason);
    for f in head.client_fields(buf) {
        field(out, f.name(buf), f.value(buf));
    }
    out.extend_from_slice(b"\r\n");
}

/// Adds a field to the head that ends at `head_end` in `out`, with its blank line (its body may
/// follow it in `out`).
pub(crate) fn insert_field(out: &mut Vec<u8>, head_end: usize, name: &[u8], value: &[u8]) {
    if out[..head_end].ends_with(b"\r\n\r\n") {
        let mut line = Vec::with_capacity(name.len() + value.len() + 4);
        field(&mut line, name, value);
        out.splice(head_end - 2..head_end - 2, line);
    }
}

/// Adds a field to the head just written into `out`, which ends with its blank line.
pub(crate) fn append_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    if out.ends_with(b"\r\n\r\n") {
        out.truncate(out.len() - 2);
        field(out, name, value);
        out.extend_from_slice(b"\r\n");
    }
}

/// What `headers::rewrite_request` would add to `headers` (hop-by-hop fields already removed),
/// appended instead to the head just encoded from them into `out`: `Host` from the request's
/// `authority` when it has none, the forwarding fields the client did not send, and
/// `Connection: close` when backend connections are not kept and the head does not already say
/// how its connection goes (an upgrade). An HTTP/2 request's fields are not grown for fields
/// that only go into bytes (each insertion hashes, and the map regrows).
pub(crate) fn append_request_fields(
    out: &mut Vec<u8>,
    headers: &http::HeaderMap,
    authority: Option<&str>,
    forwarded: &Forwarded,
    keep_alive: bool,
) {
    if let (false, Some(authority)) = (headers.contains_key(http::header::HOST), authority) {
        append_field(out, b"host", authority.as_bytes());
    }
    for (name, value) in forwarded.missing(headers::present_in(headers)) {
        append_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !keep_alive && !headers.contains_key(http::header::CONNECTION) {
        append_field(out, b"connection", b"close");
    }
}

/// The backend's response head as the client receives it, in the client's HTTP version.
pub(crate) fn response_for_client(
    out: &mut Vec<u8>,
    buf: &[u8],
    head: &ResponseHead,
    client_minor: u8,
    framing: ClientFraming,
    persistence: Persistence,
    debug: Option<&DebugInfo<'_>>,
) {
    let reason = match head.reason(buf) {
        [] => canonical_reason(head.status).as_bytes(),
        reason => reason,
    };
    status_line(out, client_minor, head.status, reason);
    for f in head.client_fields(buf) {
        field(out, f.name(buf), f.value(buf));
    }
    if framing == ClientFraming::Coded {
        transfer_encoding(out, &head.fields, buf);
    }
    match persistence {
        Persistence::Upgrade => {
            let protocol = head.upgrade(buf).unwrap_or(b"websocket");
            field(out, b"Upgrade", protocol);
            out.extend_from_slice(b"Connection: upgrade\r\n");
        }
        Persistence::Close => out.extend_from_slice(b"Connection: close\r\n"),
        Persistence::KeepAlive if client_minor == 0 => {
            out.extend_from_slice(b"Connection: keep-alive\r\n")
        }
        Persistence::KeepAlive => {}
    }
    if let Some(debug) = debug {
        debug_fields(out, debug);
    }
    out.extend_from_slice(b"\r\n");
}

/// A response the proxy makes itself: an error page (with Hipache's headers) or `__ping__`'s
/// `ok`, head and body.
pub(crate) fn generated_response(
    out: &mut Vec<u8>,
    client_minor: u8,
    answer: &Generated,
    close: bool,
) {
    let status = answer.status;
    let (content_type, body) = match &answer.page {
        PageBody::Html(page) => ("text/html", &page[..]),
        PageBody::Text(text) => ("text/plain", text.as_bytes()),
    };
    status_line(
        out,
        client_minor,
        status.as_u16(),
        status.canonical_reason().unwrap_or("").as_bytes(),
    );
    field(out, b"Content-Type", content_type.as_bytes());
    content_length(out, body.len());
    for (name, value) in crate::error_page::NO_CACHE {
        field(out, name.as_bytes(), value.as_bytes());
    }
    date(out);
    if let Some(location) = &answer.location {
        field(out, b"Location", location.as_bytes());
    }
    if let Some(reason) = answer.debug_error {
        field(
            out,
            headers::X_DEBUG_ERROR.as_str().as_bytes(),
            reason.as_bytes(),
        );
        field(
            out,
            headers::X_DEBUG_VERSION.as_str().as_bytes(),
            headers::VERSION.as_bytes(),
        );
    }
    persistence(out, client_minor, close);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// The answer to a request that could not be read (400), was too large (431) or is refused
/// (405 for CONNECT): no page, and the connection closes after it.
pub(crate) fn refusal(out: &mut Vec<u8>, status: StatusCode) {
    status_line(
        out,
        1,
        status.as_u16(),
        status.canonical_reason().unwrap_or("").as_bytes(),
    );
    out.extend_from_slice(b"Content-Length: 0\r\n");
    date(out);
    out.extend_from_slice(b"Connection: close\r\n\r\n");
}

/// A response's own `Transfer-Encoding` fields, as they came: the codings they name (gzip,
/// then chunked) stay on the body that passes through.
fn transfer_encoding(out: &mut Vec<u8>, fields: &[fields::Field], buf: &[u8]) {
    for f in fields.iter().filter(|f| f.kind == Kind::TransferEncoding) {
        field(out, f.name(buf), f.value(buf));
    }
}

fn status_line(out: &mut Vec<u8>, minor: u8, status: u16, reason: &[u8]) {
    out.extend_from_slice(if minor == 0 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    let mut code = [0u8; 3];
    let status = status.clamp(100, 999);
    code[0] = b'0' + (status / 100) as u8;
    code[1] = b'0' + (status / 10 % 10) as u8;
    code[2] = b'0' + (status % 10) as u8;
    out.extend_from_slice(&code);
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
}

fn persistence(out: &mut Vec<u8>, client_minor: u8, close: bool) {
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if client_minor == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn content_length(out: &mut Vec<u8>, length: usize) {
    out.extend_from_slice(b"Content-Length: ");
    ascii::decimal(out, length as u64);
    out.extend_from_slice(b"\r\n");
}

/// `X-Debug-*` response fields (`DebugInfo::fields` keeps CR, LF and other controls from Redis
/// out of the head).
fn debug_fields(out: &mut Vec<u8>, debug: &DebugInfo<'_>) {
    for (name, value) in debug.fields() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        match value {
            DebugValue::Text(text) => out.extend_from_slice(text.as_bytes()),
            DebugValue::Number(n) => ascii::decimal(out, n),
        }
        out.extend_from_slice(b"\r\n");
    }
}

fn canonical_reason(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

thread_local! {
    /// The `Date` field of the current second: formatted once per second per worker.
    static DATE: ascii::PerSecond<29> = const { ascii::PerSecond::new(ascii::http_date) };
}

/// `Date: Tue, 01 Dec 2026 08:04:31 GMT` (RFC 9110 §5.6.7).
fn date(out: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    out.extend_from_slice(b"Date: ");
    DATE.with(|date| date.write(out, now));
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests;
