//! Header fields of a parsed head as spans over the connection's buffer, each classified once by
//! name (pure). Request and response heads share this, and the encoders read the class instead
//! of comparing names again.

/// The header names the proxy acts on; everything else is `Other` and passes through as it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    ProxyConnection,
    Te,
    Trailer,
    Upgrade,
    Expect,
    XDebug,
    XForwardedFor,
    XRealIp,
    XForwardedProto,
    XForwardedProtocol,
    XForwardedPort,
    Referer,
    UserAgent,
    RetryAfter,
}

impl Kind {
    /// Classifies a header name, ASCII case-insensitively.
    pub(crate) fn of(name: &[u8]) -> Self {
        // Dispatch on length first: most names are `Other` after one length comparison.
        let candidates: &[(&[u8], Kind)] = match name.len() {
            2 => &[(b"te", Self::Te)],
            4 => &[(b"host", Self::Host)],
            6 => &[(b"expect", Self::Expect)],
            7 => &[
                (b"upgrade", Self::Upgrade),
                (b"trailer", Self::Trailer),
                (b"x-debug", Self::XDebug),
                (b"referer", Self::Referer),
            ],
            9 => &[(b"x-real-ip", Self::XRealIp)],
            10 => &[
                (b"connection", Self::Connection),
                (b"keep-alive", Self::KeepAlive),
                (b"user-agent", Self::UserAgent),
            ],
            11 => &[(b"retry-after", Self::RetryAfter)],
            14 => &[(b"content-length", Self::ContentLength)],
            15 => &[(b"x-forwarded-for", Self::XForwardedFor)],
            16 => &[
                (b"proxy-connection", Self::ProxyConnection),
                (b"x-forwarded-port", Self::XForwardedPort),
            ],
            17 => &[
                (b"transfer-encoding", Self::TransferEncoding),
                (b"x-forwarded-proto", Self::XForwardedProto),
            ],
            20 => &[(b"x-forwarded-protocol", Self::XForwardedProtocol)],
            _ => return Self::Other,
        };
        candidates
            .iter()
            .find(|(known, _)| name.eq_ignore_ascii_case(known))
            .map_or(Self::Other, |(_, kind)| *kind)
    }

    /// Headers that describe one connection, not the message (RFC 9110 §7.6.1): never forwarded
    /// as they came; the encoders write their own framing and connection headers.
    pub(crate) fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            Self::Connection
                | Self::KeepAlive
                | Self::ProxyConnection
                | Self::Te
                | Self::Trailer
                | Self::TransferEncoding
                | Self::Upgrade
        )
    }
}

/// One header field: where its name and value sit in the buffer, and its class.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    name: (u32, u32),
    value: (u32, u32),
    pub(crate) kind: Kind,
}

impl Field {
    /// A field from slices that point into `buf` (as httparse hands them out).
    pub(super) fn locate(buf: &[u8], name: &[u8], value: &[u8]) -> Self {
        Self {
            name: span(buf, name),
            value: span(buf, value),
            kind: Kind::of(name),
        }
    }

    pub(crate) fn name<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.name.0 as usize..self.name.1 as usize]
    }

    pub(crate) fn value<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.value.0 as usize..self.value.1 as usize]
    }
}

/// Offsets of `part`, a sub-slice of `buf`, within it.
pub(super) fn span(buf: &[u8], part: &[u8]) -> (u32, u32) {
    let start = (part.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
    (start as u32, (start + part.len()) as u32)
}

/// What the `Connection` headers of a message say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ConnectionTokens {
    pub(crate) close: bool,
    pub(crate) keep_alive: bool,
    pub(crate) upgrade: bool,
    /// Other tokens name headers of this hop only (RFC 9110 §7.6.1): they are dropped too.
    pub(crate) lists_headers: bool,
}

