//! A backend address as read from a frontend list: parsing and Hipache's normalised form.
//!
//! Hipache hands each list entry to node's `url.parse` and then connects, in plain HTTP, to its
//! host and port (80 when absent), ignoring any path. We keep that meaning, reject what it could
//! never connect to, and remember the normalised text (`http://127.0.0.1:8080/`) that Hipache
//! publishes on the `dead` channel and shows in `X-Debug-Backend-Url`.

use std::fmt;

/// Why a backend entry cannot be used; logged once with the frontend it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BackendUrlError {
    #[error("missing scheme (expected http://host:port)")]
    MissingScheme,
    #[error("missing host")]
    MissingHost,
    #[error("invalid port")]
    InvalidPort,
}

/// A parsed backend: where to connect and how Hipache names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct BackendUrl {
    host: String,
    port: u16,
    /// `https://`: reached over TLS (Hipache spoke plain HTTP to it: its issue 231).
    tls: bool,
    normalized: String,
}

impl BackendUrl {
    /// Parses `scheme://[user@]host[:port][/path]`. IPv6 hosts are written in brackets.
    pub(crate) fn parse(text: &str) -> Result<Self, BackendUrlError> {
        let text = text.trim();
        let (scheme, rest) = text
            .split_once("://")
            .ok_or(BackendUrlError::MissingScheme)?;
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+')
        {
            return Err(BackendUrlError::MissingScheme);
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let (host, port) = split_host_port(authority)?;
        if host.is_empty() {
            return Err(BackendUrlError::MissingHost);
        }
        let host = host.to_ascii_lowercase();
        let scheme = scheme.to_ascii_lowercase();
        let shown_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let normalized = match port {
            Some(port) => format!("{scheme}://{shown_host}:{port}/"),
            None => format!("{scheme}://{shown_host}/"),
        };
        let tls = scheme == "https";
        Ok(Self {
            host,
            port: port.unwrap_or(if tls { 443 } else { 80 }),
            tls,
            normalized,
        })
    }

    /// Host name or IP address (IPv6 without brackets).
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Whether the backend is reached over TLS (`https://`).
    pub(crate) fn is_tls(&self) -> bool {
        self.tls
    }

    /// Hipache's normalised form, e.g. `http://127.0.0.1:8080/`.
    pub(crate) fn as_str(&self) -> &str {
        &self.normalized
    }
}

impl fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized)
    }
}

fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), BackendUrlError> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or(BackendUrlError::MissingHost)?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(BackendUrlError::InvalidPort),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(port) => Some(
            port.parse::<u16>()
                .map_err(|_| BackendUrlError::InvalidPort)?,
        ),
    };
    Ok((host, port))
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_defaults_to_80_and_form_keeps_given_port() {
        let url = BackendUrl::parse("http://127.0.0.1:39947").unwrap();
        assert_eq!((url.host(), url.port()), ("127.0.0.1", 39947));
        assert_eq!(url.as_str(), "http://127.0.0.1:39947/");
        let url = BackendUrl::parse("http://Example.COM/some/path").unwrap();
        assert_eq!((url.host(), url.port()), ("example.com", 80));
        assert_eq!(url.as_str(), "http://example.com/");
    }

    #[test]
    fn https_is_tls_on_port_443_by_default() {
        let url = BackendUrl::parse("https://Example.com").unwrap();
        assert_eq!(
            (url.host(), url.port(), url.is_tls()),
            ("example.com", 443, true)
        );
        let url = BackendUrl::parse("https://10.0.0.1:8443/").unwrap();
        assert_eq!((url.port(), url.is_tls()), (8443, true));
        assert!(!BackendUrl::parse("http://a").unwrap().is_tls());
    }

    #[test]
    fn ipv6_and_userinfo_are_understood() {
        let url = BackendUrl::parse("http://[::1]:8080").unwrap();
        assert_eq!((url.host(), url.port()), ("::1", 8080));
        assert_eq!(url.as_str(), "http://[::1]:8080/");
        let url = BackendUrl::parse("http://user:pw@10.0.0.1:81/").unwrap();
        assert_eq!((url.host(), url.port()), ("10.0.0.1", 81));
    }

    #[test]
    fn unusable_entries_are_rejected() {
        assert_eq!(
            BackendUrl::parse("127.0.0.1:80"),
            Err(BackendUrlError::MissingScheme)
        );
        assert_eq!(
            BackendUrl::parse("http://"),
            Err(BackendUrlError::MissingHost)
        );
        assert_eq!(
            BackendUrl::parse("http://:80"),
            Err(BackendUrlError::MissingHost)
        );
        assert_eq!(
            BackendUrl::parse("http://a:99999"),
            Err(BackendUrlError::InvalidPort)
        );
        assert_eq!(
            BackendUrl::parse("http://a:x"),
            Err(BackendUrlError::InvalidPort)
        );
    }
}
