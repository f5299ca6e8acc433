//! Connection errors over HTTP/2 carry the code RFC 9113 names: a frame of the wrong length is a
//! FRAME_SIZE_ERROR (§4.2, §6), an initial window over 2^31-1 a FLOW_CONTROL_ERROR (§6.5.2),
//! whether or not a stream was served before on the connection.

use crate::support::h2_frames::{
    Ending, H2Raw, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, PING, PRIORITY, RST_STREAM, SETTINGS,
    WINDOW_UPDATE,
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

fn request(host: &str) -> [(&str, &str); 4] {
    [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", host),
        (":path", "/"),
    ]
}
