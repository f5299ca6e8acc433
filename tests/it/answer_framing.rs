//! How strictly a backend's answer is framed on its way to the client: lengths and
//! chunk sizes, trailers, the framing of bodiless statuses, and fields split by a bare LF. The
//! client reads the raw bytes the proxy wrote.

use std::io::Read;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::raw_backend::{proxy_to, read_line, RawBackend, Wire};
use crate::support::wait::wait_until;
use crate::support::{raw_http, Hipache, RedisServer};

/// A backend that answers every request with `answer`.
fn answering(answer: &'static [u8]) -> RawBackend {
    RawBackend::start(move |peer| peer.answer_each(|_| answer.to_vec()))
}

/// Everything the proxy wrote back to `GET /` for `host`, up to its close.
fn fetch(hipache: &Hipache, host: &str) -> String {
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    raw_http::send(hipache.addr(), request.as_bytes())
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or_default()
}

fn head(answer: &str) -> &str {
    answer.split("\r\n\r\n").next().unwrap_or_default()
}

#[test]
fn numbers_a_signed_parser_would_misread_get_502() {
    let redis = RedisServer::start();
    let answers = [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\nhello"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nhello",
    ];
    let statuses: Vec<_> = answers
        .iter()
        .map(|answer| {
            let backend = answering(answer);
            let hipache = proxy_to(&redis, "num.local", &backend.url());
            status_line(&fetch(&hipache, "num.local")).to_owned()
        })
        .collect();
    assert_eq!(statuses, ["HTTP/1.1 502 Bad Gateway"; 2]);
}

#[test]
fn chunked_named_twice_by_a_backend_gets_502() {
    let redis = RedisServer::start();
    let answers = [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n\
            5\r\nhello\r\n0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ];
    for answer in answers {
        let backend = answering(answer);
        let hipache = proxy_to(&redis, "te.local", &backend.url());
        let got = fetch(&hipache, "te.local");
        assert_eq!(status_line(&got), "HTTP/1.1 502 Bad Gateway", "{got}");
        assert!(
            !head(&got)
                .to_ascii_lowercase()
                .contains("transfer-encoding"),
            "{got}"
        );
    }
}

#[test]
fn equal_content_lengths_from_a_backend_reach_the_client_as_one() {
    let redis = RedisServer::start();
    let backend = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok");
    let hipache = proxy_to(&redis, "cl.local", &backend.url());
    let got = fetch(&hipache, "cl.local");
    assert_eq!(status_line(&got), "HTTP/1.1 200 OK", "{got}");
    let lengths = head(&got)
        .to_ascii_lowercase()
        .matches("content-length")
        .count();
    assert_eq!(lengths, 1, "{got}");
    assert!(got.ends_with("\r\n\r\nok"), "{got}");
}

#[test]
fn bodiless_answers_reach_the_client_without_body_framing() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| {
        peer.answer_each(|request| match request.line.as_str() {
            "GET /204 HTTP/1.1" => b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\
                Content-Length: 0\r\nX-A: a\r\n\r\n"
                .to_vec(),
            _ => b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\nX-B: b\r\n\r\n"
                .to_vec(),
        })
    });
    let hipache = proxy_to(&redis, "empty.local", &backend.url());
    let mut client = Wire::open(hipache.addr());
    for (path, kept) in [("/204", "x-a"), ("/304", "x-b"), ("/204", "x-a")] {
        client.write(format!("GET {path} HTTP/1.1\r\nHost: empty.local\r\n\r\n").as_bytes());
        let answer = client.answer();
        assert!(answer.header(kept).is_some(), "{answer:?}");
        assert_eq!(answer.header("transfer-encoding"), None, "{answer:?}");
        if path == "/204" {
            assert_eq!(answer.header("content-length"), None, "{answer:?}");
        }
    }
}

#[test]
fn a_bare_lf_in_a_backend_field_gets_502_instead_of_a_second_field() {
    let redis = RedisServer::start();
    let backend = answering(
        b"HTTP/1.1 200 OK\r\nX-Note: a\nSet-Cookie: session=stolen\r\nContent-Length: 2\r\n\r\nok",
    );
    let hipache = proxy_to(&redis, "lf.local", &backend.url());
    let got = fetch(&hipache, "lf.local");
    assert_eq!(status_line(&got), "HTTP/1.1 502 Bad Gateway", "{got}");
    assert!(!got.to_ascii_lowercase().contains("set-cookie"), "{got}");
}

#[test]
fn framing_fields_are_dropped_from_a_backends_trailers() {
    let redis = RedisServer::start();
    let backend = answering(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\
          Content-Length: 5\r\nX-Kept: k\r\nTransfer-Encoding: chunked\r\nKeep-Alive: 5\r\n\r\n",
    );
    let hipache = proxy_to(&redis, "trail.local", &backend.url());
    let got = fetch(&hipache, "trail.local");
    assert_eq!(status_line(&got), "HTTP/1.1 200 OK", "{got}");
    assert!(
        got.ends_with("\r\n\r\n5\r\nhello\r\n0\r\nX-Kept: k\r\n\r\n"),
        "{got}"
    );
}

#[test]
fn a_bad_trailer_from_a_backend_gets_502_before_the_head_went_out() {
    let redis = RedisServer::start();
    let backend = answering(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\
          GET /smuggled HTTP/1.1\r\n\r\n",
    );
    let hipache = proxy_to(&redis, "trail.local", &backend.url());
    let got = fetch(&hipache, "trail.local");
    assert_eq!(status_line(&got), "HTTP/1.1 502 Bad Gateway", "{got}");
    assert!(!got.contains("smuggled"), "{got}");
}

#[test]
fn a_bad_trailer_after_the_head_went_out_closes_the_client_connection_and_is_logged() {
    let redis = RedisServer::start();
    let (go, wait) = mpsc::channel::<()>();
    let wait = Arc::new(Mutex::new(wait));
    let backend = RawBackend::start(move |peer| {
        if peer.request().is_some() {
            peer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
            let _ = wait.lock().unwrap().recv();
            peer.write(b"0\r\nX Bad: 1\r\n\r\n");
        }
    });
    let hipache = proxy_to(&redis, "trail.local", &backend.url());
    let mut client = Wire::open(hipache.addr());
    client.write(b"GET / HTTP/1.1\r\nHost: trail.local\r\n\r\n");
    assert_eq!(read_line(&mut client.0).as_deref(), Some("HTTP/1.1 200 OK"));
    while read_line(&mut client.0).is_some_and(|line| !line.is_empty()) {}
    assert_eq!(read_line(&mut client.0).as_deref(), Some("5"));
    assert_eq!(read_line(&mut client.0).as_deref(), Some("hello"));
    go.send(()).unwrap();

    // No end of body: the connection closes, so the client knows the answer was cut short.
    let mut rest = Vec::new();
    client
        .0
        .read_to_end(&mut rest)
        .expect("hipache to close the connection");
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        !rest.ends_with("\r\n\r\n") && !rest.contains("Bad"),
        "{rest:?}"
    );
    // The log is the behaviour here: the operator learns why the answer was cut.
    let logged = || {
        let lines = hipache.log_lines();
        lines.iter().any(|line| line.contains("invalid chunks"))
    };
    wait_until(
        Duration::from_secs(10),
        "the cut answer to be logged",
        logged,
    );
}
