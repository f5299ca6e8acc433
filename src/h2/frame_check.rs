//! The frame checks whose error code RFC 9113 names and the `h2` crate answers otherwise: it
//! ends the connection with PROTOCOL_ERROR for a SETTINGS, PING, RST_STREAM, PRIORITY or
//! WINDOW_UPDATE frame of the wrong length (RFC 9113 §6: FRAME_SIZE_ERROR), for an
//! `INITIAL_WINDOW_SIZE` over 2^31-1 (§6.5.2: FLOW_CONTROL_ERROR), and for DATA or HEADERS on a
//! stream the client already ended (§5.1: STREAM_CLOSED; a stream error while the stream is
//! half-closed, which §5.4.1 lets an endpoint treat as a connection error, and a connection
//! error once it is closed). A client's bytes pass through
//! [`FrameCheck`] on their way to `h2`, which reads the frame heads (and the entries of SETTINGS
//! frames) as they go by: such a frame is held back whole, and the connection is ended with a
//! GOAWAY carrying the RFC's code, written between two of `h2`'s frames. Every other frame, and
//! every other decision, stays `h2`'s.
//!
//! Only the 9-byte frame heads are read; payloads are skipped, but for SETTINGS (at most one
//! frame size, 16 KiB, of 6-byte entries), so the cost is a few comparisons per frame, and a
//! scan of the streams the client ended last (`ENDED_STREAMS`, above the 200 that may be open
//! at once) per DATA or HEADERS frame. A frame on a stream ended before those is left to `h2`,
//! which resets it with STREAM_CLOSED once it forgot the stream.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client's connection preface, which comes before its first frame.
const PREFACE_BYTES: usize = 24;
const HEAD_BYTES: usize = 9;

/// How many of the streams a client ended last are remembered.
const ENDED_STREAMS: usize = 256;

const DATA: u8 = 0x0;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const HEADERS: u8 = 0x1;
const ACK: u8 = 0x1;
const END_STREAM: u8 = 0x1;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Error codes (RFC 9113 §7).
const FLOW_CONTROL_ERROR: u32 = 0x3;
const STREAM_CLOSED: u32 = 0x5;
const FRAME_SIZE_ERROR: u32 = 0x6;

/// Where a stream of frames stands: in the preface, in a frame's head, or in its payload.
#[derive(Debug, Default)]
struct Frames {
    preface_left: usize,
    head: [u8; HEAD_BYTES],
    head_len: usize,
    kind: u8,
    payload_left: usize,
    /// A SETTINGS entry read so far.
    entry: [u8; 6],
    entry_len: usize,
    /// The highest stream a client's HEADERS frame opened, for the GOAWAY.
    last_stream: u32,
    /// The streams the client ended last (END_STREAM seen), oldest first.
    ended: VecDeque<u32>,
}

impl Frames {
    fn client() -> Self {
        Self {
            preface_left: PREFACE_BYTES,
            ..Self::default()
        }
    }

    fn at_boundary(&self) -> bool {
        self.head_len == 0 && self.payload_left == 0
    }

    /// Walks `bytes` (the next ones of the stream): the index of the byte that completes a frame
    /// head or SETTINGS entry the RFC refuses, with its error code.
    fn walk(&mut self, bytes: &[u8]) -> Option<(usize, u32)> {
        let mut i = 0;
        while i < bytes.len() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len() - i);
                self.preface_left -= n;
                i += n;
            } else if self.payload_left == 0 {
                self.head[self.head_len] = bytes[i];
                self.head_len += 1;
                if self.head_len == HEAD_BYTES {
                    self.head_len = 0;
                    if let Some(code) = self.begin_frame() {
                        return Some((i, code));
                    }
                }
                i += 1;
            } else if self.kind == SETTINGS {
                self.entry[self.entry_len] = bytes[i];
                self.entry_len += 1;
                self.payload_left -= 1;
                if self.entry_len == self.entry.len() {
                    self.entry_len = 0;
                    if let Some(code) = setting_refused(&self.entry) {
                        return Some((i, code));
                    }
                }
                i += 1;
            } else {
                let n = self.payload_left.min(bytes.len() - i);
                self.payload_left -= n;
                i += n;
            }
        }
        None
    }

    /// The head just read: its payload is next, or the code it is refused with.
    fn begin_frame(&mut self) -> Option<u32> {
        let head = &self.head;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & MAX_WINDOW;
        let wrong_length = match kind {
            SETTINGS => len % 6 != 0 || (flags & ACK != 0 && len != 0),
            PING => len != 8,
            RST_STREAM | WINDOW_UPDATE => len != 4,
            PRIORITY => len != 5,
            _ => false,
        };
        if wrong_length {
            return Some(FRAME_SIZE_ERROR);
        }
        if matches!(kind, DATA | HEADERS) && stream % 2 == 1 {
            if self.ended.contains(&stream) {
                return Some(STREAM_CLOSED);
            }
            if flags & END_STREAM != 0 {
                if self.ended.len() == ENDED_STREAMS {
                    self.ended.pop_front();
                }
                self.ended.push_back(stream);
            }
        }
        if kind == HEADERS && stream % 2 == 1 {
            self.last_stream = self.last_stream.max(stream);
        }
        self.kind = kind;
        self.payload_left = len;
        self.entry_len = 0;
        None
    }

    /// Walks bytes `h2` wrote (frames only: a server sends no preface of bytes).
    fn walk_out(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            if self.payload_left == 0 {
                self.head[self.head_len] = bytes[i];
                self.head_len += 1;
                if self.head_len == HEAD_BYTES {
                    self.head_len = 0;
                    let head = &self.head;
                    self.payload_left = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                }
                i += 1;
            } else {
                let n = self.payload_left.min(bytes.len() - i);
                self.payload_left -= n;
                i += n;
            }
        }
    }
}

