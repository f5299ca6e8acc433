//! The HTTP/1.x engine at the edges of the protocol: pipelining, chunked and close-delimited
//! answers to both HTTP versions, smuggling shapes, oversized heads,
//! absolute-form targets, HEAD, invalid chunks, CONNECT. Raw backends and the byte-exact client
//! are in `support::raw_backend`.

use crate::support::raw_backend::{
    assert_answer, early_hints_backend, ok, pattern, proxy_to, RawBackend, Wire,
};
use crate::support::{raw_http, Backend, Config, Hipache, RedisServer};

/// A chunked answer with a chunk extension and a trailer, for the decoders to walk over.
const CHUNKED_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
    Transfer-Encoding: chunked\r\n\r\n5;note=first\r\nhello\r\n7\r\n, world\r\n0\r\n\
    X-Trailer: t\r\n\r\n";

#[test]
fn pipelined_requests_in_one_write_are_answered_in_order() {
    let redis = RedisServer::start();
    let (one, two) = (Backend::named("one"), Backend::named("two"));
    redis.frontend("one.local", "one", &[&one.url()]);
    redis.frontend("two.local", "two", &[&two.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    let mut wire = Wire::open(hipache.addr());
    wire.write(
        b"GET /first HTTP/1.1\r\nHost: one.local\r\n\r\n\
          GET /second HTTP/1.1\r\nHost: two.local\r\n\r\n",
    );

    assert_answer(&wire.answer(), "HTTP/1.1 200 OK", "one");
    assert_answer(&wire.answer(), "HTTP/1.1 200 OK", "two");
    assert_eq!(one.requests()[0].path, "/first");
    assert_eq!(two.requests()[0].path, "/second");
}

#[test]
fn http10_client_gets_a_chunked_answer_decoded_then_a_close() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| peer.answer_each(|_| CHUNKED_ANSWER.to_vec()));
    let hipache = proxy_to(&redis, "chunked.local", &backend.url());

    let mut wire = Wire::open(hipache.addr());
    wire.write(b"GET /doc HTTP/1.0\r\nHost: chunked.local\r\n\r\n");
    let answer = wire.answer();

    // Read to the close: the payload alone, without chunk sizes, extension or trailer.
    assert_answer(&answer, "HTTP/1.0 200 OK", "hello, world");
    assert_eq!(answer.header("transfer-encoding"), None);
    assert_eq!(answer.header("connection"), Some("close"));
    wire.assert_closed();
    assert_eq!(backend.lines(), ["GET /doc HTTP/1.1"]);
}

#[test]
fn http11_client_gets_a_chunked_answer_and_keeps_its_connection() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| peer.answer_each(|_| CHUNKED_ANSWER.to_vec()));
    let hipache = proxy_to(&redis, "chunked.local", &backend.url());

    let mut wire = Wire::open(hipache.addr());
    for path in ["/first", "/second"] {
        wire.write(format!("GET {path} HTTP/1.1\r\nHost: chunked.local\r\n\r\n").as_bytes());
        let answer = wire.answer();

        assert_answer(&answer, "HTTP/1.1 200 OK", "hello, world");
        assert_eq!(answer.header("transfer-encoding"), Some("chunked"));
        assert_eq!(answer.header("connection"), None);
    }
    let lines = ["GET /first HTTP/1.1", "GET /second HTTP/1.1"];
    assert_eq!(backend.lines(), lines);
}

#[test]
fn http10_backend_answer_without_length_runs_to_its_close() {
    let redis = RedisServer::start();
    let body = pattern(256 * 1024);
    let sent = body.clone();
    let backend = RawBackend::start(move |peer| {
        if peer.request().is_some() {
            peer.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n");
            sent.chunks(100_000).for_each(|piece| peer.write(piece));
        }
    });
    let hipache = proxy_to(&redis, "close.local", &backend.url());

    let mut wire = Wire::open(hipache.addr());
    wire.write(b"GET /stream HTTP/1.1\r\nHost: close.local\r\n\r\n");
    let answer = wire.answer();

    assert_eq!(answer.line, "HTTP/1.1 200 OK");
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(answer.header("content-length"), None);
    assert_eq!(answer.header("transfer-encoding"), None);
    assert_eq!(answer.body.len(), body.len());
    assert!(answer.body == body, "the body arrived altered");
    wire.assert_closed();
}

