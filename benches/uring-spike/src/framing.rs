//! HTTP/1.1 message framing shared by both variants: where a request or an answer ends.
//!
//! Spike limitation: only `Content-Length` (or no body) is understood; chunked bodies, answers
//! to HEAD, 1xx/204/304 without a length and read-until-close answers are refused, which is
//! enough for wrk against an origin that answers `return 200 "hello"`.

/// What the bytes received so far hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole message yet: read more.
    Incomplete,
    /// The first message is this many bytes long (head and body).
    Complete(usize),
    /// Something this spike does not frame; the connection is closed.
    Unsupported(&'static str),
}

/// Frames the first message (request or answer) in `buf`.
pub fn frame(buf: &[u8]) -> Frame {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Frame::Incomplete;
    };
    let head = &buf[..head_end];
    let mut body = 0usize;
    // The first line is the request or status line; headers follow.
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Frame::Unsupported("header line without a colon");
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            match std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                Some(n) => body = n,
                None => return Frame::Unsupported("bad Content-Length"),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Frame::Unsupported("Transfer-Encoding (chunked) is not framed by the spike");
        }
    }
    let total = head_end + 4 + body;
    if buf.len() >= total {
        Frame::Complete(total)
    } else {
        Frame::Incomplete
    }
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_requests_and_answers() {
        assert_eq!(frame(b"GET / HTTP/1.1\r\nHost: a\r\n"), Frame::Incomplete);
        assert_eq!(
            frame(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET"),
            Frame::Complete(27)
        );
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length:  5 \r\n\r\nhello";
        assert_eq!(frame(&answer[..answer.len() - 1]), Frame::Incomplete);
        assert_eq!(frame(answer), Frame::Complete(answer.len()));
        assert!(matches!(
            frame(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Frame::Unsupported(_)
        ));
    }
}
