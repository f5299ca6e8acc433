//! A client's request head, parsed in place (httparse) with the facts routing and forwarding
//! need found in the same pass over its fields (pure).
//!
//! Framing is decided here, strictly: a request with both `Transfer-Encoding` and
//! `Content-Length`, with two different lengths, or a length of 2^63 or more, is refused (request
//! smuggling lives in the disagreement between two parsers). Like nginx, the one transfer coding
//! accepted is `chunked`, alone, in one field: `chunked, chunked`, two `Transfer-Encoding` fields,
//! `gzip, chunked`, `,chunked` all get 400. RFC 9112 §6.1 would allow a 501 for an unknown
//! coding; one answer for every shape keeps a single refusal path, and none of them can be
//! framed the same way by every parser behind us.

use std::mem::MaybeUninit;

use super::fields::{self, BadLength, BodyFields, ConnectionTokens, Field, Kind};

/// Most header fields a request may carry (hyper's limit too); more is a 431.
pub(crate) const MAX_HEADERS: usize = 100;
/// Largest request head accepted; a longer one is a 431.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
}

/// Why a head cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// Not HTTP/1.x, or framing that cannot be trusted: 400.
    Malformed,
    /// Too many fields, or a head over `MAX_HEAD_BYTES`: 431.
    TooLarge,
}

/// Which of Hipache's forwarding headers the client already sent.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ForwardedPresent {
    pub(crate) for_: bool,
    pub(crate) real_ip: bool,
    pub(crate) proto: bool,
    pub(crate) protocol: bool,
    pub(crate) port: bool,
}

impl ForwardedPresent {
    /// Notes a field of the request, by its kind: one of the forwarding headers, or another.
    pub(crate) fn note(&mut self, kind: Kind) {
        match kind {
            Kind::XForwardedFor => self.for_ = true,
            Kind::XRealIp => self.real_ip = true,
            Kind::XForwardedProto => self.proto = true,
            Kind::XForwardedProtocol => self.protocol = true,
            Kind::XForwardedPort => self.port = true,
            _ => {}
        }
    }
}

#[derive(Debug)]
pub(crate) struct RequestHead {
    /// Bytes of the head, blank line included: the body (if any) starts there.
    pub(crate) len: usize,
    method: (u32, u32),
    target: (u32, u32),
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) minor: u8,
    pub(crate) fields: Vec<Field>,
    pub(crate) framing: Framing,
    pub(crate) connection: ConnectionTokens,
    pub(crate) expects_continue: bool,
    pub(crate) debug: bool,
    pub(crate) forwarded: ForwardedPresent,
    /// The `Upgrade` field, when `Connection` asks for it (HTTP/1.1 only).
    upgrade: Option<usize>,
    host: Option<usize>,
    referer: Option<usize>,
    user_agent: Option<usize>,
}

