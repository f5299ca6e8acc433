//! Header names and rewriting between client and backend (pure): hop-by-hop removal (RFC 9110
//! §7.6.1) over a `HeaderMap`, Hipache's `X-Forwarded-*` / `X-Real-IP` added only when absent,
//! the `X-Debug-*` response fields, and the HTTP/1 head limits applied to an HTTP/2 head.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::fields::{self, ConnectionToken, Kind};
use super::request::{ForwardedPresent, MAX_HEADERS, MAX_HEAD_BYTES};

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_PROTOCOL: HeaderName = HeaderName::from_static("x-forwarded-protocol");
pub(crate) const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub(crate) const X_DEBUG: HeaderName = HeaderName::from_static("x-debug");
pub(crate) const X_DEBUG_ERROR: HeaderName = HeaderName::from_static("x-debug-error");
pub(crate) const X_DEBUG_VERSION: HeaderName = HeaderName::from_static("x-debug-version-hipache");
pub(crate) const X_DEBUG_BACKEND_URL: HeaderName = HeaderName::from_static("x-debug-backend-url");
pub(crate) const X_DEBUG_BACKEND_ID: HeaderName = HeaderName::from_static("x-debug-backend-id");
pub(crate) const X_DEBUG_VHOST: HeaderName = HeaderName::from_static("x-debug-vhost");
pub(crate) const X_DEBUG_FRONTEND_KEY: HeaderName = HeaderName::from_static("x-debug-frontend-key");
pub(crate) const X_DEBUG_TIME_TOTAL: HeaderName = HeaderName::from_static("x-debug-time-total");
pub(crate) const X_DEBUG_TIME_BACKEND: HeaderName = HeaderName::from_static("x-debug-time-backend");

/// The `X-Debug-Version-Hipache` value.
pub(crate) const VERSION: HeaderValue = HeaderValue::from_static(env!("CARGO_PKG_VERSION"));

/// Values that depend only on the client connection, built once per connection.
#[derive(Debug, Clone)]
pub struct Forwarded {
    /// The client address as Hipache writes it: IPv4 as `::ffff:1.2.3.4`.
    pub(crate) client: HeaderValue,
    pub(crate) proto: HeaderValue,
    pub(crate) port: HeaderValue,
}

impl Forwarded {
    /// The values for a client at `client`, connected over TLS or not, to our `local_port`.
    pub fn new(client: IpAddr, tls: bool, local_port: u16) -> Self {
        let mut text = Vec::with_capacity(45);
        crate::ascii::client_address(&mut text, client);
        Self {
            // cannot fail: an IP address is visible ASCII
            client: HeaderValue::try_from(text).unwrap_or(HeaderValue::from_static("unknown")),
            proto: HeaderValue::from_static(if tls { "https" } else { "http" }),
            port: HeaderValue::from(local_port),
        }
    }
}

impl Forwarded {
    /// Hipache's forwarding fields for a request whose client sent those in `present`: each
    /// one it did not send, with its value, in the order they are written. The one place
    /// `X-Forwarded-*` and `X-Real-IP` are decided, for every front end: a value the client
    /// sent goes on untouched.
    pub(crate) fn missing(
        &self,
        present: ForwardedPresent,
    ) -> impl Iterator<Item = (HeaderName, &HeaderValue)> {
        [
            (present.for_, X_FORWARDED_FOR, &self.client),
            (present.real_ip, X_REAL_IP, &self.client),
            (present.protocol, X_FORWARDED_PROTOCOL, &self.proto),
            (present.proto, X_FORWARDED_PROTO, &self.proto),
            (present.port, X_FORWARDED_PORT, &self.port),
        ]
        .into_iter()
        .filter(|(present, ..)| !present)
        .map(|(_, name, value)| (name, value))
    }
}

/// Removes the headers that describe one connection rather than the message: the same rule as
/// the HTTP/1 engine's (`wire::fields`), over a `HeaderMap`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let is_hop_by_hop = |name: &HeaderName| Kind::of(name.as_str().as_bytes()).is_hop_by_hop();
    // Most messages carry none, or only `Connection`: one pass over the names is cheaper than
    // a removal per hop-by-hop name that finds nothing.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // Names listed in Connection are hop-by-hop too.
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| fields::connection_tokens(value.as_bytes()))
        .filter_map(|token| match token {
            ConnectionToken::Header(name) => HeaderName::from_bytes(name).ok(),
            _ => None,
        })
        .collect();
    // Rebuilt rather than removed from: removals reorder a `HeaderMap`, and the fields that
    // stay go on in the client's order.
    let mut kept = HeaderMap::with_capacity(headers.len());
    let mut name = None;
    for (next, value) in std::mem::take(headers) {
        // `None` continues the previous field's name.
        if next.is_some() {
            name = next;
        }
        if let Some(name) = name
            .as_ref()
            .filter(|n| !is_hop_by_hop(n) && !listed.contains(n))
        {
            kept.append(name.clone(), value);
        }
    }
    *headers = kept;
}

/// Whether an HTTP/2 request's head is over the limits an HTTP/1 head has (`MAX_HEADERS` fields,
/// `MAX_HEAD_BYTES`), measured as the HTTP/1.1 head it would be: the same request gets the same
/// 431 whichever protocol it came in.
pub(crate) fn is_over_head_limits(method: &str, target: &str, headers: &HeaderMap) -> bool {
    if headers.len() > MAX_HEADERS {
        return true;
    }
    // `METHOD target HTTP/1.1\r\n`, `name: value\r\n` per field, the blank line.
    let line = method.len() + 1 + target.len() + 11;
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    line + fields + 2 > MAX_HEAD_BYTES
}

