//! Head limits over HTTP/2: the limits of an HTTP/1 head (64 KiB, 100 fields) apply to each
//! stream, with the same 431, and a head over them costs that stream only: the other streams of
//! the connection go on. A header block past what is worth decoding to refuse one stream (over
//! 1 MiB decoded, or in more than 20 CONTINUATION frames) ends the connection with
//! ENHANCE_YOUR_CALM.

use crate::support::h2_frames::{Ending, H2Raw, ENHANCE_YOUR_CALM};
use crate::support::raw_backend::{ok, unprivileged_proxy_to, RawBackend};
use crate::support::RedisServer;

/// A head's fields, the size of the frames it is sent in, and the status it gets.
type Case<'a> = (&'a [(&'a str, &'a str)], usize, u16);

#[test]
fn an_http2_head_over_the_http1_limits_gets_431_and_the_connection_goes_on() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| peer.answer_each(|_| ok("fine")));
    let hipache = unprivileged_proxy_to(&redis, "limits2.test", &backend.url());
    let big = |len: usize| "v".repeat(len);
    let many: Vec<(String, String)> = (0..150).map(|i| (format!("x-f{i}"), "1".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let (value_100k, value_40k, value_70k) = (big(100 * 1024), big(40 * 1024), big(70 * 1024));
    // A head over 64 KiB in one field (sent in frames of 16 KiB and of 8 KiB), one just under
    // (served), and one of 150 fields.
    let cases: [Case; 5] = [
        (&[("x-big", &value_100k)], 16 * 1024, 431),
        (&[("x-big", &value_100k)], 8 * 1024, 431),
        (&[("x-big", &value_70k)], 16 * 1024, 431),
        (&[("x-big", &value_40k)], 16 * 1024, 200),
        (&many, 16 * 1024, 431),
    ];

    let mut raw = H2Raw::open(hipache.addr());
    let mut stream = 1;
    for (fields, frame, status) in cases {
        let block = H2Raw::get_block("limits2.test", fields);
        raw.large_headers(stream, &block, frame);
        assert_eq!(
            raw.ending(stream),
            Ending::Status(status),
            "{}",
            fields.len()
        );
        // The next stream on the same connection is served.
        raw.large_headers(stream + 2, &H2Raw::get_block("limits2.test", &[]), frame);
        assert_eq!(raw.ending(stream + 2), Ending::Status(200));
        stream += 4;
    }

    // Only the heads within the limits reached the backend.
    assert_eq!(backend.requests().len(), 6);
}

/// How a header block is sent, and whether only its stream is refused (431) or the connection
/// ends (GOAWAY with this code).
type Abuse<'a> = (&'a str, Vec<u8>, usize, Ending);

#[test]
fn a_header_block_past_what_a_stream_can_refuse_ends_the_connection_with_enhance_your_calm() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| peer.answer_each(|_| ok("fine")));
    let hipache = unprivileged_proxy_to(&redis, "calm2.test", &backend.url());
    let value = |len: usize| "v".repeat(len);
    let get = |fields: &[(&str, &str)]| H2Raw::get_block("calm2.test", fields);
    // One field added to the client's HPACK table (4035 bytes of its 4096), then named by its
    // index 300 times: a block of 4 KiB that decodes to 1.2 MiB.
    let mut bomb = get(&[]);
    bomb.extend_from_slice(&[0x40, 0x03]);
    bomb.extend_from_slice(b"x-b");
    bomb.extend_from_slice(&[0x7f, 0xa1, 0x1e]);
    bomb.extend_from_slice(value(4000).as_bytes());
    bomb.extend(std::iter::repeat_n(0x80 | 62, 300));
    let calm = Ending::GoAway(Some(ENHANCE_YOUR_CALM));
    let cases: [Abuse; 4] = [
        // Within the 21 frames (HEADERS and 20 CONTINUATION) and 1 MiB: that stream's 431.
        (
            "240 KiB in 16 frames",
            get(&[("x-big", &value(240 * 1024))]),
            16 * 1024,
            Ending::Status(431),
        ),
        (
            "400 KiB in 25 frames",
            get(&[("x-big", &value(400 * 1024))]),
            16 * 1024,
            calm.clone(),
        ),
        (
            "a block of 120 bytes in 1-byte frames",
            get(&[("x-small", &value(60))]),
            1,
            calm.clone(),
        ),
        ("1.2 MiB decoded from 4 KiB", bomb, 16 * 1024, calm),
    ];

    for (what, block, frame, ending) in cases {
        let mut raw = H2Raw::open(hipache.addr());
        raw.large_headers(1, &block, frame);
        assert_eq!(raw.ending(1), ending, "{what}");
        if ending == Ending::Status(431) {
            raw.large_headers(3, &get(&[]), frame);
            assert_eq!(raw.ending(3), Ending::Status(200), "after {what}");
        }
    }

    assert_eq!(backend.requests().len(), 1);
}
