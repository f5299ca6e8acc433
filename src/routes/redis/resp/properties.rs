//! Property tests of the RESP reader, bounded for `cargo test`: no panic on any bytes,
//! and every value written in the protocol is read back whole, the same, from any prefix only
//! once it is complete.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::Config;

use super::*;

fn config() -> Config {
    Config {
        cases: 1000,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Values the reader gives back as they were written (what `Other` stands for is left out).
fn value() -> impl Strategy<Value = Resp> {
    let leaf = prop_oneof![
        vec(any::<u8>(), 0..24).prop_map(Resp::Text),
        "[ -~]{0,16}".prop_map(Resp::Error),
        Just(Resp::Null),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Resp::Array),
            vec(inner, 1..4).prop_map(Resp::Push),
        ]
    })
}

fn write(value: &Resp, out: &mut Vec<u8>) {
    match value {
        Resp::Text(text) => {
            out.extend_from_slice(format!("${}\r\n", text.len()).as_bytes());
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        }
        Resp::Error(message) => out.extend_from_slice(format!("-{message}\r\n").as_bytes()),
        Resp::Null => out.extend_from_slice(b"_\r\n"),
        Resp::Array(items) | Resp::Push(items) => {
            let kind = if matches!(value, Resp::Push(_)) {
                '>'
            } else {
                '*'
            };
            out.extend_from_slice(format!("{kind}{}\r\n", items.len()).as_bytes());
            for item in items {
                write(item, out);
            }
        }
        Resp::Other => out.extend_from_slice(b":1\r\n"),
    }
}

/// Bytes that look like the protocol often: type bytes, lengths (huge ones too), CRLFs.
fn protocolish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\r\n".to_vec()),
        prop::sample::select(b"+-$=!*~>%|_:,#(".to_vec()).prop_map(|b| vec![b]),
        prop_oneof![
            Just(u64::MAX),
            Just(u64::MAX - 1),
            Just(u64::MAX / 2),
            0u64..10
        ]
        .prop_map(|n| n.to_string().into_bytes()),
        Just(b"-1".to_vec()),
        vec(any::<u8>(), 0..4),
    ];
    vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

#[test]
fn no_bytes_make_the_reader_panic() {
    proptest!(config(), |(bytes in prop_oneof![vec(any::<u8>(), 0..64), protocolish()])| {
        if let Ok(Some((_, used))) = parse(&bytes) {
            prop_assert!(used <= bytes.len());
        }
    });
}

#[test]
fn written_values_are_read_back_whole_and_only_when_complete() {
    proptest!(config(), |(first in value(), second in value())| {
        let mut bytes = Vec::new();
        write(&first, &mut bytes);
        let first_len = bytes.len();
        write(&second, &mut bytes);
        for cut in 0..first_len {
            prop_assert_eq!(parse(&bytes[..cut]), Ok(None), "prefix of {} bytes", cut);
        }
        prop_assert_eq!(parse(&bytes), Ok(Some((first, first_len))));
        let rest = parse(&bytes[first_len..]);
        prop_assert_eq!(rest, Ok(Some((second, bytes.len() - first_len))));
    });
}