impl ConnectionTokens {
    pub(crate) fn add(&mut self, value: &[u8]) {
        for token in connection_tokens(value) {
            match token {
                ConnectionToken::Close => self.close = true,
                ConnectionToken::KeepAlive => self.keep_alive = true,
                ConnectionToken::Upgrade => self.upgrade = true,
                ConnectionToken::Header(_) => self.lists_headers = true,
            }
        }
    }
}

/// One token of a `Connection` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionToken<'a> {
    Close,
    KeepAlive,
    Upgrade,
    /// Any other token names a header field of this hop only.
    Header(&'a [u8]),
}

/// The tokens of a `Connection` value, empty ones skipped.
pub(crate) fn connection_tokens(value: &[u8]) -> impl Iterator<Item = ConnectionToken<'_>> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|token| !token.is_empty())
        .map(|token| {
            if token.eq_ignore_ascii_case(b"close") {
                ConnectionToken::Close
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                ConnectionToken::KeepAlive
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                ConnectionToken::Upgrade
            } else {
                ConnectionToken::Header(token)
            }
        })
}

/// Whether `name` is listed by one of the `Connection` fields of `fields`.
pub(crate) fn listed_in_connection(fields: &[Field], buf: &[u8], name: &[u8]) -> bool {
    fields
        .iter()
        .filter(|field| field.kind == Kind::Connection)
        .flat_map(|field| field.value(buf).split(|&b| b == b','))
        .any(|token| trim(token).eq_ignore_ascii_case(name))
}

/// Whether `field` goes to the next hop: not hop-by-hop, not named by `Connection`.
pub(crate) fn is_forwarded(
    field: &Field,
    fields: &[Field],
    buf: &[u8],
    lists_headers: bool,
) -> bool {
    if field.kind.is_hop_by_hop() {
        return false;
    }
    !(lists_headers
        && field.kind == Kind::Other
        && listed_in_connection(fields, buf, field.name(buf)))
}

/// What a message's `Content-Length` and `Transfer-Encoding` fields say, gathered field by field;
/// each parser then decides its framing from it by its own rules (RFC 9112 §6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BodyFields {
    pub(crate) length: Option<u64>,
    /// `Transfer-Encoding` fields seen (saturating).
    pub(crate) codings: u8,
    /// The last transfer coding is `chunked`.
    pub(crate) chunked: bool,
    /// Every `Transfer-Encoding` value is exactly `chunked`: the one coding a request may have.
    pub(crate) only_chunked: bool,
    /// `chunked` list elements across every `Transfer-Encoding` field (saturating): more than
    /// one is a message whose framing two parsers may read differently (RFC 9112 §7.1.3 allows
    /// chunked once).
    pub(crate) chunked_codings: u8,
}

/// A `Content-Length` that is not a number below 2^63, or two that disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadLength;

impl BodyFields {
    /// Takes in `value` if `kind` is a framing field; other fields are ignored.
    pub(crate) fn add(&mut self, kind: Kind, value: &[u8]) -> Result<(), BadLength> {
        match kind {
            Kind::ContentLength => {
                let n = content_length(value).ok_or(BadLength)?;
                if self.length.is_some_and(|before| before != n) {
                    return Err(BadLength);
                }
                self.length = Some(n);
            }
            Kind::TransferEncoding => {
                let exact = trim(value).eq_ignore_ascii_case(b"chunked");
                self.only_chunked = exact && (self.codings == 0 || self.only_chunked);
                self.codings = self.codings.saturating_add(1);
                self.chunked = ends_with_chunked(value);
                let named = value
                    .split(|&b| b == b',')
                    .filter(|coding| trim(coding).eq_ignore_ascii_case(b"chunked"))
                    .count();
                let named = u8::try_from(named).unwrap_or(u8::MAX);
                self.chunked_codings = self.chunked_codings.saturating_add(named);
            }
            _ => {}
        }
        Ok(())
    }

    /// Some `Transfer-Encoding` field is present.
    pub(crate) fn coded(&self) -> bool {
        self.codings > 0
    }
}

/// Largest `Content-Length` (and chunk size) accepted: 2^63 - 1. A larger one would read as
/// negative to a signed parser further on, and no body is that long.
pub(crate) const MAX_LENGTH: u64 = i64::MAX as u64;