impl RequestHead {
    /// `Ok(None)` while the head is not complete in `buf`.
    pub(crate) fn parse(buf: &[u8]) -> Result<Option<Self>, HeadError> {
        // Left uninitialised for httparse to fill: zeroing 100 of them cost each request 3 KiB
        // of writes.
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut []);
        let len = match request.parse_with_uninit_headers(buf, &mut headers) {
            Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD_BYTES => len,
            // A head that completes in one read past the limit is as large as one that does not.
            Ok(httparse::Status::Complete(_)) => return Err(HeadError::TooLarge),
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
                return Err(HeadError::TooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Err(_) => return Err(HeadError::Malformed),
        };
        let (Some(method), Some(target), Some(minor)) =
            (request.method, request.path, request.version)
        else {
            return Err(HeadError::Malformed);
        };
        let mut head = Self {
            len,
            method: fields::span(buf, method.as_bytes()),
            target: fields::span(buf, target.as_bytes()),
            minor,
            fields: Vec::with_capacity(request.headers.len()),
            framing: Framing::Length(0),
            connection: ConnectionTokens::default(),
            expects_continue: false,
            debug: false,
            forwarded: ForwardedPresent::default(),
            upgrade: None,
            host: None,
            referer: None,
            user_agent: None,
        };
        let mut body = BodyFields::default();
        for header in request.headers.iter() {
            let field = Field::locate(buf, header.name.as_bytes(), header.value);
            let index = head.fields.len();
            body.add(field.kind, header.value)
                .map_err(|BadLength| HeadError::Malformed)?;
            match field.kind {
                Kind::Host if head.host.is_some() => return Err(HeadError::Malformed),
                Kind::Host => head.host = Some(index),
                Kind::Connection => head.connection.add(header.value),
                Kind::Upgrade => head.upgrade = Some(index),
                // HTTP/1.0 knows no expectations (RFC 9110 §10.1.1): the field just passes on.
                Kind::Expect => {
                    head.expects_continue |= minor == 1
                        && fields::trim(header.value).eq_ignore_ascii_case(b"100-continue")
                }
                Kind::XDebug => head.debug = true,
                kind @ (Kind::XForwardedFor
                | Kind::XRealIp
                | Kind::XForwardedProto
                | Kind::XForwardedProtocol
                | Kind::XForwardedPort) => head.forwarded.note(kind),
                Kind::Referer => head.referer = Some(index),
                Kind::UserAgent => head.user_agent = Some(index),
                _ => {}
            }
            head.fields.push(field);
        }
        head.framing = match body {
            BodyFields {
                codings: 0, length, ..
            } => Framing::Length(length.unwrap_or(0)),
            BodyFields {
                codings: 1,
                only_chunked: true,
                length: None,
                ..
            } if minor == 1 => Framing::Chunked,
            _ => return Err(HeadError::Malformed),
        };
        if !(minor == 1 && head.connection.upgrade) {
            head.upgrade = None;
        }
        Ok(Some(head))
    }

    pub(crate) fn method<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.method.0 as usize..self.method.1 as usize]
    }

    /// The request target as sent: origin-form (`/path?q`), absolute-form or `*`.
    pub(crate) fn target<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.target.0 as usize..self.target.1 as usize]
    }

    /// The origin-form target and the authority of an absolute-form one (`http://host/p`).
    /// From `http://host?q` the path is `?q`: the encoder writes the `/` in front of it.
    pub(crate) fn origin_form<'a>(&self, buf: &'a [u8]) -> (&'a [u8], Option<&'a [u8]>) {
        let target = self.target(buf);
        let Some(rest) = strip_scheme(target) else {
            return (target, None);
        };
        let end = rest
            .iter()
            .position(|&b| matches!(b, b'/' | b'?'))
            .unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let path: &[u8] = if path.is_empty() { b"/" } else { path };
        (path, Some(authority))
    }

    /// The value routing uses: `Host`, else the authority of an absolute-form target.
    pub(crate) fn host<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        match self.host {
            Some(index) => Some(fields::trim(self.fields[index].value(buf))),
            None => self.origin_form(buf).1,
        }
    }

    pub(crate) fn has_host_field(&self) -> bool {
        self.host.is_some()
    }

    /// The protocol asked for, when this is an upgrade request.
    pub(crate) fn upgrade<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        self.upgrade.map(|index| self.fields[index].value(buf))
    }

    pub(crate) fn referer<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        self.referer
            .map_or(b"", |index| self.fields[index].value(buf))
    }

    pub(crate) fn user_agent<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        self.user_agent
            .map_or(b"", |index| self.fields[index].value(buf))
    }

    /// Whether the client wants the connection kept after this exchange (RFC 9112 §9.3).
    pub(crate) fn wants_keep_alive(&self) -> bool {
        match self.minor {
            1 => !self.connection.close,
            _ => self.connection.keep_alive && !self.connection.close,
        }
    }

    pub(crate) fn is_head(&self, buf: &[u8]) -> bool {
        self.method(buf) == b"HEAD"
    }

    pub(crate) fn has_body(&self) -> bool {
        self.framing != Framing::Length(0)
    }
}

