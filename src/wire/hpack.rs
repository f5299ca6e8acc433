//! An answer's header fields encoded for HTTP/2 straight from the backend's parsed head, as
//! nginx and HAProxy encode theirs: each field an HPACK literal "without indexing" (RFC 7541
//! §6.2.2), its name an index into the static table where the table has it, its name and value
//! written raw (no Huffman coding). No field is added to the connection's dynamic table, so a
//! block depends on no connection state: a stream's task encodes it, and `h2` writes it after
//! `:status` as it is (`SendResponse::send_encoded_response`, a change of ours to the crate).
//!
//! What this saves against a `HeaderMap` handed to `h2`: a name parsed and a value copied per
//! field, the crate's check of the map, and its indexing and Huffman coding of every field
//! (callgrind, benches/README.md "HTTP/2"). What it costs: a repeated field takes its bytes
//! on every answer, where the dynamic table would have sent an index the second time.

use bytes::{BufMut, Bytes, BytesMut};

/// Header fields encoded for one HTTP/2 answer, in the order pushed.
pub(crate) struct FieldBlock {
    encoded: BytesMut,
    has_date: bool,
}

impl FieldBlock {
    /// An empty block with room for about `bytes` of fields.
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Self {
            encoded: BytesMut::with_capacity(bytes),
            has_date: false,
        }
    }

    /// Appends a field of a parsed head, its name lowercased as HTTP/2 requires (RFC 9113
    /// §8.2.1). The HTTP/1 parser already held the name to a token and the value to what
    /// HTTP/2 carries (no control character but tab), so neither is checked again here; the
    /// caller keeps connection-specific fields out (RFC 9113 §8.2.2).
    pub(crate) fn push(&mut self, name: &[u8], value: &[u8]) {
        debug_assert!(!name.is_empty() && name.iter().all(|&b| is_token(b)));
        debug_assert!(is_field_value(value));
        match static_name_index(name) {
            Some(index) => {
                self.has_date |= index == DATE_INDEX;
                put_integer(&mut self.encoded, 4, 0x00, index);
            }
            None => {
                self.encoded.put_u8(0x00);
                put_integer(&mut self.encoded, 7, 0x00, name.len());
                let start = self.encoded.len();
                self.encoded.extend_from_slice(name);
                self.encoded[start..].make_ascii_lowercase();
            }
        }
        put_integer(&mut self.encoded, 7, 0x00, value.len());
        self.encoded.extend_from_slice(value);
    }

    /// Appends a field of our own making, left out when its value is not one HTTP/2 carries
    /// (as the `http` crate's `HeaderValue` refuses it).
    pub(crate) fn push_checked(&mut self, name: &'static [u8], value: &[u8]) {
        if is_field_value(value) {
            self.push(name, value);
        }
    }

    /// Whether a `date` field was pushed.
    pub(crate) fn has_date(&self) -> bool {
        self.has_date
    }

    /// The encoded block, for `h2`.
    pub(crate) fn freeze(self) -> Bytes {
        self.encoded.freeze()
    }
}

/// The static table's index of `date` (RFC 7541 Appendix A).
const DATE_INDEX: usize = 33;

/// The static table's index of `name` (compared ASCII case-insensitively), for the names an
/// answer may carry (RFC 7541 Appendix A; request-only names are left out).
fn static_name_index(name: &[u8]) -> Option<usize> {
    // Dispatch on length first, as most names are checked against one or two candidates.
    let candidates: &[(&[u8], usize)] = match name.len() {
        3 => &[(b"age", 21), (b"via", 60)],
        4 => &[(b"date", 33), (b"etag", 34), (b"link", 45), (b"vary", 59)],
        5 => &[(b"allow", 22)],
        6 => &[(b"server", 54)],
        7 => &[(b"expires", 36), (b"refresh", 52)],
        8 => &[(b"location", 46)],
        10 => &[(b"set-cookie", 55)],
        11 => &[(b"retry-after", 53)],
        12 => &[(b"content-type", 31)],
        13 => &[
            (b"accept-ranges", 18),
            (b"cache-control", 24),
            (b"content-range", 30),
            (b"last-modified", 44),
        ],
        14 => &[(b"content-length", 28)],
        16 => &[
            (b"content-encoding", 26),
            (b"content-language", 27),
            (b"content-location", 29),
            (b"www-authenticate", 61),
        ],
        18 => &[(b"proxy-authenticate", 48)],
        19 => &[(b"content-disposition", 25)],
        25 => &[(b"strict-transport-security", 56)],
        27 => &[(b"access-control-allow-origin", 20)],
        _ => return None,
    };
    candidates
        .iter()
        .find(|(known, _)| name.eq_ignore_ascii_case(known))
        .map(|&(_, index)| index)
}

