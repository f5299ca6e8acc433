//! The little RESP (2 and 3) the tracking connection and Sentinel need: encoding commands and
//! decoding the replies and push messages from a byte buffer that may hold partial or several
//! values (pure), plus [`read_value`], the one loop that reads a value from a stream.
//!
//! The redis crate has a parser, but behind its own connection task; the tracking connection
//! reads its socket itself (see [`super::tracking`]), so it decodes here.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt as _};

/// One decoded value. Aggregates of every kind (array, set, map, push) become [`Resp::Array`]
/// or [`Resp::Push`]; scalars the tracking connection never looks at become [`Resp::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resp {
    /// `+...` simple string or `$...` bulk string.
    Text(Vec<u8>),
    /// `-...` error.
    Error(String),
    Array(Vec<Resp>),
    /// `>...` out-of-band push (RESP3).
    Push(Vec<Resp>),
    /// `_`, `$-1` or `*-1`.
    Null,
    Other,
}

/// The bytes do not follow the protocol: the connection cannot be trusted any more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed redis reply")]
pub(crate) struct Malformed;

/// Nesting deeper than this is refused; the tracking connection never sees more than two levels.
const MAX_DEPTH: usize = 8;

/// Encodes a command as a RESP array of bulk strings.
pub(crate) fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Decodes the first value of `buf`: `Ok(None)` while it is incomplete, else the value and the
/// number of bytes it used.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(Resp, usize)>, Malformed> {
    parse_at(buf, 0, 0)
}

