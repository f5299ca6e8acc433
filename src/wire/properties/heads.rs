//! Request and response heads: httparse differential, no panic, re-encoding read back strictly.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::config;
use crate::wire::encode::{self, ClientFraming, Persistence};
use crate::wire::fields::{self, Kind};
use crate::wire::headers::Forwarded;
use crate::wire::request::{Framing, RequestHead, MAX_HEADERS};
use crate::wire::response::ResponseHead;

/// A piece of a head: mostly from `good`; with `hostile` set, sometimes from `bad` or arbitrary
/// bytes.
fn piece(
    good: &'static [&'static str],
    bad: &'static [&'static str],
    hostile: bool,
) -> impl Strategy<Value = Vec<u8>> {
    let (bad_weight, junk_weight) = if hostile { (2, 1) } else { (0, 0) };
    prop_oneof![
        30 => select(good).prop_map(|s| s.as_bytes().to_vec()),
        bad_weight => select(bad).prop_map(|s| s.as_bytes().to_vec()),
        junk_weight => vec(any::<u8>(), 0..6),
    ]
}

const METHODS: &[&str] = &["GET", "POST", "HEAD", "OPTIONS", "PUT", "M-SEARCH"];
const BAD_METHODS: &[&str] = &["G T", "", "GET\x00"];
const TARGETS: &[&str] = &[
    "/",
    "/a?b=c",
    "*",
    "http://Other.test:81/p",
    "HTTP://h?q",
    "/%20",
];
const BAD_TARGETS: &[&str] = &["/\x7f", "", "/a b"];
const VERSIONS: &[&str] = &["HTTP/1.1", "HTTP/1.0"];
const BAD_VERSIONS: &[&str] = &["HTTP/2.0", "http/1.1", "HTTP/1.12", "HTTP/1"];
const NAMES: &[&str] = &[
    "Host",
    "host",
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "Upgrade",
    "Expect",
    "X-A",
    "x-a",
    "Keep-Alive",
    "TE",
    "Trailer",
    "X-Forwarded-For",
    "Proxy-Connection",
    "X-Debug",
    "Cookie",
];
const BAD_NAMES: &[&str] = &["X Bad", "", "X-\x01", "T\u{e4}st", "X-A ", " X-A"];
const VALUES: &[&str] = &[
    "a.test",
    "5",
    "0",
    "00",
    "chunked",
    " CHUNKED ",
    "gzip, chunked",
    "chunked, chunked",
    ",chunked",
    "close",
    "keep-alive, X-A",
    "upgrade",
    "websocket",
    "100-continue",
    "9223372036854775807",
    "9223372036854775808",
    "-1",
    " x ",
    "tab\there",
    "\u{e9}",
    "",
];
const BAD_VALUES: &[&str] = &["\x00", "a\rb", "\x7f", "a\nb"];
const EOLS: &[&str] = &["\r\n"];
const BAD_EOLS: &[&str] = &["\n", "\r"];

/// Up to 7 fields, one of them often said twice (equal lengths, two `Host`s...).
fn repeated<T: Clone + std::fmt::Debug>(
    field: impl Strategy<Value = T>,
) -> impl Strategy<Value = Vec<T>> {
    let twice = any::<Option<proptest::sample::Index>>();
    (vec(field, 0..7), twice).prop_map(|(mut fields, twice)| {
        if let Some(index) = twice.filter(|_| !fields.is_empty()) {
            let field = index.get(&fields).clone();
            fields.insert(index.index(fields.len() + 1), field);
        }
        fields
    })
}

/// A request head (ending in its blank line) built from the pools.
fn request_head(hostile: bool) -> impl Strategy<Value = Vec<u8>> {
    let eol = move || piece(EOLS, BAD_EOLS, hostile);
    let line = (
        piece(METHODS, BAD_METHODS, hostile),
        piece(TARGETS, BAD_TARGETS, hostile),
        piece(VERSIONS, BAD_VERSIONS, hostile),
        eol(),
    );
    let field = (
        piece(NAMES, BAD_NAMES, hostile),
        piece(VALUES, BAD_VALUES, hostile),
        eol(),
    );
    (line, repeated(field), eol()).prop_map(|((m, t, v, eol), fields, end)| {
        let mut head = [m, b" ".to_vec(), t, b" ".to_vec(), v, eol].concat();
        for (name, value, eol) in fields {
            head.extend([name, b": ".to_vec(), value, eol].concat());
        }
        head.extend(end);
        head
    })
}

