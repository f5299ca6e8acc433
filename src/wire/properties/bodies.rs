//! Chunked bodies and field values: no panic, split invariance, re-encoding read back.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::config;
use crate::wire::chunked::Decoder;
use crate::wire::fields;

/// Feeds `body` to a decoder split at `cuts`; returns the payload, what goes on, and the
/// bytes consumed, or `None` if refused or unfinished.
fn decode(body: &[u8], cuts: &[usize]) -> Option<(Vec<u8>, Vec<u8>, usize)> {
    let mut decoder = Decoder::default();
    let (mut payload, mut sent, mut at) = (Vec::new(), Vec::new(), 0);
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    ends.push(body.len());
    ends.sort_unstable();
    for end in ends {
        let piece = &body[at..end.max(at)];
        let progress = decoder
            .advance(piece, |r| payload.extend_from_slice(&piece[r]))
            .ok()?;
        sent.extend_from_slice(&piece[..progress.pass]);
        at += progress.consumed;
        if progress.done {
            sent.extend_from_slice(decoder.trailer_section());
            return Some((payload, sent, at));
        }
    }
    None
}

const EXTENSIONS: &[&str] = &["", "", ";a=b", " ;x", ";q=\"v w\"", "\t", ";a;b=c"];
const TRAILER_NAMES: &[&str] = &[
    "X-T",
    "Content-Length",
    "Transfer-Encoding",
    "Host",
    "Trailer",
    "Connection",
    "X-Checksum",
];

fn chunked_body() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let chunk = (vec(any::<u8>(), 1..40), select(EXTENSIONS), any::<bool>());
    let trailer = (
        select(TRAILER_NAMES),
        select(&["1", "chunked", "a b", ""][..]),
    );
    (vec(chunk, 0..6), vec(trailer, 0..4)).prop_map(|(chunks, trailers)| {
        let (mut body, mut payload) = (Vec::new(), Vec::new());
        for (data, extension, upper) in chunks {
            let size = match upper {
                true => format!("0{:X}", data.len()),
                false => format!("{:x}", data.len()),
            };
            body.extend(
                [
                    size.as_bytes(),
                    extension.as_bytes(),
                    b"\r\n",
                    &data,
                    b"\r\n",
                ]
                .concat(),
            );
            payload.extend(data);
        }
        body.extend_from_slice(b"0\r\n");
        for (name, value) in trailers {
            body.extend(format!("{name}: {value}\r\n").into_bytes());
        }
        body.extend_from_slice(b"\r\n");
        (body, payload)
    })
}

#[test]
fn chunked_bodies_decode_the_same_at_any_split_and_pass_on_as_the_same_message() {
    proptest!(config(1000), |((body, payload) in chunked_body(), cuts in vec(any::<usize>(), 0..6), tail in vec(any::<u8>(), 0..8))| {
        let input = [&body[..], &tail].concat();
        let decoded = decode(&input, &cuts);
        prop_assert!(decoded.is_some(), "{:?}", String::from_utf8_lossy(&body));
        let (got, sent, consumed) = decoded.unwrap_or_default();
        prop_assert_eq!(&got, &payload);
        prop_assert_eq!(consumed, body.len());
        // What goes on is one chunked body with the same payload, its trailers free of framing
        // fields, and passing it on again changes nothing.
        let again = decode(&sent, &[]);
        prop_assert_eq!(again.clone(), Some((payload, sent.clone(), sent.len())));
        let trailers = String::from_utf8_lossy(&sent).to_ascii_lowercase();
        let trailers = &trailers[trailers.rfind("\r\n0\r\n").map_or(0, |i| i + 5)..];
        for framing in ["content-length", "transfer-encoding", "host:", "trailer:", "connection"] {
            prop_assert!(!trailers.contains(framing), "{}", trailers);
        }
    });
}

#[test]
fn chunked_decoder_survives_arbitrary_bytes_and_ignores_splits() {
    let alphabet = select(&b"0123456789abcdefABCDEF;= \t\r\n\"xX:-\x00"[..]);
    proptest!(config(1000), |(bytes in prop_oneof![vec(any::<u8>(), 0..200), vec(alphabet, 0..200)], cuts in vec(any::<usize>(), 0..8))| {
        let whole = decode(&bytes, &[]);
        let split = decode(&bytes, &cuts);
        prop_assert_eq!(whole, split);
    });
}

#[test]
fn content_lengths_are_decimal_numbers_below_2_pow_63() {
    proptest!(config(1000), |(value in prop_oneof![vec(any::<u8>(), 0..24), "[ \t]?[0-9]{1,21}[ \t]?".prop_map(String::into_bytes)])| {
        let expected = std::str::from_utf8(&value).ok()
            .map(|v| v.trim_matches(|c: char| c.is_ascii_whitespace()))
            // Up to 19 digits: a longer value (leading zeros) is refused, deliberately.
            .filter(|v| !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<i64>().ok())
            .map(|n| n as u64);
        prop_assert_eq!(fields::content_length(&value), expected);
    });
}

#[test]
fn connection_tokens_survive_arbitrary_bytes() {
    proptest!(config(500), |(value in vec(any::<u8>(), 0..64))| {
        let mut tokens = fields::ConnectionTokens::default();
        tokens.add(&value);
        let count = fields::connection_tokens(&value).count();
        prop_assert!(count <= value.len());
        if count == 0 {
            prop_assert_eq!(tokens, fields::ConnectionTokens::default());
        }
    });
}