fn setting_refused(entry: &[u8; 6]) -> Option<u32> {
    let id = u16::from_be_bytes([entry[0], entry[1]]);
    let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
    (id == SETTINGS_INITIAL_WINDOW_SIZE && value > MAX_WINDOW).then_some(FLOW_CONTROL_ERROR)
}

/// A GOAWAY frame: no stream past `last_stream` was processed, and why.
fn goaway(last_stream: u32, code: u32) -> [u8; 17] {
    let mut frame = [0u8; 17];
    frame[..HEAD_BYTES].copy_from_slice(&[0, 0, 8, GOAWAY, 0, 0, 0, 0, 0]);
    frame[9..13].copy_from_slice(&last_stream.to_be_bytes());
    frame[13..].copy_from_slice(&code.to_be_bytes());
    frame
}

enum Verdict {
    Passing,
    /// A frame was refused: the GOAWAY goes out once `h2` is between frames.
    Refusing {
        frame: [u8; 17],
        written: usize,
    },
    /// Our GOAWAY went (or could not): `h2` reads the end, and what it writes goes nowhere.
    Ended,
}

/// A client connection's bytes on their way to `h2`, checked frame by frame.
pub(super) struct FrameCheck<I> {
    io: I,
    inbound: Frames,
    outbound: Frames,
    verdict: Verdict,
}

impl<I> FrameCheck<I> {
    pub(super) fn new(io: I) -> Self {
        Self {
            io,
            inbound: Frames::client(),
            outbound: Frames::default(),
            verdict: Verdict::Passing,
        }
    }
}

impl<I: AsyncWrite + Unpin> FrameCheck<I> {
    /// Sends the GOAWAY when `h2` is between frames (if it is in the middle of one, which a
    /// GOAWAY cannot interrupt, the connection just ends); ready once it went or cannot.
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Verdict::Refusing { frame, written } = &mut self.verdict {
            if !self.outbound.at_boundary() {
                self.verdict = Verdict::Ended;
                return Poll::Ready(());
            }
            while *written < frame.len() {
                match ready!(Pin::new(&mut self.io).poll_write(cx, &frame[*written..])) {
                    Ok(n) if n > 0 => *written += n,
                    _ => {
                        self.verdict = Verdict::Ended;
                        return Poll::Ready(());
                    }
                }
            }
            let _ = ready!(Pin::new(&mut self.io).poll_flush(cx));
            self.verdict = Verdict::Ended;
        }
        Poll::Ready(())
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncRead for FrameCheck<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Verdict::Passing = this.verdict {
            let start = buf.filled().len();
            ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
            let Some((at, code)) = this.inbound.walk(&buf.filled()[start..]) else {
                return Poll::Ready(Ok(()));
            };
            // `h2` never sees the refused frame whole: it gets the bytes before its last one.
            buf.set_filled(start + at);
            let frame = goaway(this.inbound.last_stream, code);
            this.verdict = Verdict::Refusing { frame, written: 0 };
            if at > 0 {
                return Poll::Ready(Ok(()));
            }
        }
        ready!(this.poll_refuse(cx));
        // The end of the connection, as `h2` reads it.
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for FrameCheck<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !matches!(this.verdict, Verdict::Passing) {
            // Nothing of `h2`'s goes out once a frame was refused: the GOAWAY ends the stream
            // of frames.
            return Poll::Ready(Ok(buf.len()));
        }
        let n = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        this.outbound.walk_out(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !matches!(this.verdict, Verdict::Passing) {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for buf in bufs {
            let take = left.min(buf.len());
            this.outbound.walk_out(&buf[..take]);
            left -= take;
            if left == 0 {
                break;
            }
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const END_HEADERS_AND_STREAM: u8 = 0x5;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// The preface, then `frames`: where the walk stops, fed in one piece and byte by byte.
    fn verdict(frames: &[Vec<u8>]) -> Option<(usize, u32)> {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        frames.iter().for_each(|f| bytes.extend_from_slice(f));
        let whole = Frames::client().walk(&bytes);
        let mut frames = Frames::client();
        let bytewise = (0..bytes.len()).find_map(|i| {
            let found = frames.walk(&bytes[i..=i]);
            found.map(|(_, code)| (i, code))
        });
        assert_eq!(whole, bytewise);
        whole
    }

    #[test]
    fn frames_of_the_right_length_pass() {
        let frames = [
            frame(SETTINGS, 0, 0, &[0, 4, 0, 1, 0, 0, 0, 3, 0, 0, 0, 100]),
            frame(SETTINGS, ACK, 0, &[]),
            frame(HEADERS, 0x5, 1, &[0x82, 0x86, 0x84]),
            frame(DATA, 0x1, 3, &[0; 300]),
            frame(PING, 0, 0, &[0; 8]),
            frame(PRIORITY, 0, 3, &[0; 5]),
            frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]),
            frame(RST_STREAM, 0, 1, &[0; 4]),
            frame(SETTINGS, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]),
        ];
        assert_eq!(verdict(&frames), None);
    }