/// What httparse makes of a request head: `Some(true)` complete, `Some(false)` refused.
fn httparse_request(buf: &[u8]) -> Option<bool> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::Request::new(&mut headers).parse(buf) {
        Ok(httparse::Status::Complete(_)) => Some(true),
        Ok(httparse::Status::Partial) => None,
        Err(_) => Some(false),
    }
}

/// The framing rules we add to httparse's, stated independently of `wire::fields`.
fn refused_by_our_rules(buf: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let _ = request.parse(buf);
    let headers = &*request.headers;
    let named = |name: &'static str| {
        let fields = headers.iter();
        fields.filter(move |h| h.name.eq_ignore_ascii_case(name))
    };
    let length = |value: &[u8]| {
        let text = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
        let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        digits.then(|| text.parse::<i64>().ok()).flatten()
    };
    let lengths: Vec<_> = named("content-length").map(|h| length(h.value)).collect();
    let bad_length =
        lengths.iter().any(Option::is_none) || lengths.windows(2).any(|w| w[0] != w[1]);
    let codings: Vec<_> = named("transfer-encoding").map(|h| h.value).collect();
    let exactly_chunked = |v: &[u8]| {
        let text = String::from_utf8_lossy(v);
        text.trim_matches([' ', '\t'])
            .eq_ignore_ascii_case("chunked")
    };
    let bad_coding = !codings.is_empty()
        && (codings.len() > 1
            || !exactly_chunked(codings[0])
            || !lengths.is_empty()
            || request.version == Some(0));
    named("host").count() > 1 || bad_length || bad_coding
}

#[test]
fn request_heads_agree_with_httparse_but_for_our_framing_rules() {
    proptest!(config(1000), |(head in request_head(true))| {
        let ours = match RequestHead::parse(&head) {
            Ok(Some(_)) => Some(true),
            Ok(None) => None,
            Err(_) => Some(false),
        };
        let expected = match httparse_request(&head) {
            Some(true) => Some(!refused_by_our_rules(&head)),
            other => other,
        };
        prop_assert_eq!(ours, expected, "{:?}", String::from_utf8_lossy(&head));
    });
}

#[test]
fn request_parser_survives_arbitrary_bytes() {
    proptest!(config(1000), |(prefix in select(&["", "GET / HTTP/1.1\r\n", "POST /"][..]), bytes in vec(any::<u8>(), 0..300))| {
        let buf = [prefix.as_bytes(), &bytes].concat();
        if let Ok(Some(head)) = RequestHead::parse(&buf) {
            let _ = (head.host(&buf), head.origin_form(&buf), head.upgrade(&buf));
        }
    });
}

/// The name/value pairs of a head as httparse reads them.
fn pairs(headers: &[httparse::Header<'_>]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let pair =
        |h: &httparse::Header<'_>| (h.name.as_bytes().to_ascii_lowercase(), h.value.to_vec());
    headers.iter().map(pair).collect()
}

/// Fields that a proxy writes itself and never copies.
fn is_proxy_written(name: &[u8]) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "x-forwarded-for",
        "x-real-ip",
        "x-forwarded-proto",
        "x-forwarded-protocol",
        "x-forwarded-port",
        "expect",
        "content-length",
    ]
    .iter()
    .any(|known| name.eq_ignore_ascii_case(known.as_bytes()))
}

#[test]
fn accepted_requests_reach_a_strict_parser_as_the_same_single_message() {
    let forwarded = Forwarded::new("10.0.0.1".parse().unwrap(), false, 80);
    proptest!(config(1000), |(head in request_head(false), keep_alive in any::<bool>(), expect in any::<bool>())| {
        let Ok(Some(parsed)) = RequestHead::parse(&head) else { return Ok(()) };
        let mut out = Vec::new();
        encode::request_for_backend(&mut out, &head, &parsed, &forwarded, keep_alive, expect);
        let text = String::from_utf8_lossy(&out).into_owned();
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut strict = httparse::Request::new(&mut headers);
        let status = strict.parse(&out);
        prop_assert!(matches!(status, Ok(httparse::Status::Complete(n)) if n == out.len()), "{}", text);
        prop_assert_eq!(strict.method.map(str::as_bytes), Some(parsed.method(&head)));
        let (path, _) = parsed.origin_form(&head);
        let path = [if path.starts_with(b"?") { &b"/"[..] } else { b"" }, path].concat();
        prop_assert_eq!(strict.path.map(str::as_bytes), Some(&path[..]));
        // The end-to-end fields go on in order, byte for byte.
        let mut original = [httparse::EMPTY_HEADER; 128];
        let mut request = httparse::Request::new(&mut original);
        let _ = request.parse(&head);
        let listed = |name: &[u8]| parsed.fields.iter().any(|f| {
            f.kind == Kind::Connection
                && f.value(&head).split(|&b| b == b',').any(|t| fields::trim(t).eq_ignore_ascii_case(name))
        });
        let end_to_end = |pairs: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<(Vec<u8>, Vec<u8>)> {
            pairs.into_iter().filter(|(n, _)| !is_proxy_written(n) && !listed(n)).collect()
        };
        prop_assert_eq!(end_to_end(pairs(request.headers)), end_to_end(pairs(strict.headers)), "{}", text);
        // The same framing, said once.
        let again = RequestHead::parse(&out);
        prop_assert!(matches!(&again, Ok(Some(h)) if h.framing == parsed.framing), "{}", text);
        let count = |name: &str| strict.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).count();
        prop_assert_eq!(count("transfer-encoding"), usize::from(parsed.framing == Framing::Chunked));
        prop_assert!(count("content-length") <= 1 && count("host") <= 1, "{}", text);
    });
}

