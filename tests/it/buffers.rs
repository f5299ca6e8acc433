//! Requests and answers longer than the buffers they start in: a connection's buffers start
//! small (a request head in 2 KiB, an answer in 4 KiB) and grow only when a read fills them,
//! so long heads, bursts of pipelined requests and long answers must come out whole, in order,
//! on a connection that goes on.

use crate::support::raw_backend::{
    assert_answer, ok, pattern, proxy_to, Message, RawBackend, Wire, MIB,
};
use crate::support::{Backend, RedisServer};

/// The path of a request as a raw backend read it.
fn path(request: &Message) -> &str {
    request.line.split(' ').nth(1).unwrap_or_default()
}

/// `GET path` for `host` whose head is `len` bytes long, most of them one `X-Big` value.
fn long_head(host: &str, path: &str, len: usize) -> Vec<u8> {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Big: ").into_bytes();
    head.resize(len - 4, b'a');
    head.extend_from_slice(b"\r\n\r\n");
    head
}

#[test]
fn a_head_near_the_limit_reaches_the_backend_whole_and_the_connection_goes_on() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let hipache = proxy_to(&redis, "big.local", &backend.url());

    let mut wire = Wire::open(hipache.addr());
    // Past the starting buffer, past the largest buffer kept, under the 64 KiB limit; then a
    // short one on the same connection, served from a buffer given back small.
    let len = 60 * 1024;
    wire.write(&long_head("big.local", "/long", len));
    assert_answer(&wire.answer(), "HTTP/1.1 200 OK", "b1");
    wire.write(b"GET /short HTTP/1.1\r\nHost: big.local\r\n\r\n");
    assert_answer(&wire.answer(), "HTTP/1.1 200 OK", "b1");

    let seen = backend.requests();
    let big = seen[0].header("x-big").unwrap_or_default();
    assert_eq!(
        big.len(),
        len - "GET /long HTTP/1.1\r\nHost: big.local\r\nX-Big: \r\n\r\n".len()
    );
    assert!(big.bytes().all(|b| b == b'a'));
    assert_eq!(seen[1].path, "/short");
}

#[test]
fn a_pipelined_burst_longer_than_a_read_is_answered_in_order() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| peer.answer_each(|request| ok(path(request))));
    let hipache = proxy_to(&redis, "burst.local", &backend.url());

    // 200 requests in one write: about 12 KiB, so heads straddle the ends of reads.
    let mut burst = Vec::new();
    for i in 0..200 {
        burst.extend_from_slice(
            format!("GET /{i} HTTP/1.1\r\nHost: burst.local\r\n\r\n").as_bytes(),
        );
    }
    let mut wire = Wire::open(hipache.addr());
    wire.write(&burst);

    for i in 0..200 {
        assert_answer(&wire.answer(), "HTTP/1.1 200 OK", &format!("/{i}"));
    }
}

#[test]
fn a_long_answer_after_short_ones_arrives_whole_on_the_same_connection() {
    let redis = RedisServer::start();
    let body = pattern(3 * MIB + 17);
    let long = body.clone();
    let backend = RawBackend::start(move |peer| {
        peer.answer_each(|request| match path(request) {
            "/long" => {
                let mut answer =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", long.len())
                        .into_bytes();
                answer.extend_from_slice(&long);
                answer
            }
            path => ok(path),
        })
    });
    let hipache = proxy_to(&redis, "long.local", &backend.url());

    let mut wire = Wire::open(hipache.addr());
    for path in ["/a", "/long", "/b"] {
        wire.write(format!("GET {path} HTTP/1.1\r\nHost: long.local\r\n\r\n").as_bytes());
        let answer = wire.answer();
        assert_eq!(answer.line, "HTTP/1.1 200 OK");
        match path {
            "/long" => assert!(answer.body == body, "{} bytes", answer.body.len()),
            path => assert_eq!(answer.text(), path),
        }
    }
}