/// An HPACK integer with an `prefix_bits`-bit prefix, the byte's other bits `first`
/// (RFC 7541 §5.1).
fn put_integer(out: &mut BytesMut, prefix_bits: u32, first: u8, value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        // cannot truncate: value < max <= 255
        out.put_u8(first | value as u8);
        return;
    }
    out.put_u8(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.put_u8((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.put_u8(rest as u8);
}

/// A `tchar` (RFC 9110 §5.6.2).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A value HTTP/2 carries as it is: visible bytes, spaces and tabs, obs-text.
fn is_field_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integer(prefix_bits: u32, value: usize) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_integer(&mut out, prefix_bits, 0, value);
        out.to_vec()
    }

    #[test]
    fn integers_are_encoded_as_rfc_7541_shows() {
        // RFC 7541 C.1.1 to C.1.3.
        assert_eq!(integer(5, 10), [0x0a]);
        assert_eq!(integer(5, 1337), [0x1f, 0x9a, 0x0a]);
        assert_eq!(integer(8, 42), [0x2a]);
        // At the prefix's limit, a zero continuation byte follows.
        assert_eq!(integer(4, 15), [0x0f, 0x00]);
        assert_eq!(integer(7, 127), [0x7f, 0x00]);
        assert_eq!(integer(7, 128), [0x7f, 0x01]);
    }

    #[test]
    fn a_known_name_indexes_the_static_table_and_others_go_lowercased() {
        let mut block = FieldBlock::with_capacity(64);
        block.push(b"Content-Type", b"text/plain");
        block.push(b"X-Custom", b"a");
        assert!(!block.has_date());
        block.push(b"DATE", b"Tue, 08 Dec 2026 04:00:00 GMT");
        assert!(block.has_date());
        let bytes = block.freeze();
        let mut expected = vec![0x0f, 0x10, 10];
        expected.extend_from_slice(b"text/plain");
        expected.extend_from_slice(&[0x00, 8]);
        expected.extend_from_slice(b"x-custom");
        expected.extend_from_slice(&[1, b'a']);
        expected.extend_from_slice(&[0x0f, 0x12, 29]);
        expected.extend_from_slice(b"Tue, 08 Dec 2026 04:00:00 GMT");
        assert_eq!(&bytes[..], &expected[..]);
    }

    #[test]
    fn values_of_our_own_http2_cannot_carry_are_left_out() {
        let mut block = FieldBlock::with_capacity(16);
        block.push_checked(b"set-cookie", b"line\r\nbreak");
        block.push_checked(b"set-cookie", b"a\0b");
        block.push_checked(b"set-cookie", b"a\x7fb");
        assert!(block.freeze().is_empty());
        let mut block = FieldBlock::with_capacity(16);
        block.push_checked(b"set-cookie", b"a=\tb\x80");
        assert!(!block.freeze().is_empty());
    }

    #[test]
    fn every_indexed_name_is_the_static_tables() {
        // The RFC 7541 Appendix A entries of the names above.
        let table: &[(&str, usize)] = &[
            ("accept-ranges", 18),
            ("access-control-allow-origin", 20),
            ("age", 21),
            ("allow", 22),
            ("cache-control", 24),
            ("content-disposition", 25),
            ("content-encoding", 26),
            ("content-language", 27),
            ("content-length", 28),
            ("content-location", 29),
            ("content-range", 30),
            ("content-type", 31),
            ("date", 33),
            ("etag", 34),
            ("expires", 36),
            ("last-modified", 44),
            ("link", 45),
            ("location", 46),
            ("proxy-authenticate", 48),
            ("refresh", 52),
            ("retry-after", 53),
            ("server", 54),
            ("set-cookie", 55),
            ("strict-transport-security", 56),
            ("vary", 59),
            ("via", 60),
            ("www-authenticate", 61),
        ];
        for &(name, index) in table {
            assert_eq!(static_name_index(name.as_bytes()), Some(index), "{name}");
            let upper = name.to_ascii_uppercase();
            assert_eq!(static_name_index(upper.as_bytes()), Some(index), "{upper}");
        }
        assert_eq!(static_name_index(b"x-served-by"), None);
    }
}
