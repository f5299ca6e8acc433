//! Hipache's driver URL, `redis://:password@host:port/database#prefix`, our Sentinel form,
//! `redis-sentinel://[:password@]host:port[,host:port...]/<master name>[/<database>][#prefix]`,
//! and our Cluster form, `redis-cluster://[:password@]host:port[,host:port...][#prefix]` (pure).
//!
//! Every part of the `redis:` form is optional: `redis:` means 127.0.0.1:6379, database 0, no
//! prefix. In the Sentinel form the addresses are the sentinels' (port 26379 by default), the
//! master's address is asked of them at run time, and the password is the master's. In the
//! Cluster form the addresses are any reachable nodes (port 6379 by default), the rest of the
//! cluster is discovered from them, and there is no database (a cluster has only database 0). The
//! prefix is prepended to every key the proxy reads or writes.

use std::fmt;

/// A parsed driver URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedisUrl {
    /// The server of a `redis://` URL; for `redis-sentinel://`, the first sentinel.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `redis-sentinel://`: whom to ask for the server.
    pub(crate) sentinel: Option<Box<Sentinel>>,
    /// `redis-cluster://`: the nodes to discover the cluster from (`host` and `port` are the
    /// first of them).
    pub(crate) cluster: Option<Box<Seeds>>,
    pub(crate) password: Option<String>,
    pub(crate) database: i64,
    pub(crate) prefix: String,
}

/// The sentinels of a `redis-sentinel://` URL and the name of the master they watch; the master's
/// address is asked before every connection and followed when they switch masters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sentinel {
    pub(crate) sentinels: Vec<Address>,
    pub(crate) master: String,
}

/// The nodes a `redis-cluster://` URL names, to discover the rest of the cluster from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seeds {
    pub(crate) nodes: Vec<Address>,
}

/// A host (name or IP, IPv6 without brackets) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Address {
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// Why a driver URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RedisUrlError {
    #[error("expected redis://:password@host:port/database#prefix, redis-sentinel://[:password@]host:port[,host:port...]/master[/database][#prefix] or redis-cluster://[:password@]host:port[,host:port...][#prefix]")]
    NotRedis,
    #[error("invalid port {0:?}")]
    InvalidPort(String),
    #[error("invalid database {0:?}")]
    InvalidDatabase(String),
    #[error("missing the master name after the sentinel addresses")]
    MissingMaster,
    #[error("a cluster has no database to select: remove {0:?}")]
    ClusterDatabase(String),
}

impl RedisUrl {
    pub(crate) const DEFAULT_HOST: &'static str = "127.0.0.1";
    pub(crate) const DEFAULT_PORT: u16 = 6379;
    pub(crate) const DEFAULT_SENTINEL_PORT: u16 = 26379;

    /// Parses either form.
    pub(crate) fn parse(text: &str) -> Result<Self, RedisUrlError> {
        let text = text.trim();
        let (scheme, rest) = [
            ("redis:", Scheme::Direct),
            ("redis-sentinel:", Scheme::Sentinel),
            ("redis-cluster:", Scheme::Cluster),
        ]
        .into_iter()
        .find_map(|(name, scheme)| Some((scheme, text.strip_prefix(name)?)))
        .ok_or(RedisUrlError::NotRedis)?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (rest, prefix) = rest.split_once('#').unwrap_or((rest, ""));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (password, hosts) = match authority.rsplit_once('@') {
            // Hipache takes what follows the last ':' of the user info as the password.
            Some((userinfo, hosts)) => {
                let password = userinfo.rsplit(':').next().unwrap_or_default();
                ((!password.is_empty()).then(|| password.to_owned()), hosts)
            }
            None => (None, authority),
        };
        let mut cluster = None;
        let (first, sentinel, database) = match scheme {
            Scheme::Sentinel => {
                let (master, database) = path.split_once('/').unwrap_or((path, ""));
                if master.is_empty() {
                    return Err(RedisUrlError::MissingMaster);
                }
                let sentinels: Vec<Address> = hosts
                    .split(',')
                    .map(|one| address(one, Self::DEFAULT_SENTINEL_PORT))
                    .collect::<Result<_, _>>()?;
                let first = sentinels[0].clone(); // cannot fail: `split` yields at least one item
                let master = master.to_owned();
                (
                    first,
                    Some(Box::new(Sentinel { sentinels, master })),
                    database,
                )
            }
            Scheme::Cluster => {
                if !path.is_empty() {
                    return Err(RedisUrlError::ClusterDatabase(format!("/{path}")));
                }
                let nodes: Vec<Address> = hosts
                    .split(',')
                    .map(|one| address(one, Self::DEFAULT_PORT))
                    .collect::<Result<_, _>>()?;
                let first = nodes[0].clone(); // cannot fail: `split` yields at least one item
                cluster = Some(Box::new(Seeds { nodes }));
                (first, None, "")
            }
            Scheme::Direct => (address(hosts, Self::DEFAULT_PORT)?, None, path),
        };
        let database = if database.is_empty() {
            0
        } else {
            database
                .parse()
                .map_err(|_| RedisUrlError::InvalidDatabase(database.to_owned()))?
        };
        Ok(Self {
            host: first.host,
            port: first.port,
            sentinel,
            cluster,
            password,
            database,
            prefix: prefix.to_owned(),
        })
    }

    /// The URL of one server of this one's cluster: same password and prefix, direct address.
    pub(crate) fn node(&self, address: &Address) -> Self {
        Self {
            host: address.host.clone(),
            port: address.port,
            sentinel: None,
            cluster: None,
            ..self.clone()
        }
    }
}