#[test]
fn request_smuggling_shapes_get_400_and_never_reach_the_backend() {
    let redis = RedisServer::start();
    let backend = Backend::named("inner");
    let hipache = proxy_to(&redis, "smuggle.local", &backend.url());
    let shapes: [&[u8]; 3] = [
        b"POST / HTTP/1.1\r\nHost: smuggle.local\r\nContent-Length: 6\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
          GET /smuggled HTTP/1.1\r\nHost: smuggle.local\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: smuggle.local\r\nContent-Length: 0\r\n\
          Content-Length: 47\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: smuggle.local\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: smuggle.local\r\nTransfer-Encoding: chunked, identity\r\n\
          \r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: smuggle.local\r\n\r\n",
    ];

    for shape in shapes {
        let answer = raw_http::send(hipache.addr(), shape);
        let status_line = answer.lines().next().unwrap_or_default();
        assert_eq!(status_line, "HTTP/1.1 400 Bad Request", "{answer:?}");
        assert!(answer.contains("\r\nConnection: close\r\n"), "{answer:?}");
    }

    assert_eq!(backend.connections(), 0, "a shape reached the backend");
    assert_eq!(hipache.get("smuggle.local", "/after").status, 200);
    let paths: Vec<_> = backend.requests().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/after"]);
}

/// `GET /` for `host` whose head is `len` bytes long, most of them one `X-Big` value.
fn long_head(host: &str, len: usize) -> Vec<u8> {
    let mut head = format!("GET / HTTP/1.1\r\nHost: {host}\r\nX-Big: ").into_bytes();
    head.resize(len - 4, b'a');
    head.extend_from_slice(b"\r\n\r\n");
    head
}

#[test]
fn a_100_kib_header_gets_431_and_the_proxy_keeps_serving() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let hipache = proxy_to(&redis, "big.local", &backend.url());

    let answer = raw_http::send(hipache.addr(), &long_head("big.local", 100 * 1024 + 64));

    let status_line = answer.lines().next().unwrap_or_default();
    assert_eq!(status_line, "HTTP/1.1 431 Request Header Fields Too Large");
    assert_eq!(backend.connections(), 0);
    let ping = hipache.get("__ping__", "/");
    assert_eq!((ping.status, ping.text().as_str()), (200, "ok"));
}

#[test]
fn absolute_form_target_is_routed_by_its_authority_and_sent_in_origin_form() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| peer.answer_each(|_| ok("abs")));
    let hipache = proxy_to(&redis, "abs.local", &backend.url());

    let mut wire = Wire::open(hipache.addr());
    wire.write(b"GET http://abs.local/path?q HTTP/1.1\r\n\r\n");

    assert_answer(&wire.answer(), "HTTP/1.1 200 OK", "abs");
    let seen = &backend.requests()[0];
    assert_eq!(seen.line, "GET /path?q HTTP/1.1");
    let hosts: Vec<_> = seen.fields.iter().filter(|(n, _)| n == "host").collect();
    assert_eq!(hosts, [&("host".to_owned(), "abs.local".to_owned())]);
}

#[test]
fn head_answer_keeps_its_content_length_without_a_body() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| {
        peer.answer_each(|request| match request.line.starts_with("HEAD ") {
            true => b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n".to_vec(),
            false => ok("after"),
        })
    });
    let hipache = proxy_to(&redis, "head.local", &backend.url());

    let mut wire = Wire::open(hipache.addr());
    wire.write(b"HEAD /doc HTTP/1.1\r\nHost: head.local\r\n\r\n");
    let head = wire.answer_to("HEAD");
    wire.write(b"GET /next HTTP/1.1\r\nHost: head.local\r\n\r\n");

    assert_eq!(head.line, "HTTP/1.1 200 OK");
    assert_eq!(head.header("content-length"), Some("1234"));
    // A body byte after the HEAD answer would be read here as the status line.
    assert_answer(&wire.answer(), "HTTP/1.1 200 OK", "after");
    let lines = ["HEAD /doc HTTP/1.1", "GET /next HTTP/1.1"];
    assert_eq!(backend.lines(), lines);
}

