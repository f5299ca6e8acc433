//! A backend's response head, parsed in place with what relaying it needs (pure): its status,
//! how its body is delimited (RFC 9112 §6.3), and whether the backend connection can be reused.
//!
//! Ambiguous framing is a backend error (a 502, and the backend connection closed), never
//! passed on: two `Content-Length`s that disagree, or `chunked` named more than once (two
//! fields or `chunked, chunked`), which the request parser refuses with a 400 for the same
//! reason. Other transfer codings (`gzip, chunked`) pass on as the backend wrote them.

use super::fields::{self, BadLength, BodyFields, ConnectionTokens, Field, Kind};
use std::mem::MaybeUninit;

use super::request::MAX_HEADERS;

/// Largest response head accepted from a backend; a longer one is a backend error.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body: a HEAD answer, 1xx, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// Until the backend closes the connection.
    UntilClose,
}

/// The head was not a valid HTTP/1.x response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidResponse;

#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) len: usize,
    pub(crate) status: u16,
    reason: (u32, u32),
    pub(crate) fields: Vec<Field>,
    pub(crate) framing: Framing,
    pub(crate) connection: ConnectionTokens,
    /// It carries `Transfer-Encoding`, which passes on with the body it describes; a
    /// `Content-Length` beside it is then meaningless and is not (RFC 9112 §6.3).
    pub(crate) coded: bool,
    /// The backend keeps the connection open after this response.
    pub(crate) reusable: bool,
    pub(crate) retry_after: bool,
    upgrade: Option<usize>,
}

impl ResponseHead {
    /// `Ok(None)` while the head is not complete in `buf`. `head_request` says whether the
    /// request was a HEAD, whose answer has no body whatever its headers say.
    pub(crate) fn parse(buf: &[u8], head_request: bool) -> Result<Option<Self>, InvalidResponse> {
        // Left uninitialised for httparse to fill: zeroing 100 of them cost each answer 3 KiB
        // of writes.
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .allow_spaces_after_header_name_in_responses(true)
            .parse_response_with_uninit_headers(&mut response, buf, &mut headers);
        let len = match parsed {
            // A bare LF ends a field for httparse and for many clients, not for others: a value
            // with one in it would reach the client as two fields (header injection), or as
            // one it reads differently. Only CRLF-ended heads pass; the rest are a 502.
            Ok(httparse::Status::Complete(len)) if has_bare_lf(&buf[..len]) => {
                return Err(InvalidResponse)
            }
            Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD_BYTES => len,
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD_BYTES => return Ok(None),
            Ok(httparse::Status::Complete(_)) => return Err(InvalidResponse),
            Ok(httparse::Status::Partial) | Err(_) => return Err(InvalidResponse),
        };
        let (Some(status), Some(minor)) = (response.code, response.version) else {
            return Err(InvalidResponse);
        };
        let reason = response.reason.unwrap_or("");
        let mut head = Self {
            len,
            status,
            reason: if reason.is_empty() {
                (0, 0)
            } else {
                fields::span(buf, reason.as_bytes())
            },
            fields: Vec::with_capacity(response.headers.len()),
            framing: Framing::UntilClose,
            connection: ConnectionTokens::default(),
            coded: false,
            reusable: false,
            retry_after: false,
            upgrade: None,
        };
        let mut body = BodyFields::default();
        for header in response.headers.iter() {
            let field = Field::locate(buf, header.name.as_bytes(), header.value);
            body.add(field.kind, header.value)
                .map_err(|BadLength| InvalidResponse)?;
            match field.kind {
                Kind::Connection => head.connection.add(header.value),
                Kind::Upgrade => head.upgrade = Some(head.fields.len()),
                Kind::RetryAfter => head.retry_after = true,
                _ => {}
            }
            head.fields.push(field);
        }
        if body.chunked_codings > 1 {
            return Err(InvalidResponse);
        }
        // RFC 9112 §6.1, RFC 9110 §8.6: no body framing on a 1xx or 204, and no transfer
        // coding on a 304 either (there is no body it could describe to this client).
        head.coded = body.coded() && !unframed_status(status) && status != 304;
        let bodiless = head_request || unframed_status(status) || status == 304;
        // RFC 9112 §6.3: Transfer-Encoding wins over Content-Length; an unknown coding reads
        // until close.
        head.framing = match (bodiless, body.coded(), body.chunked, body.length) {
            (true, ..) => Framing::Empty,
            (false, true, true, _) => Framing::Chunked,
            (false, true, false, _) => Framing::UntilClose,
            (false, false, _, Some(n)) => Framing::Length(n),
            (false, false, _, None) => Framing::UntilClose,
        };
        let keeps = match minor {
            1 => !head.connection.close,
            _ => head.connection.keep_alive && !head.connection.close,
        };
        head.reusable = keeps && head.framing != Framing::UntilClose && status != 101;
        Ok(Some(head))
    }