/// The rest of `http://…` or `https://…`, scheme matched case-insensitively.
fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    ["http://", "https://"].iter().find_map(|scheme| {
        let prefix = target.get(..scheme.len())?;
        prefix
            .eq_ignore_ascii_case(scheme.as_bytes())
            .then(|| &target[scheme.len()..])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8]) -> Result<Option<RequestHead>, HeadError> {
        RequestHead::parse(text)
    }

    #[test]
    fn facts_come_from_one_pass() {
        let buf = b"POST /up?x=1 HTTP/1.1\r\nHost: A.test:8080\r\nContent-Length: 5\r\n\
            Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nX-Debug: 1\r\n\
            Referer: r\r\nUser-Agent: ua\r\nX-Real-IP: 1.2.3.4\r\n\r\nhello";
        let head = parse(buf).unwrap().unwrap();
        assert_eq!(head.len, buf.len() - 5);
        assert_eq!(head.method(buf), b"POST");
        assert_eq!(head.target(buf), b"/up?x=1");
        assert_eq!(head.host(buf), Some(&b"A.test:8080"[..]));
        assert_eq!(head.framing, Framing::Length(5));
        assert_eq!(head.upgrade(buf), Some(&b"websocket"[..]));
        assert!(head.debug && head.forwarded.real_ip && !head.forwarded.for_);
        assert_eq!(
            (head.referer(buf), head.user_agent(buf)),
            (&b"r"[..], &b"ua"[..])
        );
        assert!(head.wants_keep_alive());
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
        let big = [b'a'; MAX_HEAD_BYTES];
        let mut long = b"GET /".to_vec();
        long.extend_from_slice(&big);
        assert_eq!(parse(&long).unwrap_err(), HeadError::TooLarge);
        long.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        assert_eq!(
            parse(&long).unwrap_err(),
            HeadError::TooLarge,
            "complete but too long"
        );
    }

    #[test]
    fn framing_that_could_smuggle_is_refused() {
        let refused: [&[u8]; 13] = [
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: ,chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: identity, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n",
        ];
        for text in refused {
            assert_eq!(
                parse(text).unwrap_err(),
                HeadError::Malformed,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        let same_twice = b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(
            parse(same_twice).unwrap().unwrap().framing,
            Framing::Length(2)
        );
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding:  Chunked \r\n\r\n";
        assert_eq!(parse(chunked).unwrap().unwrap().framing, Framing::Chunked);
    }

    #[test]
    fn garbage_and_unknown_versions_are_malformed() {
        for text in [
            &b"GARBAGE\r\n\r\n"[..],
            b"GET / HTTP/9.9\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        ] {
            assert_eq!(parse(text).unwrap_err(), HeadError::Malformed);
        }
    }

    #[test]
    fn only_http11_expects_continue() {
        let expects = |text: &[u8]| parse(text).unwrap().unwrap().expects_continue;
        assert!(expects(b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n"));
        assert!(!expects(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"));
    }

    #[test]
    fn keep_alive_rules_by_version() {
        let head = |text: &[u8]| parse(text).unwrap().unwrap().wants_keep_alive();
        assert!(head(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!head(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn absolute_form_targets_give_path_and_authority() {
        let buf = b"GET http://Other.test:81/p?q HTTP/1.1\r\n\r\n";
        let head = parse(buf).unwrap().unwrap();
        assert_eq!(
            head.origin_form(buf),
            (&b"/p?q"[..], Some(&b"Other.test:81"[..]))
        );
        assert_eq!(head.host(buf), Some(&b"Other.test:81"[..]));
        let buf = b"GET HTTP://h HTTP/1.1\r\nHost: mine\r\n\r\n";
        let head = parse(buf).unwrap().unwrap();
        assert_eq!(head.origin_form(buf), (&b"/"[..], Some(&b"h"[..])));
        assert_eq!(head.host(buf), Some(&b"mine"[..]));
        let buf = b"GET /plain HTTP/1.1\r\n\r\n";
        assert_eq!(
            parse(buf).unwrap().unwrap().origin_form(buf),
            (&b"/plain"[..], None)
        );
    }
}
