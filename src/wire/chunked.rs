//! The chunked transfer coding (RFC 9112 §7.1) as a byte-at-a-time state machine (pure).
//!
//! A proxy mostly passes chunked bodies through as they are and only needs to know where they
//! end; for a client that cannot read chunks (HTTP/1.0) the same machine also says which bytes
//! are payload. Extensions and trailers are walked over, never interpreted.

/// Longest chunk-size line accepted (hex digits plus extensions).
const MAX_SIZE_LINE: u32 = 4096;
/// Longest trailer section accepted.
const MAX_TRAILERS: u32 = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex size; `digits` so far.
    Size {
        digits: u32,
    },
    /// After the size: extensions up to CR.
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
    pub(crate) done: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Decoder {
    state: State,
    /// Payload bytes left in the current chunk.
    remaining: u64,
    /// Bytes seen in the current size line or trailer section, to bound them.
    line: u32,
    /// Payload bytes seen so far.
    pub(crate) payload: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            state: State::Size { digits: 0 },
            remaining: 0,
            line: 0,
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
            if self.state == State::Done {
                return Ok(Progress {
                    consumed: i,
                    done: true,
                });
            }
        }
        Ok(Progress {
            consumed: i,
            done: self.state == State::Done,
        })
    }

    fn step(&mut self, byte: u8) -> Result<State, InvalidChunk> {
        Ok(match self.state {
            State::Size { digits } => {
                self.line += 1;
                if self.line > MAX_SIZE_LINE {
                    return Err(InvalidChunk);
                }
                match (byte as char).to_digit(16) {
                    Some(d) if digits < 16 => {
                        self.remaining = (self.remaining << 4) | u64::from(d);
                        State::Size { digits: digits + 1 }
                    }
                    Some(_) => return Err(InvalidChunk),
                    None if digits == 0 => return Err(InvalidChunk),
                    None => match byte {
                        b'\r' => State::SizeLf,
                        b';' | b' ' | b'\t' => State::Extension,
                        _ => return Err(InvalidChunk),
                    },
                }
            }
            State::Extension => {
                self.line += 1;
                match byte {
                    _ if self.line > MAX_SIZE_LINE => return Err(InvalidChunk),
                    b'\r' => State::SizeLf,
                    b'\n' => return Err(InvalidChunk),
                    _ => State::Extension,
                }
            }
            State::SizeLf => {
                expect(byte, b'\n')?;
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
                _ => self.trailer_byte()?,
            },
            State::TrailerLine => match byte {
                b'\r' => State::TrailerLf,
                b'\n' => return Err(InvalidChunk),
                _ => self.trailer_byte()?,
            },
            State::TrailerLf => {
                expect(byte, b'\n')?;
                State::TrailerStart
            }
            State::EndLf => {
                expect(byte, b'\n')?;
                State::Done
            }
            // Unreachable: `advance` handles data and stops at done. Refusing is the safe answer.
            State::Data | State::Done => return Err(InvalidChunk),
        })
    }

    fn trailer_byte(&mut self) -> Result<State, InvalidChunk> {
        self.line += 1;
        if self.line > MAX_TRAILERS {
            return Err(InvalidChunk);
        }
        Ok(State::TrailerLine)
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
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns (consumed, payload, done).
    fn run(input: &[u8], step: usize) -> Result<(usize, Vec<u8>, bool), InvalidChunk> {
        let mut decoder = Decoder::default();
        let (mut consumed, mut payload) = (0, Vec::new());
        for piece in input.chunks(step) {
            let progress = decoder.advance(piece, |r| payload.extend_from_slice(&piece[r]))?;
            consumed += progress.consumed;
            if progress.done {
                assert_eq!(decoder.payload, payload.len() as u64);
                return Ok((consumed, payload, true));
            }
        }
        Ok((consumed, payload, false))
    }

    #[test]
    fn chunks_extensions_and_trailers_at_any_split() {
        let body = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, body.len()] {
            let (consumed, payload, done) = run(body, step).unwrap();
            assert!(done, "step {step}");
            assert_eq!(consumed, body.len() - 4, "step {step}");
            assert_eq!(payload, b"hello world");
        }
        let (_, payload, done) = run(b"A\r\n0123456789\r\n0\r\n\r\n", 4).unwrap();
        assert_eq!((payload.as_slice(), done), (&b"0123456789"[..], true));
    }

    #[test]
    fn incomplete_bodies_are_not_done() {
        let (consumed, _, done) = run(b"5\r\nhel", 2).unwrap();
        assert_eq!((consumed, done), (6, false));
    }

    #[test]
    fn broken_codings_are_refused() {
        for body in [
            &b"x\r\n"[..],
            b"5\r\nhelloX\r\n",
            b"5\nhello\r\n",
            b"\r\n",
            b"11111111111111111\r\n",
            b"0\r\n\rX",
            // Trailers ended by a bare LF, then a smuggled request.
            b"0\r\n\nGET /smuggled HTTP/1.1\r\n\r\n",
            b"0\r\nX-T: 1\nGET /smuggled HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                run(body, 1),
                Err(InvalidChunk),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let long_extension = [b"1;".as_slice(), &[b'a'; 5000]].concat();
        assert_eq!(run(&long_extension, 100), Err(InvalidChunk));
    }
}