const STATUSES: &[&str] = &[
    "200 OK",
    "204 No Content",
    "304 Not Modified",
    "101 Switching",
    "100 Continue",
    "404 ",
    "503",
];
const BAD_STATUSES: &[&str] = &["999 X", "20 Bad", "2000 OK", ""];

fn response_head(hostile: bool) -> impl Strategy<Value = Vec<u8>> {
    let eol = move || piece(EOLS, BAD_EOLS, hostile);
    let version = select(&["HTTP/1.1 ", "HTTP/1.0 ", "HTTP/1.1 "][..]);
    let line = (version, piece(STATUSES, BAD_STATUSES, hostile), eol());
    let field = (
        piece(NAMES, BAD_NAMES, hostile),
        piece(VALUES, BAD_VALUES, hostile),
        eol(),
    );
    (line, repeated(field), eol()).prop_map(|((v, s, eol), fields, end)| {
        let mut head = [v.as_bytes(), &s, &eol].concat();
        for (name, value, eol) in fields {
            head.extend([name, b": ".to_vec(), value, eol].concat());
        }
        head.extend(end);
        head
    })
}

#[test]
fn accepted_responses_reach_a_strict_parser_as_the_same_single_message() {
    proptest!(config(1000), |(head in prop_oneof![response_head(false), response_head(true)], minor in 0u8..2, head_request in any::<bool>())| {
        let Ok(Some(parsed)) = ResponseHead::parse(&head, head_request) else { return Ok(()) };
        prop_assert!(!head[..parsed.len].windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
        let framing = match parsed.coded { true => ClientFraming::Coded, false => ClientFraming::AsSent };
        let mut out = Vec::new();
        encode::response_for_client(&mut out, &head, &parsed, minor, framing, Persistence::KeepAlive, None);
        let text = String::from_utf8_lossy(&out).into_owned();
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut strict = httparse::Response::new(&mut headers);
        let status = strict.parse(&out);
        prop_assert!(matches!(status, Ok(httparse::Status::Complete(n)) if n == out.len()), "{}", text);
        prop_assert_eq!(strict.code, Some(parsed.status));
        let client: Vec<_> = parsed.client_fields(&head).map(|f| (f.name(&head).to_ascii_lowercase(), f.value(&head).to_vec())).collect();
        let sent = pairs(strict.headers);
        prop_assert_eq!(&sent[..client.len()], &client[..], "{}", text);
        let again = ResponseHead::parse(&out, head_request);
        prop_assert!(matches!(&again, Ok(Some(h)) if h.framing == parsed.framing), "{}", text);
        let count = |name: &str| strict.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).count();
        prop_assert!(count("content-length") <= 1, "{}", text);
        if matches!(parsed.status, 100..=199 | 204) {
            prop_assert_eq!(count("content-length") + count("transfer-encoding"), 0, "{}", text);
        }
    });
}

#[test]
fn response_parser_survives_arbitrary_bytes() {
    proptest!(config(1000), |(prefix in select(&["", "HTTP/1.1 200 OK\r\n"][..]), bytes in vec(any::<u8>(), 0..300), head_request in any::<bool>())| {
        let buf = [prefix.as_bytes(), &bytes].concat();
        if let Ok(Some(head)) = ResponseHead::parse(&buf, head_request) {
            let _ = (head.reason(&buf), head.upgrade(&buf), head.client_fields(&buf).count());
        }
    });
}
