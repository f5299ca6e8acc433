//! The serde mirror of Hipache's JSON: every key optional, old and new generations side by side.
//!
//! Owns the shapes Hipache accepted (a bare string where a list is expected, a bind item that is an
//! address or an object, a user given as a name or a uid). It applies no default and checks no
//! value: that is `build`'s job. Unknown keys are not rejected here; `parse` collects them through
//! `serde_ignored` so they become warnings.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, StrDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawConfig {
    pub(super) server: Option<RawServer>,
    pub(super) http: Option<RawListen>,
    pub(super) https: Option<RawListen>,
    pub(super) driver: Option<OneOrMany<String>>,
    pub(super) user: Option<Name>,
    pub(super) group: Option<Name>,
    pub(super) logging: Option<RawLogging>,
    pub(super) metrics: Option<RawMetrics>,
    /// Ours: the built-in active health checker, off when absent.
    pub(super) health_check: Option<RawHealthCheck>,
    /// Ours: built-in ACME issuance into Redis, off when absent.
    pub(super) acme: Option<RawAcme>,
    // Hipache 0.3's redis settings, read only when `driver` is absent.
    pub(super) redis_host: Option<Name>,
    pub(super) redis_port: Option<Name>,
    pub(super) redis_password: Option<Name>,
    pub(super) redis_database: Option<Name>,
    pub(super) redis_master_host: Option<Name>,
    pub(super) redis_master_port: Option<Name>,
    pub(super) redis_master_password: Option<Name>,
    pub(super) redis_master_database: Option<Name>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawServer {
    pub(super) debug: Option<bool>,
    pub(super) workers: Option<u32>,
    pub(super) max_sockets: Option<u32>,
    pub(super) tcp_timeout: Option<u64>,
    #[serde(rename = "deadBackendTTL")]
    pub(super) dead_backend_ttl: Option<u64>,
    pub(super) retry_on_error: Option<u32>,
    /// `Some(None)` is an explicit `null`: no access log, unlike an absent key.
    #[serde(default, deserialize_with = "explicit_null")]
    pub(super) access_log: Option<Option<String>>,
    /// Ours: `"hipache"` (the default) or `"json"`.
    pub(super) access_log_format: Option<String>,
    pub(super) http_keep_alive: Option<bool>,
    pub(super) dead_backend_on500: Option<bool>,
    pub(super) static_dir: Option<String>,
    pub(super) lru_cache: Option<RawLruCache>,
    // Our additions: the memory watchdog and the drain bound, Hipache's constants made settable.
    pub(super) memory_limit: Option<u32>,
    pub(super) memory_check_interval: Option<u32>,
    pub(super) graceful_wait: Option<u64>,
    // Ours, off by default: redirect plain HTTP to HTTPS, sticky sessions.
    pub(super) force_secure: Option<bool>,
    pub(super) sticky_sessions: Option<bool>,
    pub(super) sticky_secret: Option<String>,
    pub(super) max_connections: Option<u32>,
    // Ours: trust for `https://` backends.
    pub(super) backend_ca: Option<String>,
    pub(super) backend_tls_verify: Option<bool>,
    // 0.2/0.3 keys, moved by `legacy::upgrade`.
    pub(super) port: Option<u16>,
    pub(super) address: Option<OneOrMany<RawBind>>,
    pub(super) https: Option<RawListen>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawHealthCheck {
    pub(super) path: Option<String>,
    pub(super) interval: Option<u64>,
    pub(super) timeout: Option<u64>,
    pub(super) unhealthy: Option<u32>,
    pub(super) healthy: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawAcme {
    pub(super) directory: Option<String>,
    pub(super) email: Option<String>,
    pub(super) challenge: Option<String>,
    pub(super) on_demand: Option<bool>,
    pub(super) renew_before: Option<u64>,
    pub(super) directory_ca: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawLruCache {
    pub(super) size: Option<u64>,
    pub(super) ttl: Option<u64>,
}

/// `http` or `https` (the TLS keys are simply absent from `http`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawListen {
    pub(super) port: Option<u16>,
    pub(super) bind: Option<OneOrMany<RawBind>>,
    pub(super) key: Option<String>,
    pub(super) cert: Option<String>,
    pub(super) ca: Option<OneOrMany<String>>,
    pub(super) passphrase: Option<String>,
    /// Ours, not Hipache's: a folder of extra certificates chosen by SNI.
    pub(super) cert_dir: Option<String>,
    /// Ours: also serve the certificates of `tls:<name>` hashes in Redis, chosen by SNI.
    pub(super) redis_certificates: Option<bool>,
    /// Ours: also serve HTTP/3 (QUIC) on each https address's port, over UDP.
    pub(super) http3: Option<bool>,
    /// Ours: accept TLS 1.3 early data (0-RTT) on HTTP/3 connections.
    pub(super) early_data: Option<bool>,
    // Node's TLS knobs: accepted so Hipache files load; rustls picks its own suites and versions.
    pub(super) ciphers: Option<String>,
    pub(super) honor_cipher_order: Option<bool>,
    pub(super) secure_protocol: Option<String>,
    pub(super) secure_options: Option<u64>,
}

/// One `bind` item: `"10.0.0.1"` or `{"address": "10.0.0.1", "port": 8080, ...}`.
#[derive(Debug, Clone)]
pub(super) enum RawBind {
    Address(String),
    Object(RawBindObject),
}

// Not `#[serde(flatten)]`ed with `RawListen`: flatten would hide the key path of a type error and
// the unknown keys of the flattened part.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawBindObject {
    pub(super) address: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) key: Option<String>,
    pub(super) cert: Option<String>,
    pub(super) ca: Option<OneOrMany<String>>,
    pub(super) passphrase: Option<String>,
    // Node's TLS knobs: accepted so Hipache files load; rustls picks its own suites and versions.
    pub(super) ciphers: Option<String>,
    pub(super) honor_cipher_order: Option<bool>,
    pub(super) secure_protocol: Option<String>,
    pub(super) secure_options: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawLogging {
    pub(super) web: Option<RawWeb>,
    pub(super) udp: Option<RawEndpoint>,
    pub(super) session: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawMetrics {
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) session: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawWeb {
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawEndpoint {
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
}

/// A value Hipache accepted as one item or as a list of them.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct OneOrMany<T>(pub(super) Vec<T>);

/// A name Node accepted as a string or a number (`"user": 0`, `"redisPort": 6379`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Name(pub(super) String);

/// Lets `accessLog: null` differ from a missing `accessLog`.
fn explicit_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = OneOrMany<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one item or a list of them")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                T::deserialize(StrDeserializer::<E>::new(s)).map(|t| OneOrMany(vec![t]))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(|t| OneOrMany(vec![t]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany(items))
            }
        }

        d.deserialize_any(OneOrManyVisitor(PhantomData))
    }
}

impl<'de> Deserialize<'de> for RawBind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BindVisitor;

        impl<'de> Visitor<'de> for BindVisitor {
            type Value = RawBind;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address or an object with address and port")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(RawBind::Address(s.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawBindObject::deserialize(MapAccessDeserializer::new(map)).map(RawBind::Object)
            }
        }

        d.deserialize_any(BindVisitor)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;

        impl Visitor<'_> for NameVisitor {
            type Value = Name;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Name(s.to_owned()))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                Ok(Name(n.to_string()))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                Ok(Name(n.to_string()))
            }
        }

        d.deserialize_any(NameVisitor)
    }
}