    /// The reason phrase as the backend wrote it (may be empty).
    pub(crate) fn reason<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.reason.0 as usize..self.reason.1 as usize]
    }

    /// The `Upgrade` value of a 101.
    pub(crate) fn upgrade<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        self.upgrade.map(|index| self.fields[index].value(buf))
    }

    /// The fields that reach the client, whatever its protocol: not hop-by-hop, not named by
    /// `Connection`, no `Content-Length` beside a transfer coding (RFC 9112 §6.3) or on a 1xx or
    /// 204 (RFC 9110 §8.6), and one `Content-Length` where the backend repeated the same.
    pub(crate) fn client_fields<'a>(
        &'a self,
        buf: &'a [u8],
    ) -> impl Iterator<Item = &'a Field> + 'a {
        let mut length_sent = false;
        let no_length = self.coded || unframed_status(self.status);
        self.fields.iter().filter(move |field| {
            if field.kind == Kind::ContentLength
                && (no_length || std::mem::replace(&mut length_sent, true))
            {
                return false;
            }
            fields::is_forwarded(field, &self.fields, buf, self.connection.lists_headers)
        })
    }

    /// An interim answer (100 Continue, 103 Early Hints...) that a final one follows.
    pub(crate) fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// Statuses whose answers never carry body framing (RFC 9112 §6.1, RFC 9110 §8.6).
fn unframed_status(status: u16) -> bool {
    (100..200).contains(&status) || status == 204
}

/// Whether some line of `head` ends in a LF without a CR before it.
fn has_bare_lf(head: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', head).any(|i| i == 0 || head[i - 1] != b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8], head_request: bool) -> ResponseHead {
        ResponseHead::parse(text, head_request).unwrap().unwrap()
    }

    #[test]
    fn framing_by_rfc_9112() {
        let length = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse(length, false).framing, Framing::Length(5));
        assert_eq!(parse(length, true).framing, Framing::Empty);
        assert!(parse(length, false).reusable);
        let chunked = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse(chunked, false).framing, Framing::Chunked);
        let close = b"HTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(parse(close, false).framing, Framing::UntilClose);
        assert!(!parse(close, false).reusable);
        let no_content = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse(no_content, false).framing, Framing::Empty);
        assert!(parse(no_content, false).reusable);
    }

    #[test]
    fn reuse_follows_version_and_connection() {
        assert!(!parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false).reusable);
        assert!(
            parse(
                b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
                false
            )
            .reusable
        );
        assert!(
            !parse(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                false
            )
            .reusable
        );
    }

    #[test]
    fn status_reason_upgrade_and_retry_after() {
        let buf = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        let head = parse(buf, false);
        assert_eq!(
            (head.status, head.reason(buf)),
            (101, &b"Switching Protocols"[..])
        );
        assert_eq!(head.upgrade(buf), Some(&b"websocket"[..]));
        assert!(!head.is_interim() && !head.reusable);
        let buf =
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n";
        assert!(parse(buf, false).retry_after);
        assert!(parse(b"HTTP/1.1 100 Continue\r\n\r\n", false).is_interim());
        assert!(parse(b"HTTP/1.1 200\r\n\r\n", false).reason(b"").is_empty());
    }

    fn client_field_names(text: &[u8]) -> Vec<String> {
        let head = parse(text, false);
        let names = head
            .client_fields(text)
            .map(|f| f.name(text).to_ascii_lowercase());
        names.map(|n| String::from_utf8(n).unwrap()).collect()
    }

    #[test]
    fn bodiless_statuses_keep_no_framing_and_lengths_go_once() {
        let no_content = b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\
            Content-Length: 0\r\nX-A: a\r\n\r\n";
        assert!(!parse(no_content, false).coded);
        assert_eq!(client_field_names(no_content), ["x-a"]);
        let not_modified = b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(!parse(not_modified, false).coded);
        let twice = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok";
        assert_eq!(client_field_names(twice), ["content-length"]);
        let head_answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(
            parse(head_answer, true).coded,
            "a HEAD answer describes the GET's"
        );
    }

    #[test]
    fn bare_lf_in_a_head_is_refused() {
        for text in [
            &b"HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: evil\r\nContent-Length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
        ] {
            assert_eq!(
                ResponseHead::parse(text, false).unwrap_err(),
                InvalidResponse
            );
        }
    }

    #[test]
    fn chunked_named_twice_is_refused() {
        for text in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(
                ResponseHead::parse(text, false).unwrap_err(),
                InvalidResponse
            );
        }
        let gzip =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse(gzip, false).framing, Framing::Chunked);
    }

    #[test]
    fn bad_heads_are_errors() {
        assert!(
            ResponseHead::parse(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).is_err()
        );
        assert!(ResponseHead::parse(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
        assert!(ResponseHead::parse(b"HTTP/1.1 200 OK\r\n", false)
            .unwrap()
            .is_none());
    }
}
