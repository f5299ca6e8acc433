//! Trailer fields across the two codings (pure): which fields may trail a message at all, an
//! HTTP/2 client's trailers written as the end of a chunked body for an HTTP/1.1 backend, and
//! a backend's trailer section (as `chunked` checked and rewrote it) as the fields of an
//! HTTP/2 trailing HEADERS frame.
//!
//! A field that frames, routes or describes one connection never goes on in a trailer
//! (RFC 9110 §6.5.1). From an HTTP/2 client, a connection-specific one makes the message
//! malformed (RFC 9113 §8.2.2), and so does a value with whitespace at either end (§8.2.1):
//! refused, not quietly dropped, as the same fields would be in a head.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::fields::Kind;

/// Trailers an HTTP/2 client may not send: the request is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MalformedTrailers;

/// Whether a field of this kind may go on in a trailer: not one that frames the message, that
/// describes this connection, or that routes it (RFC 9110 §6.5.1).
pub(crate) fn may_trail(kind: Kind) -> bool {
    !(kind.is_hop_by_hop() || matches!(kind, Kind::ContentLength | Kind::Host))
}

/// Appends the end of a chunked body that carries `trailers`: the last chunk, the fields that
/// may trail, the blank line.
pub(crate) fn last_chunk(out: &mut Vec<u8>, trailers: &HeaderMap) -> Result<(), MalformedTrailers> {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers {
        let kind = Kind::of(name.as_str().as_bytes());
        if is_connection_specific(kind, value) || !is_trimmed(value.as_bytes()) {
            return Err(MalformedTrailers);
        }
        if may_trail(kind) {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// The fields of a trailer section that `chunked::Decoder` checked and rewrote (`name: value`
/// lines, then a blank line), for an HTTP/2 trailing HEADERS frame; empty when it has none.
pub(crate) fn to_map(section: &[u8]) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    for line in section.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        // The decoder let only head-valid fields through; one HTTP/2 cannot carry is dropped.
        let name = HeaderName::from_bytes(name);
        let value = HeaderValue::from_bytes(value);
        if let (Ok(name), Ok(value)) = (name, value) {
            trailers.append(name, value);
        }
    }
    trailers
}

/// A field HTTP/2 forbids outright (RFC 9113 §8.2.2): `te` is allowed only as `trailers`.
fn is_connection_specific(kind: Kind, value: &HeaderValue) -> bool {
    match kind {
        Kind::Te => value.as_bytes() != b"trailers",
        Kind::Connection
        | Kind::KeepAlive
        | Kind::ProxyConnection
        | Kind::TransferEncoding
        | Kind::Upgrade => true,
        _ => false,
    }
}

fn is_trimmed(value: &[u8]) -> bool {
    let space = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    !space(value.first()) && !space(value.last())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn written(pairs: &[(&'static str, &'static str)]) -> Result<String, MalformedTrailers> {
        let mut out = Vec::new();
        last_chunk(&mut out, &map(pairs))?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn trailers_end_the_chunked_body_without_fields_that_may_not_trail() {
        let pairs = [
            ("x-checksum", "abc"),
            ("content-length", "5"),
            ("host", "other.test"),
            ("trailer", "x-checksum"),
            ("te", "trailers"),
            ("grpc-status", "0"),
        ];
        let out = written(&pairs).unwrap();
        assert_eq!(out, "0\r\nx-checksum: abc\r\ngrpc-status: 0\r\n\r\n");
        assert_eq!(written(&[]).unwrap(), "0\r\n\r\n");
    }

    #[test]
    fn connection_specific_trailers_and_padded_values_are_malformed() {
        for pairs in [
            [("connection", "close")],
            [("keep-alive", "5")],
            [("proxy-connection", "x")],
            [("transfer-encoding", "chunked")],
            [("upgrade", "websocket")],
            [("te", "gzip")],
            [("x-checksum", " abc")],
            [("x-checksum", "abc\t")],
        ] {
            assert_eq!(written(&pairs), Err(MalformedTrailers), "{pairs:?}");
        }
    }

    #[test]
    fn a_checked_section_becomes_trailing_fields() {
        let trailers = to_map(b"X-Checksum: abc\r\nGrpc-Status:0\r\n\r\n");
        assert_eq!(trailers.len(), 2);
        assert_eq!(trailers["x-checksum"], "abc");
        assert_eq!(trailers["grpc-status"], "0");
        assert!(to_map(b"\r\n").is_empty());
    }
}
