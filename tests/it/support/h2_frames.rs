//! A raw HTTP/2 client (h2c prior knowledge) for cases a conforming client library will not
//! produce: frames written byte for byte, frames read back as they came. Header blocks are
//! written as HPACK literals without indexing and without Huffman coding; of a response's
//! block only `:status` is read, which is all the cases need (the client announces a header
//! table of 0, so the proxy indexes nothing).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::raw_backend::IO_TIMEOUT;

pub(crate) const DATA: u8 = 0x0;
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const PRIORITY: u8 = 0x2;
pub(crate) const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const PING: u8 = 0x6;
pub(crate) const GOAWAY: u8 = 0x7;
pub(crate) const WINDOW_UPDATE: u8 = 0x8;
pub(crate) const CONTINUATION: u8 = 0x9;

pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;

/// Error codes (RFC 9113 §7).
pub(crate) const PROTOCOL_ERROR: u32 = 0x1;
pub(crate) const STREAM_CLOSED: u32 = 0x5;
pub(crate) const FLOW_CONTROL_ERROR: u32 = 0x3;
pub(crate) const FRAME_SIZE_ERROR: u32 = 0x6;
pub(crate) const COMPRESSION_ERROR: u32 = 0x9;
pub(crate) const ENHANCE_YOUR_CALM: u32 = 0xb;

#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream: u32,
    pub(crate) payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or a GOAWAY.
    pub(crate) fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        let bytes = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    }
}

/// How a stream ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// A response head with this `:status`.
    Status(u16),
    /// A RST_STREAM with this code.
    Reset(u32),
    /// A GOAWAY with this code, or the connection closed (`None`), before either.
    GoAway(Option<u32>),
}

pub(crate) struct H2Raw {
    stream: TcpStream,
}

impl H2Raw {
    /// Connects, sends the preface and our SETTINGS (header table 0), and acknowledges the
    /// proxy's SETTINGS.
    pub(crate) fn open(addr: SocketAddr) -> H2Raw {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut raw = H2Raw { stream };
        raw.write_bytes(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        // SETTINGS_HEADER_TABLE_SIZE = 0.
        raw.send(SETTINGS, 0, 0, &[0, 1, 0, 0, 0, 0]);
        loop {
            let frame = raw.read().expect("the proxy's SETTINGS");
            if frame.kind == SETTINGS && frame.flags & ACK == 0 {
                raw.send(SETTINGS, ACK, 0, &[]);
                return raw;
            }
        }
    }

    pub(crate) fn write_bytes(&mut self, bytes: &[u8]) {
        // The proxy may have closed already: what it answered is what the test reads.
        let _ = self.stream.write_all(bytes);
    }

    pub(crate) fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let mut frame = Vec::with_capacity(9 + payload.len());
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        frame.extend_from_slice(&[kind, flags]);
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        self.write_bytes(&frame);
    }

    /// A HEADERS frame (END_HEADERS set) carrying `fields`, pseudo ones included.
    pub(crate) fn headers(&mut self, stream: u32, fields: &[(&str, &str)], end_stream: bool) {
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        self.send(HEADERS, flags, stream, &block(fields));
    }

    /// A header block too large for one frame: a HEADERS frame and CONTINUATION frames of
    /// at most `frame` bytes each, the last one ending the headers.
    pub(crate) fn large_headers(&mut self, stream: u32, block: &[u8], frame: usize) {
        let mut pieces = block.chunks(frame).peekable();
        let mut kind = HEADERS;
        let mut flags = END_STREAM;
        while let Some(piece) = pieces.next() {
            let last = if pieces.peek().is_none() {
                END_HEADERS
            } else {
                0
            };
            self.send(kind, flags | last, stream, piece);
            (kind, flags) = (CONTINUATION, 0);
        }
    }

    /// `GET /` for `host` on `stream` with `extra` fields, no body: its header block.
    pub(crate) fn get_block(host: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut fields = vec![
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", host),
            (":path", "/"),
        ];
        fields.extend_from_slice(extra);
        block(&fields)
    }