/// Parses a `Content-Length` value: digits only (RFC 9110 §8.6), at most `MAX_LENGTH`.
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    let value = trim(value);
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value
        .iter()
        .try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .filter(|&n| n <= MAX_LENGTH)
}

/// Whether a `Transfer-Encoding` value ends with `chunked`, the only coding a proxy must know.
pub(crate) fn ends_with_chunked(value: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|last| trim(last).eq_ignore_ascii_case(b"chunked"))
}

pub(crate) fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_classified_case_insensitively() {
        assert_eq!(Kind::of(b"Host"), Kind::Host);
        assert_eq!(Kind::of(b"CONTENT-LENGTH"), Kind::ContentLength);
        assert_eq!(Kind::of(b"X-Forwarded-Port"), Kind::XForwardedPort);
        assert_eq!(Kind::of(b"x-forwarded-proto"), Kind::XForwardedProto);
        assert_eq!(Kind::of(b"X-Forwarded-Protocol"), Kind::XForwardedProtocol);
        assert_eq!(Kind::of(b"Transfer-Encoding"), Kind::TransferEncoding);
        assert_eq!(Kind::of(b"x-hosts"), Kind::Other);
        assert_eq!(Kind::of(b""), Kind::Other);
        assert!(Kind::of(b"Keep-Alive").is_hop_by_hop());
        assert!(!Kind::of(b"Content-Length").is_hop_by_hop());
    }

    #[test]
    fn connection_tokens() {
        let mut tokens = ConnectionTokens::default();
        tokens.add(b"Keep-Alive, Upgrade");
        tokens.add(b" x-secret ,");
        assert!(tokens.keep_alive && tokens.upgrade && tokens.lists_headers && !tokens.close);
        let buf = b"Connection: a, X-Secret";
        let fields = [Field::locate(buf, &buf[..10], &buf[12..])];
        assert!(listed_in_connection(&fields, buf, b"x-secret"));
        assert!(!listed_in_connection(&fields, buf, b"x-other"));
    }

    #[test]
    fn body_fields_gather_length_and_codings() {
        let mut body = BodyFields::default();
        body.add(Kind::ContentLength, b"5").unwrap();
        body.add(Kind::ContentLength, b" 5").unwrap();
        body.add(Kind::Host, b"x").unwrap();
        assert_eq!(body.add(Kind::ContentLength, b"6"), Err(BadLength));
        body.add(Kind::TransferEncoding, b"gzip, chunked").unwrap();
        assert_eq!(
            (body.length, body.coded(), body.chunked, body.only_chunked),
            (Some(5), true, true, false)
        );
        let mut twice = BodyFields::default();
        twice.add(Kind::TransferEncoding, b"Chunked ").unwrap();
        assert!(twice.only_chunked);
        twice.add(Kind::TransferEncoding, b"chunked").unwrap();
        assert!(twice.only_chunked && twice.codings == 2);
        assert_eq!(twice.chunked_codings, 2);
        let mut listed = BodyFields::default();
        listed
            .add(Kind::TransferEncoding, b"chunked, gzip, Chunked")
            .unwrap();
        assert_eq!((listed.codings, listed.chunked_codings), (1, 2));
    }

    #[test]
    fn content_length_and_chunked() {
        assert_eq!(content_length(b" 42 "), Some(42));
        assert_eq!(content_length(b"0"), Some(0));
        assert_eq!(content_length(b"x"), None);
        assert_eq!(content_length(b"-1"), None);
        assert_eq!(content_length(b""), None);
        assert_eq!(content_length(b"99999999999999999999"), None);
        assert_eq!(content_length(b"9223372036854775807"), Some(MAX_LENGTH));
        assert_eq!(content_length(b"9223372036854775808"), None);
        assert!(ends_with_chunked(b"gzip, Chunked"));
        assert!(!ends_with_chunked(b"chunked, gzip"));
    }
}
