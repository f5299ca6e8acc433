//! What an HTTP/3 request's head must be before it is routed, beside what the `h3` crate
//! checks itself (a stream error, before we see the request, for an unknown or repeated
//! pseudo-header, one after a regular field, no `:method`, an `:authority` and a `host` that
//! differ, a field section over our `max_field_section_size`): malformed requests under
//! RFC 9114 §4.2 and §4.3.1 that the crate lets through, which routing and a backend could
//! read two ways. And how such a request is written for the backend.

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Uri};

use crate::wire::headers::{self, Forwarded};

/// Fields that are connection-specific in HTTP/1.1 and malformed in HTTP/3 (RFC 9114 §4.2),
/// with `te` (allowed with `trailers` only).
const CONNECTION_SPECIFIC: [header::HeaderName; 4] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HeaderName::from_static("keep-alive"),
];

/// Whether `parts` is a malformed request (RFC 9114 §4.1.2): a connection-specific field, a
/// `te` other than `trailers`, a request that is not a CONNECT without `:scheme` or `:path`
/// (an empty `:path` is refused by the crate), `:path *` on anything but OPTIONS, a CONNECT
/// without `:authority` or with a `:scheme` or `:path` and no `:protocol`, two `host` fields,
/// or a `content-length` that is not one number.
pub(super) fn is_malformed(parts: &Parts) -> bool {
    let fields = &parts.headers;
    if CONNECTION_SPECIFIC
        .iter()
        .any(|name| fields.contains_key(name))
        || fields.contains_key("proxy-connection")
    {
        return true;
    }
    if fields
        .get_all(header::TE)
        .iter()
        .any(|te| !te.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        return true;
    }
    if fields.get_all(header::HOST).iter().nth(1).is_some() {
        return true;
    }
    let mut lengths = fields.get_all(header::CONTENT_LENGTH).iter();
    if let Some(length) = lengths.next() {
        let is_number = !length.is_empty() && length.as_bytes().iter().all(u8::is_ascii_digit);
        if !is_number || lengths.next().is_some() {
            return true;
        }
    }
    let uri = &parts.uri;
    let extended = parts.extensions.get::<::h3::ext::Protocol>().is_some();
    if parts.method == Method::CONNECT && !extended {
        return uri.authority().is_none() || uri.scheme().is_some() || has_path(uri);
    }
    if uri.scheme().is_none() || !has_path(uri) || uri.authority().is_none() {
        return true;
    }
    uri.path() == "*" && parts.method != Method::OPTIONS
}

/// Whether the request had a `:path`: `h3` builds the URI from it, and a URI without one reads
/// as `/`.
fn has_path(uri: &Uri) -> bool {
    uri.path_and_query().is_some_and(|p| !p.as_str().is_empty())
}

/// Origin-form URI, a `Host` field, and the forwarding fields.
pub(super) fn prepare_for_backend(parts: &mut Parts, forwarded: &Forwarded, keep_alive: bool) {
    if let Some(authority) = parts.uri.authority() {
        if !parts.headers.contains_key(header::HOST) {
            if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(header::HOST, host);
            }
        }
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        if let Ok(origin_form) = Uri::try_from(path) {
            parts.uri = origin_form;
        }
    }
    headers::rewrite_request(&mut parts.headers, forwarded, keep_alive);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, fields: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::builder().method(method).uri(uri);
        for (name, value) in fields {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_plain_request_is_well_formed() {
        assert!(!is_malformed(&parts("GET", "https://a.test/x?y", &[])));
        let te = [("te", "trailers"), ("content-length", "3")];
        assert!(!is_malformed(&parts("POST", "https://a.test/", &te)));
    }

    #[test]
    fn connection_specific_fields_are_malformed() {
        for field in [
            ("connection", "close"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("keep-alive", "5"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip"),
        ] {
            assert!(
                is_malformed(&parts("GET", "https://a.test/", &[field])),
                "{field:?}"
            );
        }
    }

    #[test]
    fn missing_or_misplaced_pseudo_headers_are_malformed() {
        // No `:scheme` (and no authority): what `h3` builds from a bare `:path`.
        assert!(is_malformed(&parts("GET", "/x", &[("host", "a.test")])));
        assert!(is_malformed(&parts("CONNECT", "https://a.test/", &[])));
    }

    #[test]
    fn two_hosts_or_two_lengths_are_malformed() {
        let hosts = [("host", "a.test"), ("host", "b.test")];
        assert!(is_malformed(&parts("GET", "https://a.test/", &hosts)));
        let lengths = [("content-length", "1"), ("content-length", "1")];
        assert!(is_malformed(&parts("POST", "https://a.test/", &lengths)));
        let signed = [("content-length", "+1")];
        assert!(is_malformed(&parts("POST", "https://a.test/", &signed)));
    }
}
