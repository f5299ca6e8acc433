//! The chunked transfer coding (RFC 9112 §7.1) as a byte-at-a-time state machine (pure).
//!
//! A proxy mostly passes chunked bodies through as they are and only needs to know where they
//! end; for a client that cannot read chunks (HTTP/1.0) the same machine also says which bytes
//! are payload. Chunk lines pass as they came once checked: a size below 2^63, optional
//! whitespace, then only `;` extensions of printable bytes. The trailer section is the one part
//! rewritten: held back, its fields checked by the rules of head fields (httparse), and framing,
//! hop-by-hop and routing fields dropped from it (RFC 9110 §6.5.1), so the next hop never reads
//! a `Content-Length` or a smuggled line there.
//!
//! Bounds: a chunk-size line (size and extensions) of at most 4 KiB, as before; across a body,
//! the bytes of chunk lines beyond 16 per chunk plus twice its data may not add up to over
//! 16 KiB (Go's `net/http` rule), so tiny chunks carrying long extensions are refused while a
//! signature per large chunk (S3's `aws-chunked`) passes; trailers of at most 16 KiB.

use super::fields::{Kind, MAX_LENGTH};
use super::request::MAX_HEADERS;
use super::trailers::may_trail;

/// Longest chunk-size line accepted (hex digits plus extensions).
const MAX_SIZE_LINE: u32 = 4096;
/// Most chunk-line bytes beyond each chunk's allowance a body may carry.
const MAX_OVERHEAD: u64 = 16 * 1024;
/// Chunk-line bytes each chunk may carry for free, besides twice its data.
const OVERHEAD_PER_CHUNK: u64 = 16;
/// Longest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex size; `digits` so far.
    Size {
        digits: u32,
    },
    /// Whitespace after the size: only `;` or the end of the line may follow.
    SizeSpace,
    /// After a `;`: extensions up to CR.
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final blank line).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// The coding is broken: the body cannot be delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidChunk;

/// How far one call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Bytes of the input that belong to the body (all of it unless `done`).
    pub(crate) consumed: usize,
    /// The first `pass` of them go on as they are; the rest are the trailer section, held
    /// until the end and then given by [`Decoder::trailer_section`].
    pub(crate) pass: usize,
    pub(crate) done: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Decoder {
    state: State,
    /// Payload bytes left in the current chunk.
    remaining: u64,
    /// Bytes seen in the current size line, to bound it.
    line: u32,
    /// Chunk-line bytes beyond the allowance so far.
    overhead: u64,
    /// The trailer section as it came, then (once done) as it goes on; empty when it had no
    /// field.
    held: Vec<u8>,
    /// Payload bytes seen so far.
    pub(crate) payload: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            state: State::Size { digits: 0 },
            remaining: 0,
            line: 0,
            overhead: 0,
            held: Vec::new(),
            payload: 0,
        }
    }
}