/// Prepares a client's request headers for the backend.
pub fn rewrite_request(headers: &mut HeaderMap, forwarded: &Forwarded, keep_alive: bool) {
    strip_hop_by_hop(headers);
    for (name, value) in forwarded.missing(present_in(headers)) {
        headers.insert(name, value.clone());
    }
    if !keep_alive {
        // Hipache's default: one backend connection per request, closed by the backend.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// The forwarding headers among `headers`, told by their names' kinds as an HTTP/1 head's are
/// (one pass over the names: a lookup per header would hash each name).
pub(crate) fn present_in(headers: &HeaderMap) -> ForwardedPresent {
    let mut present = ForwardedPresent::default();
    for name in headers.keys() {
        present.note(Kind::of(name.as_str().as_bytes()));
    }
    present
}

/// What `X-Debug-*` reports for a proxied response.
pub(crate) struct DebugInfo<'a> {
    pub(crate) backend_url: &'a str,
    pub(crate) backend_index: usize,
    pub(crate) frontend_id: &'a str,
    pub(crate) host: &'a str,
    // u64, not `Duration::as_millis`'s u128: a u128 aligns this struct, and every future that
    // holds it, to 16 bytes, which pads each busy connection's request future by hundreds of
    // bytes.
    pub(crate) total_ms: u64,
    pub(crate) backend_ms: u64,
}

/// One `X-Debug-*` value, as both client protocols write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DebugValue<'a> {
    Text(&'a str),
    Number(u64),
}

impl DebugInfo<'_> {
    /// The fields, in order. Text from Redis that could not stand in a header (CR, LF, other
    /// controls) reads `invalid`.
    pub(crate) fn fields(&self) -> [(HeaderName, DebugValue<'_>); 7] {
        fn text(value: &str) -> DebugValue<'_> {
            let valid = value
                .bytes()
                .all(|b| b == b'\t' || (b >= b' ' && b != 0x7f));
            DebugValue::Text(if valid { value } else { "invalid" })
        }
        [
            (X_DEBUG_VERSION, DebugValue::Text(env!("CARGO_PKG_VERSION"))),
            (X_DEBUG_BACKEND_URL, text(self.backend_url)),
            (
                X_DEBUG_BACKEND_ID,
                DebugValue::Number(self.backend_index as u64),
            ),
            (X_DEBUG_VHOST, text(self.frontend_id)),
            (X_DEBUG_FRONTEND_KEY, text(self.host)),
            (X_DEBUG_TIME_TOTAL, DebugValue::Number(self.total_ms)),
            (X_DEBUG_TIME_BACKEND, DebugValue::Number(self.backend_ms)),
        ]
    }
}

pub(crate) fn add_debug(headers: &mut HeaderMap, info: &DebugInfo<'_>) {
    for (name, value) in info.fields() {
        let value = match value {
            // cannot fail: `fields` keeps only text a header value can hold
            DebugValue::Text(text) => {
                HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("invalid"))
            }
            DebugValue::Number(n) => HeaderValue::from(n),
        };
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        headers
    }

    #[test]
    fn http2_heads_are_held_to_the_http1_limits() {
        let mut headers = HeaderMap::new();
        assert!(!is_over_head_limits("GET", "/", &headers));
        for i in 0..MAX_HEADERS {
            headers.append(HeaderName::from_static("x-n"), HeaderValue::from(i));
        }
        assert!(!is_over_head_limits("GET", "/", &headers));
        headers.append(HeaderName::from_static("x-n"), HeaderValue::from(0));
        assert!(is_over_head_limits("GET", "/", &headers));

        // A head that is exactly `MAX_HEAD_BYTES` as HTTP/1.1, then one byte more.
        let mut headers = HeaderMap::new();
        let room = MAX_HEAD_BYTES - "GET / HTTP/1.1\r\n".len() - "x: \r\n\r\n".len();
        let value = HeaderValue::try_from("a".repeat(room)).unwrap();
        headers.insert(HeaderName::from_static("x"), value);
        assert!(!is_over_head_limits("GET", "/", &headers));
        assert!(is_over_head_limits("GET", "/a", &headers));
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_removed() {
        let mut headers = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("proxy-connection", "keep-alive"),
            ("host", "example.com"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut headers);
        let names: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["host", "x-kept"]);
    }

    #[test]
    fn forwarded_headers_are_added_only_when_absent() {
        let forwarded = Forwarded::new("10.1.2.3".parse().unwrap(), false, 8080);
        let mut headers = map(&[("x-forwarded-for", "1.1.1.1")]);
        rewrite_request(&mut headers, &forwarded, false);
        assert_eq!(headers["x-forwarded-for"], "1.1.1.1");
        assert_eq!(headers["x-real-ip"], "::ffff:10.1.2.3");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-protocol"], "http");
        assert_eq!(headers["x-forwarded-port"], "8080");
        assert_eq!(headers["connection"], "close");
        let mut headers = HeaderMap::new();
        rewrite_request(
            &mut headers,
            &Forwarded::new("::1".parse().unwrap(), true, 443),
            true,
        );
        assert_eq!(headers["x-forwarded-for"], "::1");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert!(!headers.contains_key("connection"));
    }
}
