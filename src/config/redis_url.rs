//! Hipache's driver URL, `redis://:password@host:port/database#prefix` (pure).
//!
//! Every part is optional: `redis:` means 127.0.0.1:6379, database 0, no prefix. The prefix is
//! prepended to every key the proxy reads or writes.

use std::fmt;

/// A parsed driver URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedisUrl {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) password: Option<String>,
    pub(crate) database: i64,
    pub(crate) prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RedisUrlError {
    #[error("expected a redis: URL (redis://:password@host:port/database#prefix)")]
    NotRedis,
    #[error("invalid port {0:?}")]
    InvalidPort(String),
    #[error("invalid database {0:?}")]
    InvalidDatabase(String),
}

impl RedisUrl {
    pub(crate) const DEFAULT_HOST: &'static str = "127.0.0.1";
    pub(crate) const DEFAULT_PORT: u16 = 6379;

    pub(crate) fn parse(text: &str) -> Result<Self, RedisUrlError> {
        let rest = text
            .trim()
            .strip_prefix("redis:")
            .ok_or(RedisUrlError::NotRedis)?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (rest, prefix) = rest.split_once('#').unwrap_or((rest, ""));
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let (password, hostport) = match authority.rsplit_once('@') {
            // Hipache takes what follows the last ':' of the user info as the password.
            Some((userinfo, hostport)) => {
                let password = userinfo.rsplit(':').next().unwrap_or_default();
                (
                    (!password.is_empty()).then(|| password.to_owned()),
                    hostport,
                )
            }
            None => (None, authority),
        };
        let (host, port) = match hostport.strip_prefix('[') {
            Some(bracketed) => match bracketed.split_once(']') {
                Some((host, after)) => (host, after.strip_prefix(':').unwrap_or(after)),
                None => (hostport, ""),
            },
            None => hostport.rsplit_once(':').unwrap_or((hostport, "")),
        };
        let port = if port.is_empty() {
            Self::DEFAULT_PORT
        } else {
            port.parse()
                .map_err(|_| RedisUrlError::InvalidPort(port.to_owned()))?
        };
        let database = if database.is_empty() {
            0
        } else {
            database
                .parse()
                .map_err(|_| RedisUrlError::InvalidDatabase(database.to_owned()))?
        };
        let host = if host.is_empty() {
            Self::DEFAULT_HOST
        } else {
            host
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            password,
            database,
            prefix: prefix.to_owned(),
        })
    }
}

/// Shows the URL with the password censored, for logs and `--dry`.
impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("redis://")?;
        if self.password.is_some() {
            f.write_str(":<redacted>@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}/{}", self.host, self.port, self.database)?;
        } else {
            write!(f, "{}:{}/{}", self.host, self.port, self.database)?;
        }
        if !self.prefix.is_empty() {
            write!(f, "#{}", self.prefix)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_scheme_means_local_default() {
        let url = RedisUrl::parse("redis:").unwrap();
        assert_eq!(
            url,
            RedisUrl {
                host: "127.0.0.1".into(),
                port: 6379,
                password: None,
                database: 0,
                prefix: String::new()
            }
        );
        assert_eq!(RedisUrl::parse("redis://").unwrap(), url);
        assert_eq!(RedisUrl::parse("redis://:").unwrap(), url);
    }

    #[test]
    fn every_part_is_read() {
        let url = RedisUrl::parse("redis://:secret@redis.local:7000/3#hipache:").unwrap();
        assert_eq!(url.host, "redis.local");
        assert_eq!(url.port, 7000);
        assert_eq!(url.password.as_deref(), Some("secret"));
        assert_eq!(url.database, 3);
        assert_eq!(url.prefix, "hipache:");
        assert_eq!(
            url.to_string(),
            "redis://:<redacted>@redis.local:7000/3#hipache:"
        );
        assert_eq!(RedisUrl::parse("redis://redis").unwrap().host, "redis");
        assert_eq!(RedisUrl::parse("redis://[::1]:6380").unwrap().host, "::1");
    }

    #[test]
    fn bad_parts_are_errors() {
        assert_eq!(RedisUrl::parse("http://x"), Err(RedisUrlError::NotRedis));
        assert!(matches!(
            RedisUrl::parse("redis://h:port"),
            Err(RedisUrlError::InvalidPort(_))
        ));
        assert!(matches!(
            RedisUrl::parse("redis://h/db"),
            Err(RedisUrlError::InvalidDatabase(_))
        ));
    }
}
