//! Trailers over HTTP/2, both ways: a backend's chunked trailer section reaches an HTTP/2 client
//! as a trailing HEADERS frame, and an HTTP/2 client's trailers reach the backend at the end of
//! a chunked body, whatever the path its body takes (kept whole, or streamed). Fields that may
//! not trail are dropped; trailers HTTP/2 calls malformed (pseudo-header fields among them) are
//! refused and never reach the backend.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use crate::support::h2_frames::{self, Ending, H2Raw, END_HEADERS, END_STREAM, HEADERS};
use crate::support::raw_backend::{ok, pattern, unprivileged_proxy_to, RawBackend, IO_TIMEOUT};
use crate::support::runtime::block_on_within;
use crate::support::{h2c, RedisServer};

fn fields(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

/// A backend that answers each request `ok` with what it read.
fn recording_backend() -> RawBackend {
    RawBackend::start(|peer| peer.answer_each(|_| ok("got it")))
}

#[test]
fn a_backends_chunked_trailers_reach_an_http2_client_as_trailing_headers() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| {
        if peer.request().is_some() {
            peer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
                  5\r\nhello\r\n0\r\nX-Checksum: abc\r\nContent-Length: 5\r\n\r\n",
            );
        }
    });
    let hipache = unprivileged_proxy_to(&redis, "trail2.test", &backend.url());

    let (status, body, trailers) = block_on_within(IO_TIMEOUT, async {
        let (mut client, _) = h2c::connect_frames(hipache.addr()).await;
        let request = http::Request::get("http://trail2.test/")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        let response = response.await.expect("an answer");
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(data) = body.data().await {
            text.extend_from_slice(&data.unwrap());
        }
        let trailers = body.trailers().await.expect("the stream ended cleanly");
        (status, text, trailers)
    });

    assert_eq!((status, &body[..]), (200, &b"hello"[..]));
    let trailers = trailers.expect("trailing HEADERS");
    assert_eq!(trailers.get("x-checksum").unwrap(), "abc");
    assert!(!trailers.contains_key("content-length"), "{trailers:?}");
}

#[test]
fn an_http2_clients_trailers_reach_the_backend_at_the_end_of_a_chunked_body() {
    let redis = RedisServer::start();
    let backend = recording_backend();
    let hipache = unprivileged_proxy_to(&redis, "trail2up.test", &backend.url());
    let big = Bytes::from(pattern(200 * 1024));
    // A body kept whole (with a length), one streamed without a length, and one streamed with a
    // length whose client deals in trailers.
    let cases = [
        (Bytes::from_static(b"small"), true, false),
        (big.clone(), false, false),
        (big.clone(), true, true),
    ];

    for (body, with_length, te) in &cases {
        let status = block_on_within(IO_TIMEOUT, async {
            let (mut client, _) = h2c::connect_frames(hipache.addr()).await;
            let mut request = http::Request::post("http://trail2up.test/up");
            if *with_length {
                request = request.header("content-length", body.len());
            }
            if *te {
                request = request.header("te", "trailers");
            }
            let (response, mut send) = client
                .send_request(request.body(()).unwrap(), false)
                .unwrap();
            send.reserve_capacity(body.len());
            send.send_data(body.clone(), false).unwrap();
            let trailers = fields(&[("x-checksum", "abc"), ("content-length", "1")]);
            send.send_trailers(trailers).unwrap();
            response.await.expect("an answer").status().as_u16()
        });
        assert_eq!(status, 200, "{} bytes", body.len());
    }

    let seen = backend.requests();
    assert_eq!(seen.len(), cases.len());
    for (request, (body, ..)) in seen.iter().zip(&cases) {
        assert_eq!(request.header("transfer-encoding"), Some("chunked"));
        assert_eq!(request.header("content-length"), None);
        assert_eq!(request.body.len(), body.len());
        let trailers = [("x-checksum".to_owned(), "abc".to_owned())];
        assert_eq!(request.trailers, trailers, "{} bytes", body.len());
    }
}

#[test]
fn malformed_http2_trailers_are_refused_and_never_reach_the_backend() {
    let redis = RedisServer::start();
    let backend = recording_backend();
    let hipache = unprivileged_proxy_to(&redis, "bad2.test", &backend.url());
    // A body kept whole (refused before anything was sent: 400), and one streamed (reset).
    let cases = [(b"small".to_vec(), Some("5")), (pattern(100 * 1024), None)];
    // A trailer section may not carry pseudo-header fields (RFC 9113 §8.1).
    let bad_trailers: [&[(&str, &str)]; 5] = [
        &[("x-checksum", " padded")],
        &[("connection", "close")],
        &[("te", "gzip")],
        &[(":path", "/elsewhere")],
        &[(":method", "DELETE"), ("x-checksum", "abc")],
    ];

    for (body, length) in &cases {
        for trailers in bad_trailers {
            let (mut raw, stream) = (H2Raw::open(hipache.addr()), 1);
            let mut head = vec![
                (":method", "POST"),
                (":scheme", "http"),
                (":authority", "bad2.test"),
                (":path", "/up"),
            ];
            head.extend(length.map(|n| ("content-length", n)));
            raw.headers(stream, &head, false);
            for chunk in body.chunks(16 * 1024) {
                raw.send(h2_frames::DATA, 0, stream, chunk);
            }
            let block = h2_frames::block(trailers);
            raw.send(HEADERS, END_HEADERS | END_STREAM, stream, &block);
            let ending = raw.ending(stream);
            let refused = [
                Ending::Status(400),
                Ending::Reset(h2_frames::PROTOCOL_ERROR),
            ];
            assert!(refused.contains(&ending), "{trailers:?}: {ending:?}");
        }
    }

    // Only the streamed ones reached the backend at all, and none of them whole.
    assert!(backend.requests().is_empty(), "{:?}", backend.requests());
}