#[derive(Clone, Copy)]
enum Scheme {
    Direct,
    Sentinel,
    Cluster,
}

/// `host[:port]` or `[v6]:port`; an empty host is the default host.
fn address(text: &str, default_port: u16) -> Result<Address, RedisUrlError> {
    let (host, port) = match text.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':').unwrap_or(after)),
            None => (text, ""),
        },
        None => text.rsplit_once(':').unwrap_or((text, "")),
    };
    let port = if port.is_empty() {
        default_port
    } else {
        port.parse()
            .map_err(|_| RedisUrlError::InvalidPort(port.to_owned()))?
    };
    let host = if host.is_empty() {
        RedisUrl::DEFAULT_HOST
    } else {
        host
    };
    Ok(Address {
        host: host.to_owned(),
        port,
    })
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Shows the URL with the password censored, for logs and `--dry`.
impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match (&self.sentinel, &self.cluster) {
            (Some(_), _) => "redis-sentinel://",
            (None, Some(_)) => "redis-cluster://",
            (None, None) => "redis://",
        };
        f.write_str(scheme)?;
        if self.password.is_some() {
            f.write_str(":<redacted>@")?;
        }
        match &self.sentinel {
            None if self.cluster.is_some() => {
                let nodes = self.cluster.iter().flat_map(|seeds| &seeds.nodes);
                for (n, node) in nodes.enumerate() {
                    let separator = if n == 0 { "" } else { "," };
                    write!(f, "{separator}{node}")?;
                }
            }
            None => {
                let address = Address {
                    host: self.host.clone(),
                    port: self.port,
                };
                write!(f, "{address}/{}", self.database)?;
            }
            Some(sentinel) => {
                let Sentinel { sentinels, master } = &**sentinel;
                for (n, sentinel) in sentinels.iter().enumerate() {
                    let separator = if n == 0 { "" } else { "," };
                    write!(f, "{separator}{sentinel}")?;
                }
                write!(f, "/{master}/{}", self.database)?;
            }
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
                sentinel: None,
                cluster: None,
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
        assert_eq!((url.host.as_str(), url.port), ("redis.local", 7000));
        assert_eq!(url.password.as_deref(), Some("secret"));
        assert_eq!(url.database, 3);
        assert_eq!(url.prefix, "hipache:");
        assert_eq!(
            url.to_string(),
            "redis://:<redacted>@redis.local:7000/3#hipache:"
        );
        let address = |text| {
            let url = RedisUrl::parse(text).unwrap();
            (url.host, url.port)
        };
        assert_eq!(address("redis://redis"), ("redis".into(), 6379));
        assert_eq!(address("redis://[::1]:6380"), ("::1".into(), 6380));
    }

    #[test]
    fn sentinel_form_names_the_sentinels_and_the_master() {
        let url =
            RedisUrl::parse("redis-sentinel://:pw@s1:5000,[::1],s3:5002/mymaster/2#p:").unwrap();
        let sentinels = vec![
            Address {
                host: "s1".into(),
                port: 5000,
            },
            Address {
                host: "::1".into(),
                port: 26379,
            },
            Address {
                host: "s3".into(),
                port: 5002,
            },
        ];
        assert_eq!(
            url,
            RedisUrl {
                host: "s1".into(),
                port: 5000,
                sentinel: Some(Box::new(Sentinel {
                    sentinels,
                    master: "mymaster".into()
                })),
                cluster: None,
                password: Some("pw".into()),
                database: 2,
                prefix: "p:".into()
            }
        );
        assert_eq!(
            url.to_string(),
            "redis-sentinel://:<redacted>@s1:5000,[::1]:26379,s3:5002/mymaster/2#p:"
        );
        let short = RedisUrl::parse("redis-sentinel://127.0.0.1:26379/m").unwrap();
        assert_eq!(short.database, 0);
        assert_eq!(
            RedisUrl::parse("redis-sentinel://s1:1"),
            Err(RedisUrlError::MissingMaster)
        );
        assert!(matches!(
            RedisUrl::parse("redis-sentinel://s1:x/m"),
            Err(RedisUrlError::InvalidPort(_))
        ));
    }

    #[test]
    fn cluster_form_names_the_seed_nodes() {
        let url = RedisUrl::parse("redis-cluster://:pw@n1:7000,[::1],n3:7002#p:").unwrap();
        let nodes = [("n1", 7000), ("::1", 6379), ("n3", 7002)].map(|(host, port)| Address {
            host: host.into(),
            port,
        });
        let seeds = url.cluster.as_ref().map(|seeds| &seeds.nodes[..]);
        assert_eq!(seeds, Some(&nodes[..]));
        assert_eq!((url.host.as_str(), url.port), ("n1", 7000));
        assert_eq!((&url.sentinel, url.database), (&None, 0));
        assert_eq!(
            (url.password.as_deref(), url.prefix.as_str()),
            (Some("pw"), "p:")
        );
        assert_eq!(
            url.to_string(),
            "redis-cluster://:<redacted>@n1:7000,[::1]:6379,n3:7002#p:"
        );
        let node = url.node(&nodes[2]);
        assert_eq!(node.to_string(), "redis://:<redacted>@n3:7002/0#p:");
        assert_eq!(
            RedisUrl::parse("redis-cluster://n1:7000/1"),
            Err(RedisUrlError::ClusterDatabase("/1".into()))
        );
        assert!(matches!(
            RedisUrl::parse("redis-cluster://n1:x"),
            Err(RedisUrlError::InvalidPort(_))
        ));
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
