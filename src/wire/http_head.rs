//! Heads as the `http` crate holds them, the same for the HTTP/2 and HTTP/3 front ends: what a
//! request's head tells the session (its host, cookies, referer and agent), and a backend's
//! HTTP/1.1 answer head turned into the client's response head (its fields, the sticky
//! `Set-Cookie`, a `date`).

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use super::response::ResponseHead;
use crate::ascii;

/// `host`, or the request's authority (`:authority`, or an absolute-form target's).
pub(crate) fn host_of(parts: &http::request::Parts) -> Option<&str> {
    match parts.headers.get(header::HOST) {
        Some(value) => value.to_str().ok(),
        None => parts.uri.authority().map(|a| a.as_str()),
    }
}

/// The values of the request's `cookie` fields.
pub(crate) fn cookies(parts: &http::request::Parts) -> impl Iterator<Item = &[u8]> {
    let cookies = parts.headers.get_all(header::COOKIE).iter();
    cookies.map(HeaderValue::as_bytes)
}

/// The `referer` and `user-agent` values (empty when absent), for the access log.
pub(crate) fn referer_and_agent(parts: &http::request::Parts) -> (&[u8], &[u8]) {
    let text = |name| {
        parts
            .headers
            .get(name)
            .map_or(&b""[..], HeaderValue::as_bytes)
    };
    (text(header::REFERER), text(header::USER_AGENT))
}

/// A backend's status and fields (hop-by-hop ones left out) as the client's response head; `buf`
/// holds the head's bytes.
pub(crate) fn head_of(head: &ResponseHead, buf: &[u8]) -> http::response::Parts {
    let mut response = Response::new(());
    *response.status_mut() = status_of(head);
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

/// A backend's status as the client gets it (one the parser read but `http` cannot hold, out of
/// 100 to 999, is a 502).
pub(crate) fn status_of(head: &ResponseHead) -> StatusCode {
    StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY)
}

/// The `Set-Cookie` the attempt loop asked for goes on the answer's head.
pub(crate) fn add_set_cookie(head: &mut http::response::Parts, set_cookie: Option<String>) {
    if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::try_from(c).ok()) {
        head.headers.append(header::SET_COOKIE, cookie);
    }
}

/// A `date` field on an answer that has none (a page of our own, or a backend that sent none),
/// as HTTP/1.1 answers get one.
pub(crate) fn add_date(headers: &mut HeaderMap) {
    if headers.contains_key(header::DATE) {
        return;
    }
    if let Ok(date) = HeaderValue::try_from(date_now()) {
        headers.insert(header::DATE, date);
    }
}

/// The `date` value of the current second.
pub(crate) fn date_now() -> Vec<u8> {
    thread_local! {
        /// The `Date` of the current second: formatted once per second per worker.
        static DATE: ascii::PerSecond<29> = const { ascii::PerSecond::new(ascii::http_date) };
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut text = Vec::with_capacity(29);
    DATE.with(|date| date.write(&mut text, now));
    text
}
