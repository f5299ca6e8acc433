//! The typed, defaulted, validated configuration every other module reads.
//!
//! Owns: the `Config` types, loading a file (`Config::load`), parsing text (`Config::parse`) and the
//! censored rendering `--dry` prints. The JSON mirror lives in `raw`, the 0.2/0.3 mapping in
//! `legacy`, error types in `error`. Nothing after `Config` sees an `Option` that means "use the
//! default": Hipache's defaults are applied here, once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::routes::redis::url::RedisUrl;

/// Everything a worker needs, with Hipache's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this came from, for messages (`config/config.json`).
    pub source: PathBuf,
    pub server: Server,
    /// HTTP listeners (`http.bind` × `http.port`, or the 0.2/0.3 `server.address`/`server.port`).
    pub http: Vec<SocketAddr>,
    /// HTTPS listeners; empty when HTTPS is off.
    pub https: Vec<TlsListener>,
    pub driver: Driver,
    pub user: String,
    pub group: String,
    /// The seed's log-shipping section, kept for the observability work.
    pub logging: Option<Logging>,
    /// The seed's statsd section.
    pub metrics: Option<Metrics>,
}

/// `server.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub debug: bool,
    pub workers: usize,
    pub max_sockets: usize,
    pub tcp_timeout: Duration,
    pub dead_backend_ttl: Duration,
    pub retry_on_error: u32,
    /// `None` when `accessLog` is `null` or empty: no access log.
    pub access_log: Option<PathBuf>,
    pub http_keep_alive: bool,
    pub dead_backend_on_500: bool,
    /// Folder of `error_<code>.html` pages; `None` (Hipache's `null`, the default) means the
    /// pages bundled into the binary from `static/`.
    pub static_dir: Option<PathBuf>,
    pub lru_cache: Option<LruCache>,
}

/// `server.lruCache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LruCache {
    pub size: usize,
    pub ttl: Duration,
}

/// One HTTPS listener with the files it serves (paths, read by the TLS module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListener {
    pub address: SocketAddr,
    pub key: PathBuf,
    pub cert: PathBuf,
    pub ca: Vec<PathBuf>,
    pub passphrase: Option<String>,
}

/// Where routes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driver {
    /// Lookups go to `read`, dead marks to `write` (the same server unless an array was given).
    Redis { read: RedisUrl, write: RedisUrl },
    /// `file:path/to/routes.json`, relative paths resolved against the config file's folder.
    File(PathBuf),
}

/// `logging` (the seed's log shipping section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    pub web: Option<Endpoint>,
    pub udp: Option<Endpoint>,
    pub session: String,
}

/// `metrics` (statsd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    pub endpoint: Endpoint,
    pub session: String,
}

/// A `{ "host": ..., "port": ... }` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}
