//! A backend address as read from a frontend list: parsing and Hipache's normalised form.
//!
//! Hipache hands each list entry to node's `url.parse` and then connects, in plain HTTP, to its
//! host and port (80 when absent), ignoring any path. We keep that meaning, reject what it could
//! never connect to, and remember the normalised text (`http://127.0.0.1:8080/`) that Hipache
//! publishes on the `dead` channel and shows in `X-Debug-Backend-Url`.

use std::fmt;

use crate::host_name::{self, HostNameError};

/// Why a backend entry cannot be used; logged once with the frontend it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BackendUrlError {
    #[error("missing scheme (expected http://host:port)")]
    MissingScheme,
    #[error("missing host")]
    MissingHost,
    #[error("invalid port")]
    InvalidPort,
    #[error("invalid host: {0}")]
    InvalidHost(HostNameError),
    #[error("unsupported scheme {0:?} (expected http or https)")]
    UnsupportedScheme(String),
    #[error("a path, query or fragment would be ignored (the proxy forwards the client's own path): give scheme://host:port")]
    IgnoredPath,
    #[error("user info would be ignored (the proxy sends no credentials to a backend)")]
    IgnoredUserInfo,
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
    /// Parses `scheme://[user@]host[:port][/path]` as the proxy reads a frontend list: any
    /// scheme but `https` is plain HTTP, user info and path are ignored, as Hipache did. IPv6
    /// hosts are written in brackets. A host that is no host name ([`host_name`]) is refused.
    pub(crate) fn parse(text: &str) -> Result<Self, BackendUrlError> {
        Self::parse_parts(&Parts::split(text)?)
    }

    /// Parses a URL about to be written into a frontend list (the route commands): what
    /// [`parse`](Self::parse) accepts, less what the proxy would silently ignore or misread (a
    /// scheme other than `http`/`https`, user info, a path, query or fragment).
    pub(crate) fn parse_to_store(text: &str) -> Result<Self, BackendUrlError> {
        let parts = Parts::split(text)?;
        let url = Self::parse_parts(&parts)?;
        if !matches!(parts.scheme.to_ascii_lowercase().as_str(), "http" | "https") {
            return Err(BackendUrlError::UnsupportedScheme(parts.scheme.to_owned()));
        }
        if parts.user_info {
            return Err(BackendUrlError::IgnoredUserInfo);
        }
        if !matches!(parts.after_authority, "" | "/") {
            return Err(BackendUrlError::IgnoredPath);
        }
        Ok(url)
    }

    fn parse_parts(parts: &Parts<'_>) -> Result<Self, BackendUrlError> {
        let (host, port) = split_host_port(parts.authority)?;
        if host.is_empty() {
            return Err(BackendUrlError::MissingHost);
        }
        let checked = if parts.authority.starts_with('[') {
            host_name::check(&format!("[{host}]"))
        } else {
            host_name::check(host)
        };
        checked.map_err(BackendUrlError::InvalidHost)?;
        let host = host.to_ascii_lowercase();
        let scheme = parts.scheme.to_ascii_lowercase();
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

/// A backend URL's text cut at `://`, `@` and the end of the authority.
struct Parts<'a> {
    scheme: &'a str,
    user_info: bool,
    authority: &'a str,
    /// Path, query and fragment, as written.
    after_authority: &'a str,
}

impl<'a> Parts<'a> {
    fn split(text: &'a str) -> Result<Self, BackendUrlError> {
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
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, after_authority) = rest.split_at(end);
        let (user_info, authority) = match authority.rsplit_once('@') {
            Some((_, authority)) => (true, authority),
            None => (false, authority),
        };
        Ok(Self {
            scheme,
            user_info,
            authority,
            after_authority,
        })
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

    #[test]
    fn a_host_that_could_never_resolve_is_unusable() {
        // Two URLs in one entry read as one backend whose host holds a space.
        assert_eq!(
            BackendUrl::parse("http://127.0.0.1:80 http://127.0.0.1:81"),
            Err(BackendUrlError::InvalidHost(HostNameError::BadCharacter(
                ':'
            )))
        );
        assert_eq!(
            BackendUrl::parse("http://exa mple.com:80"),
            Err(BackendUrlError::InvalidHost(HostNameError::BadCharacter(
                ' '
            )))
        );
        assert_eq!(
            BackendUrl::parse(&format!("http://{}:80", "a".repeat(10_000))),
            Err(BackendUrlError::InvalidHost(HostNameError::TooLong))
        );
        assert!(BackendUrl::parse("http://my_app:8080").is_ok());
    }

    #[test]
    fn urls_to_store_have_nothing_the_proxy_would_ignore() {
        assert!(BackendUrl::parse_to_store("http://10.0.0.1:80").is_ok());
        assert!(BackendUrl::parse_to_store("HTTPS://a.test/").is_ok());
        assert!(BackendUrl::parse_to_store("http://[::1]:8080").is_ok());
        assert_eq!(
            BackendUrl::parse_to_store("ftp://a.test:21"),
            Err(BackendUrlError::UnsupportedScheme("ftp".into()))
        );
        for path in ["http://a.test/app", "http://a.test:80?x", "http://a.test#f"] {
            assert_eq!(
                BackendUrl::parse_to_store(path),
                Err(BackendUrlError::IgnoredPath),
                "{path}"
            );
            assert!(
                BackendUrl::parse(path).is_ok(),
                "the proxy still reads {path}"
            );
        }
        assert_eq!(
            BackendUrl::parse_to_store("http://u:p@a.test"),
            Err(BackendUrlError::IgnoredUserInfo)
        );
    }
}