impl Decoder {
    /// Walks `input`; `on_payload` gets the ranges of `input` that are chunk data.
    pub(crate) fn advance(
        &mut self,
        input: &[u8],
        mut on_payload: impl FnMut(std::ops::Range<usize>),
    ) -> Result<Progress, InvalidChunk> {
        let mut pass = self.in_trailers().then_some(0);
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                let take = (input.len() - i).min(self.remaining.min(usize::MAX as u64) as usize);
                on_payload(i..i + take);
                self.remaining -= take as u64;
                self.payload += take as u64;
                i += take;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let byte = input[i];
            i += 1;
            self.state = self.step(byte)?;
            if self.in_trailers() {
                pass.get_or_insert(i);
            }
            if self.state == State::Done {
                self.rewrite_trailers()?;
                return Ok(Progress {
                    consumed: i,
                    pass: pass.unwrap_or(i),
                    done: true,
                });
            }
        }
        Ok(Progress {
            consumed: i,
            pass: pass.unwrap_or(i),
            done: self.state == State::Done,
        })
    }

    /// The end of the body as it goes on, once `done`: the checked trailer fields and the
    /// final blank line.
    pub(crate) fn trailer_section(&self) -> &[u8] {
        match self.held.is_empty() {
            true => b"\r\n",
            false => &self.held,
        }
    }

    /// Appends a whole chunked body at the start of `body`, as it goes on, to `out`; returns
    /// the bytes of `body` it took.
    pub(crate) fn copy_whole(body: &[u8], out: &mut Vec<u8>) -> Result<usize, InvalidChunk> {
        let mut decoder = Self::default();
        let progress = decoder.advance(body, |_| {})?;
        if !progress.done {
            return Err(InvalidChunk);
        }
        out.extend_from_slice(&body[..progress.pass]);
        out.extend_from_slice(decoder.trailer_section());
        Ok(progress.consumed)
    }

    /// The input so far ends inside a chunk-size line: its end (or what breaks it) is in bytes
    /// not walked yet.
    pub(crate) fn is_inside_size_line(&self) -> bool {
        self.line > 0
            && matches!(
                self.state,
                State::Size { .. } | State::SizeSpace | State::Extension | State::SizeLf
            )
    }

    fn in_trailers(&self) -> bool {
        matches!(
            self.state,
            State::TrailerStart
                | State::TrailerLine
                | State::TrailerLf
                | State::EndLf
                | State::Done
        )
    }

    fn step(&mut self, byte: u8) -> Result<State, InvalidChunk> {
        if matches!(
            self.state,
            State::Size { .. } | State::SizeSpace | State::Extension
        ) {
            self.line += 1;
            if self.line > MAX_SIZE_LINE {
                return Err(InvalidChunk);
            }
        }
        Ok(match self.state {
            State::Size { digits } => match (byte as char).to_digit(16) {
                Some(d) if digits < 16 => {
                    self.remaining = (self.remaining << 4) | u64::from(d);
                    if self.remaining > MAX_LENGTH {
                        return Err(InvalidChunk);
                    }
                    State::Size { digits: digits + 1 }
                }
                Some(_) => return Err(InvalidChunk),
                None if digits == 0 => return Err(InvalidChunk),
                None => self.after_size(byte)?,
            },
            State::SizeSpace => self.after_size(byte)?,
            State::Extension => match byte {
                b'\r' => State::SizeLf,
                b'\t' | b' '..=b'~' | 0x80.. => State::Extension,
                _ => return Err(InvalidChunk),
            },
            State::SizeLf => {
                expect(byte, b'\n')?;
                self.count_overhead()?;
                self.line = 0;
                if self.remaining == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                }
            }
            State::DataCr => {
                expect(byte, b'\r')?;
                State::DataLf
            }
            State::DataLf => {
                expect(byte, b'\n')?;
                State::Size { digits: 0 }
            }
            // A bare LF ends a line for some parsers and not for others: the disagreement a
            // smuggled request hides in. Only CRLF ends a trailer line here, and a bare LF is
            // refused.
            State::TrailerStart => match byte {
                b'\r' => State::EndLf,
                b'\n' => return Err(InvalidChunk),
                _ => self.hold(byte, State::TrailerLine)?,
            },
            State::TrailerLine => match byte {
                b'\r' => self.hold(byte, State::TrailerLf)?,
                b'\n' => return Err(InvalidChunk),
                _ => self.hold(byte, State::TrailerLine)?,
            },
            State::TrailerLf => {
                expect(byte, b'\n')?;
                self.hold(byte, State::TrailerStart)?
            }
            State::EndLf => {
                expect(byte, b'\n')?;
                State::Done
            }
            // Unreachable: `advance` handles data and stops at done. Refusing is the safe answer.
            State::Data | State::Done => return Err(InvalidChunk),
        })
    }

    /// After the size digits: whitespace (RFC 9112 §7.1.1's BWS), then `;` or the line's end.
    fn after_size(&self, byte: u8) -> Result<State, InvalidChunk> {
        Ok(match byte {
            b'\r' => State::SizeLf,
            b';' => State::Extension,
            b' ' | b'\t' => State::SizeSpace,
            _ => return Err(InvalidChunk),
        })
    }

    /// Counts the line just read (and the CRLF after its data) against the body's allowance.
    fn count_overhead(&mut self) -> Result<(), InvalidChunk> {
        // The line as counted (its CR included), its LF, and the CRLF after the data.
        let line = u64::from(self.line) + 3;
        let allowance = OVERHEAD_PER_CHUNK.saturating_add(self.remaining.saturating_mul(2));
        self.overhead = (self.overhead + line).saturating_sub(allowance);
        match self.overhead > MAX_OVERHEAD {
            true => Err(InvalidChunk),
            false => Ok(()),
        }
    }

    fn hold(&mut self, byte: u8, next: State) -> Result<State, InvalidChunk> {
        if self.held.len() >= MAX_TRAILERS {
            return Err(InvalidChunk);
        }
        self.held.push(byte);
        Ok(next)
    }

    /// Checks the held trailer fields as head fields are checked, and keeps those that may
    /// stand in a trailer.
    fn rewrite_trailers(&mut self) -> Result<(), InvalidChunk> {
        if self.held.is_empty() {
            return Ok(());
        }
        self.held.extend_from_slice(b"\r\n");
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let parsed = httparse::parse_headers(&self.held, &mut headers);
        let Ok(httparse::Status::Complete((len, fields))) = parsed else {
            return Err(InvalidChunk);
        };
        if len != self.held.len() {
            return Err(InvalidChunk);
        }
        let mut kept = Vec::with_capacity(self.held.len());
        for field in fields {
            if may_trail(Kind::of(field.name.as_bytes())) {
                kept.extend_from_slice(field.name.as_bytes());
                kept.extend_from_slice(b": ");
                kept.extend_from_slice(field.value);
                kept.extend_from_slice(b"\r\n");
            }
        }
        kept.extend_from_slice(b"\r\n");
        self.held = kept;
        Ok(())
    }
}

fn expect(byte: u8, wanted: u8) -> Result<(), InvalidChunk> {
    if byte == wanted {
        Ok(())
    } else {
        Err(InvalidChunk)
    }
}

#[cfg(test)]
mod tests;
