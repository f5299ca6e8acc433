//! Connection errors over HTTP/2 carry the code RFC 9113 names: a frame of the wrong length is a
//! FRAME_SIZE_ERROR (§4.2, §6), an initial window over 2^31-1 a FLOW_CONTROL_ERROR (§6.5.2),
//! whether or not a stream was served before on the connection; DATA or HEADERS on a stream the
//! client ended is a STREAM_CLOSED (§5.1); a header block HPACK cannot decode is a
//! COMPRESSION_ERROR (§4.3).

use crate::support::h2_frames::{
    block, Ending, H2Raw, COMPRESSION_ERROR, DATA, END_HEADERS, END_STREAM, FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR, HEADERS, PING, PRIORITY, RST_STREAM, SETTINGS, STREAM_CLOSED, WINDOW_UPDATE,
};
use crate::support::raw_backend::{ok, unprivileged_proxy_to, RawBackend};
use crate::support::RedisServer;

/// What is sent (a frame's type, flags, stream and payload), and the code of the GOAWAY.
type Case = (&'static str, u8, u8, u32, Vec<u8>, u32);

#[test]
fn malformed_frames_end_the_connection_with_the_rfcs_error_code() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| peer.answer_each(|_| ok("fine")));
    let hipache = unprivileged_proxy_to(&redis, "frames2.test", &backend.url());
    let cases: [Case; 8] = [
        (
            "SETTINGS of 5 bytes",
            SETTINGS,
            0,
            0,
            vec![0; 5],
            FRAME_SIZE_ERROR,
        ),
        (
            "SETTINGS ACK with a payload",
            SETTINGS,
            1,
            0,
            vec![0; 6],
            FRAME_SIZE_ERROR,
        ),
        ("PING of 7 bytes", PING, 0, 0, vec![0; 7], FRAME_SIZE_ERROR),
        ("PING of 9 bytes", PING, 0, 0, vec![0; 9], FRAME_SIZE_ERROR),
        (
            "RST_STREAM of 3 bytes",
            RST_STREAM,
            0,
            1,
            vec![0; 3],
            FRAME_SIZE_ERROR,
        ),
        (
            "PRIORITY of 4 bytes",
            PRIORITY,
            0,
            3,
            vec![0; 4],
            FRAME_SIZE_ERROR,
        ),
        (
            "WINDOW_UPDATE of 5 bytes",
            WINDOW_UPDATE,
            0,
            0,
            vec![0; 5],
            FRAME_SIZE_ERROR,
        ),
        (
            "INITIAL_WINDOW_SIZE 2^31",
            SETTINGS,
            0,
            0,
            vec![0, 4, 0x80, 0, 0, 0],
            FLOW_CONTROL_ERROR,
        ),
    ];

    for served_first in [false, true] {
        for (what, kind, flags, stream, payload, code) in &cases {
            let mut raw = H2Raw::open(hipache.addr());
            if served_first {
                raw.headers(1, &request("frames2.test"), true);
                assert_eq!(raw.ending(1), Ending::Status(200), "{what}");
            }
            raw.send(*kind, *flags, *stream, payload);
            assert_eq!(
                raw.goaway(),
                Some(*code),
                "{what}, served first: {served_first}"
            );
        }
    }

    // A connection that breaks no rule is served as before.
    let mut raw = H2Raw::open(hipache.addr());
    raw.send(PING, 0, 0, &[0; 8]);
    raw.send(SETTINGS, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]);
    raw.headers(1, &request("frames2.test"), true);
    assert_eq!(raw.ending(1), Ending::Status(200));
}

#[test]
fn data_or_headers_on_a_stream_the_client_ended_are_stream_closed() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| peer.answer_each(|_| ok("fine")));
    let hipache = unprivileged_proxy_to(&redis, "ended2.test", &backend.url());
    let get = block(&request("ended2.test"));
    let trailers = block(&[("x-late", "1")]);
    let cases: [(&str, u8, u8, &[u8]); 3] = [
        ("DATA", DATA, 0, b"late"),
        ("DATA ending it again", DATA, END_STREAM, b"late"),
        ("HEADERS", HEADERS, END_HEADERS | END_STREAM, &trailers),
    ];

    for (what, kind, flags, payload) in cases {
        // Half-closed: the frame comes right behind the request, before any answer.
        let mut raw = H2Raw::open(hipache.addr());
        raw.send(HEADERS, END_HEADERS | END_STREAM, 1, &get);
        raw.send(kind, flags, 1, payload);
        assert_eq!(
            raw.goaway(),
            Some(STREAM_CLOSED),
            "{what} while half-closed"
        );

        // Closed: the stream was answered first.
        let mut raw = H2Raw::open(hipache.addr());
        raw.send(HEADERS, END_HEADERS | END_STREAM, 1, &get);
        assert_eq!(raw.ending(1), Ending::Status(200), "{what}");
        raw.send(kind, flags, 1, payload);
        assert_eq!(raw.goaway(), Some(STREAM_CLOSED), "{what} once closed");
    }
}

#[test]
fn a_header_block_hpack_cannot_decode_is_a_compression_error() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| peer.answer_each(|_| ok("fine")));
    let hipache = unprivileged_proxy_to(&redis, "hpack2.test", &backend.url());
    let get = block(&request("hpack2.test"));
    let cases: [(&str, &[u8]); 5] = [
        ("an index past both tables", &[0x80 | 70]),
        ("index 0", &[0x80]),
        ("a literal name longer than the block", &[0x00, 0x05, b'a']),
        // 8000, over the 4096 of the SETTINGS (RFC 7541 §6.3).
        ("a table size update over the limit", &[0x3f, 0xa1, 0x3e]),
        // Eight 1 bits: padding longer than 7 bits (RFC 7541 §5.2).
        ("a bad Huffman code", &[0x00, 0x81, 0xff, 0x01, b'x']),
    ];

    for served_first in [false, true] {
        for (what, bad) in cases {
            let mut raw = H2Raw::open(hipache.addr());
            if served_first {
                raw.send(HEADERS, END_HEADERS | END_STREAM, 1, &get);
                assert_eq!(raw.ending(1), Ending::Status(200), "{what}");
            }
            raw.send(HEADERS, END_HEADERS | END_STREAM, 3, bad);
            let code = raw.goaway();
            assert_eq!(
                code,
                Some(COMPRESSION_ERROR),
                "{what}, served first: {served_first}"
            );
        }
    }
    assert_eq!(backend.requests().len(), cases.len());
}

fn request(host: &str) -> [(&str, &str); 4] {
    [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", host),
        (":path", "/"),
    ]
}
