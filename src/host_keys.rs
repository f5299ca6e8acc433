//! From a `Host` header to the ordered list of frontend keys to try (pure).
//!
//! Hipache's rule: the host itself, then, keeping only its last six labels, `*.` followed by the
//! host minus one, two, ... labels, and finally `*`.

/// What the `Host` header asks for before any lookup.
#[derive(Debug, PartialEq, Eq)]
pub enum HostRequest<'a> {
    /// `Host: __ping__`: the liveness probe.
    Ping,
    /// A host name to route, with the port removed (not yet lowercased when borrowed).
    Route(&'a str),
}

/// Liveness probe host: answered `ok` without touching the route source.
pub(crate) const PING_HOST: &str = "__ping__";

/// Most labels kept before building wildcards, so a long host costs a bounded lookup.
const MAX_LABELS: usize = 6;

/// Classifies a `Host` header value and strips its port.
pub fn parse_host(header: &str) -> HostRequest<'_> {
    if header == PING_HOST {
        return HostRequest::Ping;
    }
    let host = if let Some(bracketed) = header.strip_prefix('[') {
        // IPv6 literal: keep the brackets, drop what follows `]`.
        match bracketed.find(']') {
            Some(end) => &header[..end + 2],
            None => header,
        }
    } else {
        header.split(':').next().unwrap_or(header)
    };
    HostRequest::Route(host)
}

/// Lowercases a host in place only when needed (most hosts already are).
pub fn normalize(host: &str) -> std::borrow::Cow<'_, str> {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

/// The frontend keys to try for a normalised host, most specific first.
pub fn candidates(host: &str) -> Vec<String> {
    let mut keys = Vec::with_capacity(MAX_LABELS + 2);
    keys.push(host.to_owned());
    let labels: Vec<&str> = host.split('.').collect();
    let kept = &labels[labels.len().saturating_sub(MAX_LABELS)..];
    for start in 1..kept.len() {
        keys.push(format!("*.{}", kept[start..].join(".")));
    }
    keys.push("*".to_owned());
    keys
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_host_is_cut_to_six_labels_before_wildcards() {
        assert_eq!(
            candidates("a.b.c.d.e.f.g.h"),
            [
                "a.b.c.d.e.f.g.h",
                "*.d.e.f.g.h",
                "*.e.f.g.h",
                "*.f.g.h",
                "*.g.h",
                "*.h",
                "*"
            ]
        );
    }

    #[test]
    fn short_and_naked_hosts() {
        assert_eq!(
            candidates("www.example.com"),
            ["www.example.com", "*.example.com", "*.com", "*"]
        );
        assert_eq!(candidates("example.com"), ["example.com", "*.com", "*"]);
        assert_eq!(candidates("localhost"), ["localhost", "*"]);
    }

    /// The frontend `host` reaches among those registered: the first of its candidates that
    /// exists, as every route source reads them.
    fn reached<'a>(frontends: &[&'a str], host: &str) -> Option<&'a str> {
        let host = normalize(host);
        candidates(&host)
            .iter()
            .find_map(|key| frontends.iter().copied().find(|f| f == key))
    }

    /// Wildcard precedence, decided here once; the black-box suite keeps one case
    /// (`hipache_suite::wildcard_priority`) to prove the binary routes by it.
    #[test]
    fn exact_then_nearest_wildcard_then_star() {
        let registered = ["app.example.com", "*.example.com", "*"];
        for (host, frontend) in [
            ("app.example.com", "app.example.com"),
            ("other.example.com", "*.example.com"),
            ("deep.other.example.com", "*.example.com"),
            ("unrelated.org", "*"),
        ] {
            assert_eq!(reached(&registered, host), Some(frontend), "{host}");
        }
        let nested = ["*.b.example.com", "*.example.com"];
        assert_eq!(reached(&nested, "a.b.example.com"), Some("*.b.example.com"));
        assert_eq!(reached(&nested, "a.c.example.com"), Some("*.example.com"));
        let six = ["*.c.d.e.f.g.h", "*.d.e.f.g.h"];
        assert_eq!(reached(&six, "a.b.c.d.e.f.g.h"), Some("*.d.e.f.g.h"));
        for host in ["a", "a.b", "x.y.z.example.org"] {
            assert_eq!(reached(&["*"], host), Some("*"), "{host}");
        }
    }

    /// Hipache's own functional suite, its domain-matching rows with wildcards.
    #[test]
    fn hipache_domain_matching() {
        let sub = ["*.foo.bar"];
        assert_eq!(reached(&sub, "test.foo.bar"), Some("*.foo.bar"));
        assert_eq!(reached(&sub, "pipo.foo.bar"), Some("*.foo.bar"));
        assert_eq!(reached(&sub, "foo.bar"), None);
        let short = ["*.foo"];
        assert_eq!(reached(&short, "bar.foo"), Some("*.foo"));
        assert_eq!(reached(&short, "foo.bar"), None);
        assert_eq!(reached(&short, "foo"), None);
        let depth = [
            "*.quux",
            "*.qux.quux",
            "*.baz.qux.quux",
            "*.bar.baz.qux.quux",
            "foo.bar.baz.qux.quux",
            "*.foo.bar.baz.qux.quux",
            "*.quuux.foo.bar.baz.qux.quux",
        ];
        for (host, frontend) in [
            (
                "too.deep.quuux.foo.bar.baz.qux.quux",
                "*.foo.bar.baz.qux.quux",
            ),
            ("too.deep.foo.bar.baz.qux.quux", "*.foo.bar.baz.qux.quux"),
            ("foo.bar.baz.qux.quux", "foo.bar.baz.qux.quux"),
            ("bar.bar.baz.qux.quux", "*.bar.baz.qux.quux"),
            ("foo.baz.qux.quux", "*.baz.qux.quux"),
            ("foo.qux.quux", "*.qux.quux"),
            ("foo.quux", "*.quux"),
        ] {
            assert_eq!(reached(&depth, host), Some(frontend), "{host}");
        }
    }

    #[test]
    fn ping_and_ports() {
        assert_eq!(parse_host("__ping__"), HostRequest::Ping);
        assert_eq!(
            parse_host("Example.com:8080"),
            HostRequest::Route("Example.com")
        );
        assert_eq!(parse_host("example.com"), HostRequest::Route("example.com"));
        assert_eq!(parse_host("[::1]:8080"), HostRequest::Route("[::1]"));
        assert_eq!(normalize("WWW.Example.com"), "www.example.com");
    }
}
