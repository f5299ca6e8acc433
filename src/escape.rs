//! Text that an outsider or Redis wrote, made safe to show (pure): in an access log line, a
//! process log field, or an operator's terminal.
//!
//! One rule everywhere, nginx's for log fields: `"`, `\`, bytes below 0x20 and bytes from 0x7f
//! up are written `\xHH`. A line then cannot be split or forged by a newline, a field cannot be
//! closed early by a quote, and a terminal never receives a control sequence. Ordinary printable
//! ASCII is written unchanged, so Hipache's lines stay byte for byte the same.

use std::fmt;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Whether a byte is written `\xHH`.
const fn is_escaped(byte: u8) -> bool {
    byte < 0x20 || byte >= 0x7f || byte == b'"' || byte == b'\\'
}

fn hex(byte: u8) -> [u8; 4] {
    [
        b'\\',
        b'x',
        HEX[usize::from(byte >> 4)],
        HEX[usize::from(byte & 0xf)],
    ]
}

/// Appends `field` to `out`, escaped.
pub(crate) fn log_field(out: &mut Vec<u8>, field: &[u8]) {
    let mut rest = field;
    while let Some(at) = rest.iter().position(|&byte| is_escaped(byte)) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(&hex(rest[at]));
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
}

/// Displays its text escaped: for tracing fields (`host = %Escaped(&host)`) and for what the
/// route commands print.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Escaped<'a>(pub(crate) &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0.as_bytes();
        while let Some(at) = rest.iter().position(|&byte| is_escaped(byte)) {
            f.write_str(ascii_text(&rest[..at]))?;
            f.write_str(ascii_text(&hex(rest[at])))?;
            rest = &rest[at + 1..];
        }
        f.write_str(ascii_text(rest))
    }
}

/// `text` as a `str`: it holds only bytes that are not escaped, all printable ASCII.
fn ascii_text(text: &[u8]) -> &str {
    std::str::from_utf8(text).unwrap_or_default()
}

/// Displays its text with only control characters (C0, DEL, C1) written `\xHH`, for a message
/// whose own quotes must stay, such as an error chain printed on a terminal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Controls<'a>(pub(crate) &'a str);

impl fmt::Display for Controls<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some((at, c)) = rest.char_indices().find(|(_, c)| c.is_control()) {
            f.write_str(&rest[..at])?;
            let mut bytes = [0; 4];
            for &byte in c.encode_utf8(&mut bytes).as_bytes() {
                f.write_str(ascii_text(&hex(byte)))?;
            }
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

/// `text` escaped, as an owned string (for column widths and joins).
pub(crate) fn escaped(text: &str) -> String {
    Escaped(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        log_field(&mut out, bytes);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn printable_ascii_is_unchanged() {
        let all: String = (0x20u8..0x7f)
            .filter(|&b| b != b'"' && b != b'\\')
            .map(char::from)
            .collect();
        assert_eq!(field(all.as_bytes()), all);
        assert_eq!(escaped(&all), all);
        assert_eq!(field(b""), "");
    }

    #[test]
    fn controls_quotes_backslashes_and_high_bytes_are_hex_as_nginx_writes_them() {
        assert_eq!(
            field(b"a\nb\r\"c\\\x1b[31m\x7f\xc3\xa9"),
            "a\\x0Ab\\x0D\\x22c\\x5C\\x1B[31m\\x7F\\xC3\\xA9"
        );
        assert_eq!(
            escaped("id\n1.2.3.4 - - \"GET\" é"),
            "id\\x0A1.2.3.4 - - \\x22GET\\x22 \\xC3\\xA9"
        );
    }

    #[test]
    fn controls_alone_keeps_quotes_and_letters() {
        assert_eq!(
            Controls("\"é\"\r\n\x1b[2J\u{9b}").to_string(),
            "\"é\"\\x0D\\x0A\\x1B[2J\\xC2\\x9B"
        );
    }
}
