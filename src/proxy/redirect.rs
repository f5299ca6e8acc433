//! `server.forceSecure`: the `301` that sends a plain-HTTP request to the same host and path
//! over HTTPS. The decision is made here once; each front end only renders the answer.

use crate::host_keys::{self, HostRequest};

/// What `forceSecure` does with a plain-HTTP request for `host_header`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Secure {
    /// Not redirected: the `__ping__` probe, which load balancers send over plain HTTP and
    /// which must answer `200` there.
    Exempt,
    /// A `301` to this URL.
    MovedTo(String),
    /// A host that could not stand in a URL as is, which must not be echoed into a header.
    BadHost,
}

/// The forceSecure decision for a plain-HTTP request to `host_header` and `target` (its path
/// and query), on the HTTPS listener's `https_port`.
pub(crate) fn decide(host_header: &str, target: &[u8], https_port: u16) -> Secure {
    match host_keys::parse_host(host_header) {
        HostRequest::Ping => Secure::Exempt,
        HostRequest::Route(host) => {
            secure_location(host, target, https_port).map_or(Secure::BadHost, Secure::MovedTo)
        }
    }
}

/// The `Location` for `host` (port already stripped) and `target`, or `None` for a host or
/// target that cannot be written into the URL as is.
fn secure_location(host: &str, target: &[u8], https_port: u16) -> Option<String> {
    let is_host_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
    let bracketed_ip = host.starts_with('[')
        && host.ends_with(']')
        && host[1..host.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    if host.is_empty() || !(bracketed_ip || host.bytes().all(is_host_byte)) {
        return None;
    }
    // Only the path and query go on: an origin-form target is written as sent (it is already
    // valid in a header); `*` (OPTIONS) and a bare query mean the root.
    let target = std::str::from_utf8(target).ok()?;
    let target = match target.as_bytes().first() {
        Some(b'/') => target.to_owned(),
        Some(b'?') => format!("/{target}"),
        _ => "/".to_owned(),
    };
    if !target.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    Some(match https_port {
        443 => format!("https://{host}{target}"),
        port => format!("https://{host}:{port}{target}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_is_never_redirected() {
        assert_eq!(decide("__ping__", b"/", 443), Secure::Exempt);
        assert_eq!(decide("__ping__", b"/anything?x", 8443), Secure::Exempt);
    }

    #[test]
    fn location_keeps_host_path_and_query_and_names_a_port_other_than_443() {
        let at = |host, target: &str, port| match decide(host, target.as_bytes(), port) {
            Secure::MovedTo(location) => Some(location),
            _ => None,
        };
        assert_eq!(
            at("www.example.com:8080", "/a/b?c=1&d", 443).as_deref(),
            Some("https://www.example.com/a/b?c=1&d")
        );
        assert_eq!(
            at("Example.com", "/", 8443).as_deref(),
            Some("https://Example.com:8443/")
        );
        assert_eq!(
            at("[::1]:80", "?q", 443).as_deref(),
            Some("https://[::1]/?q")
        );
        assert_eq!(at("a.test", "*", 443).as_deref(), Some("https://a.test/"));
    }

    #[test]
    fn hosts_that_could_change_the_url_are_refused() {
        for host in ["evil.com/x", "a b", "user@host", "", "a.com#", "[::1"] {
            assert_eq!(decide(host, b"/", 443), Secure::BadHost, "{host:?}");
        }
    }
}
