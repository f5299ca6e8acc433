//! `server.forceSecure`: the `301` that sends a plain-HTTP request to the same host and path
//! over HTTPS. The decision is made here once; each front end only renders the answer.

use crate::router::{self, HostRequest};

/// The `Location` for a request to `host_header` (port stripped, `__ping__` included) and
/// `target` (its path and query), on the HTTPS listener's `https_port`. `None` for a host that
/// could not stand in a URL as is, which must not be echoed into a header.
pub(crate) fn secure_location(host_header: &str, target: &[u8], https_port: u16) -> Option<String> {
    let host = match router::parse_host(host_header) {
        HostRequest::Ping => router::PING_HOST,
        HostRequest::Route(host) => host,
    };
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
    fn location_keeps_host_path_and_query_and_names_a_port_other_than_443() {
        let at = |host, target: &str, port| secure_location(host, target.as_bytes(), port);
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
        assert_eq!(
            at("__ping__", "/", 443).as_deref(),
            Some("https://__ping__/")
        );
        assert_eq!(at("a.test", "*", 443).as_deref(), Some("https://a.test/"));
    }

    #[test]
    fn hosts_that_could_change_the_url_are_refused() {
        for host in ["evil.com/x", "a b", "user@host", "", "a.com#", "[::1"] {
            assert_eq!(secure_location(host, b"/", 443), None, "{host:?}");
        }
    }
}
