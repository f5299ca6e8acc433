//! Head limits over HTTP/2: the limits of an HTTP/1 head (64 KiB, 100 fields) apply to each
//! stream, with the same 431, and a head over them costs that stream only: the other streams of
//! the connection go on.

use crate::support::h2_frames::{Ending, H2Raw};
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