    #[test]
    fn wrong_lengths_and_windows_get_the_rfcs_codes() {
        let preface = 24;
        let ok = frame(PING, 0, 0, &[0; 8]);
        let cases = [
            (frame(SETTINGS, 0, 0, &[0; 5]), FRAME_SIZE_ERROR, 8),
            (frame(SETTINGS, ACK, 0, &[0; 6]), FRAME_SIZE_ERROR, 8),
            (frame(PING, 0, 0, &[0; 7]), FRAME_SIZE_ERROR, 8),
            (frame(RST_STREAM, 0, 1, &[0; 3]), FRAME_SIZE_ERROR, 8),
            (frame(PRIORITY, 0, 1, &[0; 4]), FRAME_SIZE_ERROR, 8),
            (frame(WINDOW_UPDATE, 0, 0, &[0; 5]), FRAME_SIZE_ERROR, 8),
            (
                frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 1, 0, 4, 0x80, 0, 0, 0]),
                FLOW_CONTROL_ERROR,
                9 + 11,
            ),
        ];
        for (bad, code, at) in cases {
            let found = verdict(&[ok.clone(), bad.clone()]);
            assert_eq!(found, Some((preface + ok.len() + at, code)), "{bad:?}");
        }
    }

    #[test]
    fn frames_on_a_stream_the_client_ended_are_stream_closed() {
        let get = frame(HEADERS, END_HEADERS_AND_STREAM, 1, &[0x82]);
        let post = frame(HEADERS, 0x4, 3, &[0x83]);
        let last_data = frame(DATA, END_STREAM, 3, &[0; 10]);
        for (after, at) in [
            (frame(DATA, 0, 1, &[0; 4]), 8),
            (frame(HEADERS, 0x5, 1, &[0x82]), 8),
            (frame(DATA, 0, 3, &[0; 4]), 8),
        ] {
            let frames = [get.clone(), post.clone(), last_data.clone(), after.clone()];
            let before: usize = 24 + get.len() + post.len() + last_data.len();
            assert_eq!(
                verdict(&frames),
                Some((before + at, STREAM_CLOSED)),
                "{after:?}"
            );
        }
        // Other streams, and trailers that end a stream, go on.
        let trailers = frame(HEADERS, 0x5, 3, &[0x40]);
        let frames = [get, post, frame(DATA, 0, 3, &[0; 4]), trailers];
        assert_eq!(verdict(&frames), None);
    }

    #[test]
    fn the_goaway_names_the_last_stream_opened() {
        let mut frames = Frames::client();
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend_from_slice(&frame(HEADERS, 0x5, 5, &[0x82]));
        bytes.extend_from_slice(&frame(PING, 0, 0, &[0; 2]));
        assert!(frames.walk(&bytes).is_some());
        let expected = [0, 0, 8, GOAWAY, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 6];
        assert_eq!(goaway(frames.last_stream, FRAME_SIZE_ERROR), expected);
    }
}
