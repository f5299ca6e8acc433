//! What a host name may look like (pure): the one grammar for the hosts of backend URLs and for
//! the frontend hosts the route commands write. A name is dot-separated labels of ASCII letters,
//! digits, `-` and `_` (service names such as `my_app` resolve in container networks), at most
//! 63 bytes each and 253 in all, with an optional final dot; or an IPv6 literal in brackets.
//! Anything else (a space, a control, a second URL glued on, an empty label, 10 KB) could never
//! be resolved, so it is refused where it is written and ignored where it is read.

use std::net::Ipv6Addr;

/// The longest name DNS can carry, in bytes, without its final dot.
const MAX_NAME: usize = 253;
/// The longest label.
const MAX_LABEL: usize = 63;

/// Why a text is not a host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HostNameError {
    #[error("empty host")]
    Empty,
    #[error("longer than {MAX_NAME} bytes")]
    TooLong,
    #[error("empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("a label longer than {MAX_LABEL} bytes")]
    LabelTooLong,
    #[error("not ASCII (give the punycode form, xn--...)")]
    NotAscii,
    #[error("{0:?} is not allowed in a host name (letters, digits, '-', '_' and '.')")]
    BadCharacter(char),
    #[error("invalid IPv6 address in brackets")]
    BadIpv6,
}

/// Checks `host`: a name, an IPv4 address (a name by this grammar) or `[IPv6]`.
pub(crate) fn check(host: &str) -> Result<(), HostNameError> {
    if let Some(inner) = host.strip_prefix('[') {
        let address = inner.strip_suffix(']').ok_or(HostNameError::BadIpv6)?;
        return address
            .parse::<Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| HostNameError::BadIpv6);
    }
    if host.is_empty() {
        return Err(HostNameError::Empty);
    }
    if let Some(c) = host.chars().find(|c| !c.is_ascii()) {
        return Err(if c.is_control() {
            HostNameError::BadCharacter(c)
        } else {
            HostNameError::NotAscii
        });
    }
    if let Some(c) = host
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(HostNameError::BadCharacter(c));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.len() > MAX_NAME {
        return Err(HostNameError::TooLong);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostNameError::EmptyLabel);
        }
        if label.len() > MAX_LABEL {
            return Err(HostNameError::LabelTooLong);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_addresses_and_service_names_pass() {
        for host in [
            "example.com",
            "Example.COM",
            "a-b.c",
            "my_app",
            "10.0.0.1",
            "localhost",
            "example.com.",
            "[::1]",
            "[2001:db8::1]",
        ] {
            assert_eq!(check(host), Ok(()), "{host}");
        }
        assert_eq!(check(&format!("{}.com", "a".repeat(63))), Ok(()));
    }

    #[test]
    fn what_could_never_resolve_is_refused_with_its_reason() {
        use HostNameError::*;
        for (host, why) in [
            ("", Empty),
            ("exa mple.com", BadCharacter(' ')),
            ("127.0.0.1:81 http", BadCharacter(':')),
            ("a\r\nb", BadCharacter('\r')),
            ("a\u{85}b", BadCharacter('\u{85}')),
            ("Bad_Host..com", EmptyLabel),
            (".a.com", EmptyLabel),
            ("bücher.de", NotAscii),
            ("a/b", BadCharacter('/')),
            ("[::1", BadIpv6),
            ("[nope]", BadIpv6),
        ] {
            assert_eq!(check(host), Err(why), "{host:?}");
        }
        assert_eq!(check(&"a".repeat(10_000)), Err(TooLong));
        assert_eq!(check(&format!("{}.com", "a".repeat(64))), Err(LabelTooLong));
    }
}