/// Reads the next value from `stream` into `buf` (which keeps any bytes past it); `Ok(None)` when
/// the peer closed first. The one reader of request/reply exchanges on our own connections (the
/// tracking handshake, Sentinel queries and subscriptions).
pub(crate) async fn read_value<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> io::Result<Option<Resp>> {
    loop {
        let parsed = parse(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if let Some((value, used)) = parsed {
            buf.drain(..used);
            return Ok(Some(value));
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await? {
            0 => return Ok(None),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// If `value` is a key invalidation push, the keys it names; `Some(None)` means every key
/// (after `FLUSHALL`/`FLUSHDB`).
pub(crate) fn invalidation(value: &Resp) -> Option<Option<Vec<&[u8]>>> {
    let items = match value {
        Resp::Push(items) => items.as_slice(),
        _ => return None,
    };
    match items {
        [Resp::Text(kind), keys] if kind.as_slice() == b"invalidate" => match keys {
            Resp::Array(keys) => Some(Some(
                keys.iter()
                    .filter_map(|key| match key {
                        Resp::Text(key) => Some(key.as_slice()),
                        _ => None,
                    })
                    .collect(),
            )),
            _ => Some(None),
        },
        _ => None,
    }
}

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Resp, usize)>, Malformed> {
    if depth > MAX_DEPTH {
        return Err(Malformed);
    }
    let Some(end) = find_crlf(buf, at) else {
        return Ok(None);
    };
    // A line ends at the first CRLF at or after `at`: an empty one has no type byte.
    if end == at {
        return Err(Malformed);
    }
    let kind = buf[at];
    let line = &buf[at + 1..end];
    let next = end + 2;
    let value = match kind {
        b'+' => Resp::Text(line.to_vec()),
        b'-' => Resp::Error(String::from_utf8_lossy(line).into_owned()),
        b'$' | b'=' | b'!' => {
            let Some(len) = length(line)? else {
                return Ok(Some((Resp::Null, next)));
            };
            let Some(stop) = next.checked_add(len).filter(|stop| *stop < usize::MAX - 2) else {
                return Err(Malformed);
            };
            if buf.len() < stop + 2 {
                return Ok(None);
            }
            if &buf[stop..stop + 2] != b"\r\n" {
                return Err(Malformed);
            }
            let text = buf[next..stop].to_vec();
            return Ok(Some((
                if kind == b'!' {
                    Resp::Error(String::from_utf8_lossy(&text).into_owned())
                } else {
                    Resp::Text(text)
                },
                stop + 2,
            )));
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let Some(count) = length(line)? else {
                return Ok(Some((Resp::Null, next)));
            };
            // Maps and attributes hold two values per entry.
            let count = if matches!(kind, b'%' | b'|') {
                count.checked_mul(2).ok_or(Malformed)?
            } else {
                count
            };
            let mut items = Vec::with_capacity(count.min(64));
            let mut at = next;
            for _ in 0..count {
                let Some((item, after)) = parse_at(buf, at, depth + 1)? else {
                    return Ok(None);
                };
                items.push(item);
                at = after;
            }
            if kind == b'|' {
                // An attribute precedes the value it describes: skip it.
                return parse_at(buf, at, depth);
            }
            let value = if kind == b'>' {
                Resp::Push(items)
            } else {
                Resp::Array(items)
            };
            return Ok(Some((value, at)));
        }
        b'_' => Resp::Null,
        b':' | b',' | b'#' | b'(' => Resp::Other,
        _ => return Err(Malformed),
    };
    Ok(Some((value, next)))
}

/// A length line: `None` for `-1` (RESP2 null), an error for anything else not a count.
fn length(line: &[u8]) -> Result<Option<usize>, Malformed> {
    if line == b"-1" {
        return Ok(None);
    }
    std::str::from_utf8(line)
        .ok()
        .and_then(|text| text.parse().ok())
        .map(Some)
        .ok_or(Malformed)
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|pair| pair == b"\r\n")
        .map(|i| from + i)
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Resp {
        Resp::Text(s.as_bytes().to_vec())
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        assert_eq!(command(&["PING"]), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            command(&["HELLO", "3"]),
            b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"
        );
    }

    #[test]
    fn invalidation_pushes_are_decoded_whole_or_not_at_all() {
        let push =
            b">2\r\n$10\r\ninvalidate\r\n*2\r\n$12\r\nfrontend:a.b\r\n$8\r\ndead:a.b\r\n+PONG\r\n";
        for cut in 0..push.len() - 7 {
            assert_eq!(parse(&push[..cut]), Ok(None), "cut at {cut}");
        }
        let (value, used) = parse(push).unwrap().unwrap();
        assert_eq!(used, push.len() - 7);
        let keys = invalidation(&value).unwrap().unwrap();
        assert_eq!(keys, [b"frontend:a.b".as_slice(), b"dead:a.b"]);
        assert_eq!(parse(&push[used..]), Ok(Some((text("PONG"), 7))));

        let flush = b">2\r\n$10\r\ninvalidate\r\n_\r\n";
        let (value, _) = parse(flush).unwrap().unwrap();
        assert_eq!(invalidation(&value), Some(None));
        assert_eq!(invalidation(&text("OK")), None);
    }

    #[test]
    fn hello_map_errors_and_garbage() {
        let hello = b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nmodules\r\n*0\r\n";
        let (value, used) = parse(hello).unwrap().unwrap();
        assert_eq!(used, hello.len());
        assert!(matches!(value, Resp::Array(items) if items.len() == 4));
        assert_eq!(
            parse(b"-ERR unknown command 'HELLO'\r\n")
                .unwrap()
                .unwrap()
                .0,
            Resp::Error("ERR unknown command 'HELLO'".into())
        );
        assert_eq!(parse(b":12\r\n").unwrap().unwrap(), (Resp::Other, 5));
        assert_eq!(parse(b"$-1\r\n").unwrap().unwrap(), (Resp::Null, 5));
        assert_eq!(parse(b"?\r\n"), Err(Malformed));
        assert_eq!(parse(b"$x\r\n"), Err(Malformed));
        assert_eq!(parse(b"$2\r\nabcd\r\n"), Err(Malformed));
        let deep = "*1\r\n".repeat(MAX_DEPTH + 2);
        assert_eq!(parse(deep.as_bytes()), Err(Malformed));
    }
}