#[test]
fn unknown_host_with_a_body_gets_the_400_page_and_a_close() {
    let redis = RedisServer::start();
    let hipache = Hipache::start(Config::redis(&redis));

    let mut wire = Wire::open(hipache.addr());
    wire.write(b"POST /form HTTP/1.1\r\nHost: nobody.local\r\nContent-Length: 5\r\n\r\nhello");
    let answer = wire.answer();

    assert_eq!(answer.line, "HTTP/1.1 400 Bad Request");
    let page = answer.text();
    assert!(page.contains("No Application Configured"), "{page}");
    assert_eq!(answer.header("connection"), Some("close"));
    wire.assert_closed();
}

#[test]
fn backend_length_beside_chunked_is_dropped_for_both_versions() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| {
        let both = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\
                       \r\n5\r\nhello\r\n0\r\n\r\n";
        peer.answer_each(|_| both.to_vec())
    });
    let hipache = proxy_to(&redis, "both.local", &backend.url());

    for version in ["1.1", "1.0"] {
        let mut wire = Wire::open(hipache.addr());
        wire.write(format!("GET / HTTP/{version}\r\nHost: both.local\r\n\r\n").as_bytes());
        let answer = wire.answer();

        // RFC 9112 §6.3: an intermediary forwarding such a message removes Content-Length.
        assert_eq!(answer.header("content-length"), None, "{answer:?}");
        assert_eq!(answer.text(), "hello", "{answer:?}");
    }
}

#[test]
fn invalid_chunks_get_400_from_a_client_and_502_from_a_backend() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| {
        if peer.request().is_some() {
            peer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
            );
        }
    });
    let hipache = proxy_to(&redis, "chunks.local", &backend.url());

    let mut client = Wire::open(hipache.addr());
    client.write(
        b"POST / HTTP/1.1\r\nHost: chunks.local\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    );
    let refused = client.answer();
    assert_eq!(refused.line, "HTTP/1.1 400 Bad Request");
    client.assert_closed();
    assert_eq!(
        backend.connections(),
        0,
        "the backend never saw the bad body"
    );

    let mut client = Wire::open(hipache.addr());
    client.write(b"GET / HTTP/1.1\r\nHost: chunks.local\r\n\r\n");
    let answer = client.answer();
    assert_eq!(answer.line, "HTTP/1.1 502 Bad Gateway");
    assert!(
        answer.text().contains("Application Not Responding"),
        "{}",
        answer.text()
    );
    assert_eq!(answer.header("connection"), Some("close"));
    client.assert_closed();
}

#[test]
fn connect_is_refused_with_405_and_reaches_no_backend() {
    let redis = RedisServer::start();
    let backend = Backend::named("inner");
    let hipache = proxy_to(&redis, "connect.local", &backend.url());
    let mut client = Wire::open(hipache.addr());
    client.write(b"CONNECT connect.local:443 HTTP/1.1\r\nHost: connect.local:443\r\n\r\n");
    assert_eq!(client.answer().line, "HTTP/1.1 405 Method Not Allowed");
    client.assert_closed();
    assert_eq!(backend.request_count(), 0);
}

#[test]
fn a_backends_early_hints_reach_the_client_before_its_final_answer() {
    let redis = RedisServer::start();
    let (backend, seen_hints) = early_hints_backend();
    let hipache = proxy_to(&redis, "hints.local", &backend.url());

    let mut wire = Wire::open(hipache.addr());
    wire.write(b"GET /page HTTP/1.1\r\nHost: hints.local\r\n\r\n");
    let hints = wire.answer();
    assert_answer(&hints, "HTTP/1.1 103 Early Hints", "");
    assert_eq!(hints.header("link"), Some("</style.css>; rel=preload"));
    assert_eq!(
        hints.header("connection"),
        None,
        "a hop-by-hop field was relayed"
    );
    seen_hints.send(()).unwrap();
    assert_answer(&wire.answer(), "HTTP/1.1 200 OK", "final");
}

#[test]
fn interim_answers_are_not_sent_to_http10_clients() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| {
        peer.answer_each(|_| {
            [
                &b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"[..],
                &ok("final"),
            ]
            .concat()
        })
    });
    let hipache = proxy_to(&redis, "hints10.local", &backend.url());

    let mut wire = Wire::open(hipache.addr());
    wire.write(b"GET / HTTP/1.0\r\nHost: hints10.local\r\n\r\n");
    assert_answer(&wire.answer(), "HTTP/1.0 200 OK", "final");
}