    /// The next frame; `None` once the proxy closed the connection (or went quiet).
    pub(crate) fn read(&mut self) -> Option<Frame> {
        let mut head = [0u8; 9];
        self.stream.read_exact(&mut head).ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; len];
        self.stream.read_exact(&mut payload).ok()?;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        Some(Frame {
            kind: head[3],
            flags: head[4],
            stream,
            payload,
        })
    }

    /// Reads until `stream` gets a response head or a reset, or the connection ends.
    pub(crate) fn ending(&mut self, stream: u32) -> Ending {
        loop {
            let Some(frame) = self.read() else {
                return Ending::GoAway(None);
            };
            match frame.kind {
                GOAWAY => return Ending::GoAway(frame.error_code()),
                RST_STREAM if frame.stream == stream => {
                    return Ending::Reset(frame.error_code().unwrap_or_default())
                }
                HEADERS if frame.stream == stream => {
                    let status = status_of(&frame.payload).expect("a :status the reader knows");
                    if status >= 200 {
                        return Ending::Status(status);
                    }
                }
                PING if frame.flags & ACK == 0 => self.send(PING, ACK, 0, &frame.payload),
                _ => {}
            }
        }
    }
}

impl H2Raw {
    /// Reads until the proxy sends a GOAWAY (its code) or closes the connection (`None`).
    pub(crate) fn goaway(&mut self) -> Option<u32> {
        loop {
            let frame = self.read()?;
            if frame.kind == GOAWAY {
                return frame.error_code();
            }
        }
    }
}

/// A header block of literals without indexing, new names, no Huffman (RFC 7541 §6.2.2).
pub(crate) fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        integer(&mut out, 7, 0, name.len());
        out.extend_from_slice(name.as_bytes());
        integer(&mut out, 7, 0, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// An HPACK integer with an `prefix`-bit prefix, `flags` in the bits above it (RFC 7541 §5.1).
fn integer(out: &mut Vec<u8>, prefix: u32, flags: u8, mut value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// The `:status` at the start of a response header block: a static table entry, or a literal
/// with the `:status` name whose value is plain or Huffman-coded digits.
fn status_of(block: &[u8]) -> Option<u16> {
    // Dynamic table size updates (001xxxxx) may come first: ours is 0, one byte each.
    let at = block.iter().take_while(|&&b| b & 0xe0 == 0x20).count();
    let first = *block.get(at)?;
    if first & 0x80 != 0 {
        let statuses = [
            (8, 200),
            (9, 204),
            (10, 206),
            (11, 304),
            (12, 400),
            (13, 404),
        ];
        let index = first & 0x7f;
        return statuses
            .iter()
            .chain(&[(14, 500)])
            .find(|(i, _)| *i == index)
            .map(|(_, s)| *s);
    }
    // A literal whose name is static entry 8..14 (`:status`), with or without indexing.
    let name = if first & 0x40 != 0 {
        first & 0x3f
    } else {
        first & 0x0f
    };
    if !(8..=14).contains(&name) {
        return None;
    }
    let length = *block.get(at + 1)?;
    let value = block.get(at + 2..at + 2 + (length & 0x7f) as usize)?;
    let digits = match length & 0x80 {
        0 => String::from_utf8(value.to_vec()).ok()?,
        _ => huffman_digits(value)?,
    };
    digits.parse().ok()
}

/// Huffman-coded digits (RFC 7541 Appendix B: `0`-`2` in 5 bits, `3`-`9` in 6).
fn huffman_digits(bytes: &[u8]) -> Option<String> {
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    let mut digits = String::new();
    let mut at = 0;
    while digits.len() < 3 {
        let code = |n: usize| -> Option<u8> {
            let slice = bits.get(at..at + n)?;
            Some(slice.iter().fold(0, |c, b| c << 1 | b))
        };
        match code(5)? {
            c @ 0..=2 => {
                digits.push(char::from(b'0' + c));
                at += 5;
            }
            _ => {
                let c = code(6)?;
                (0b011001..=0b011111).contains(&c).then_some(())?;
                digits.push(char::from(b'3' + (c - 0b011001)));
                at += 6;
            }
        }
    }
    Some(digits)
}

#[test]
fn statuses_are_read_from_static_entries_and_huffman_literals() {
    assert_eq!(status_of(&[0x88]), Some(200));
    assert_eq!(status_of(&[0x20, 0x8c]), Some(400));
    // `431`: 011010 011001 00001, padded with ones.
    assert_eq!(status_of(&[0x08, 0x83, 0x69, 0x90, 0xff]), Some(431));
    assert_eq!(status_of(&[0x48, 0x03, b'5', b'0', b'2']), Some(502));
}
