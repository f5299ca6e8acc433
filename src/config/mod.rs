//! The typed, defaulted, validated configuration every other module reads.
//!
//! Owns: the `Config` types, loading a file (`Config::load`), parsing text (`Config::parse`) and the
//! censored rendering `--dry` prints. The JSON mirror lives in `raw`, the 0.2/0.3 mapping in
//! `legacy`, defaults and checks in `build`, error types in `error`. Nothing after `Config` sees an
//! `Option` that means "use the default": Hipache's defaults are applied here, once.

pub(crate) mod acme;
mod build;
mod censored;
mod error;
mod legacy;
mod raw;
pub(crate) mod redis_url;
mod suggest;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::CertificateDer;

pub use error::ConfigError;
pub(crate) use redis_url::RedisUrl;

/// A parsed configuration and what the operator should hear about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The configuration, defaults applied.
    pub config: Config,
    /// Deprecated and unknown keys, one human-readable line each, naming the key.
    pub warnings: Vec<String>,
}

/// Everything a worker needs, with Hipache's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this came from, for messages (`config/config.json`).
    pub(crate) source: PathBuf,
    /// `server.*`.
    pub server: Server,
    /// HTTP listeners (`http.bind` × `http.port`, or the 0.2/0.3 `server.address`/`server.port`).
    pub(crate) http: Vec<SocketAddr>,
    /// HTTPS listeners; empty when HTTPS is off.
    pub(crate) https: Vec<TlsListener>,
    /// `https.certDir`: more certificates for SNI (`<name>.pem` + `<name>.key`, or combined
    /// `.pem` files); `None` when absent or when HTTPS is off.
    pub(crate) cert_dir: Option<PathBuf>,
    /// `https.redisCertificates`: serve the `tls:<name>` hashes of the Redis driver by SNI
    /// before the files; false unless HTTPS is on with the Redis driver.
    pub(crate) redis_certificates: bool,
    /// `https.http3`: HTTP/3 on every https address's port (UDP); `None` when off or when
    /// HTTPS is off.
    pub(crate) http3: Option<Http3>,
    pub(crate) driver: Driver,
    /// `user`: who workers run as once the master bound the ports.
    pub user: String,
    /// `group`: the group workers run as.
    pub group: String,
    /// The `logging` section (hipache-raft's log shipping).
    pub(crate) logging: Option<Logging>,
    /// The `metrics` section (hipache-raft's statsd).
    pub(crate) metrics: Option<Metrics>,
    /// `healthCheck`: the master's active health checker; `None` (absent) is off.
    pub(crate) health_check: Option<HealthCheck>,
    /// `acme` (ours): built-in ACME issuance into the Redis certificate hashes; `None`: off.
    pub(crate) acme: Option<acme::Acme>,
}

/// `healthCheck` (ours): what the master's checker probes, how often, and when it changes its mind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HealthCheck {
    /// Path and query of the probe's `GET`; starts with `/`.
    pub(crate) path: String,
    /// Every backend is probed once per interval.
    pub(crate) interval: Duration,
    /// Longest one probe may take, connect to status line.
    pub(crate) timeout: Duration,
    /// Consecutive failed probes that mark a backend dead.
    pub(crate) unhealthy: u32,
    /// Consecutive good probes that clear its mark.
    pub(crate) healthy: u32,
}

/// `server.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// `server.debug`: debug-level process logs.
    pub debug: bool,
    pub(crate) workers: usize,
    pub(crate) max_sockets: usize,
    pub(crate) tcp_timeout: Duration,
    pub(crate) dead_backend_ttl: Duration,
    pub(crate) retry_on_error: u32,
    /// `None` when `accessLog` is `null` or empty: no access log.
    pub access_log: Option<PathBuf>,
    /// `accessLogFormat` (ours): how each access log line is written.
    pub access_log_format: AccessLogFormat,
    pub(crate) http_keep_alive: bool,
    pub(crate) dead_backend_on_500: bool,
    /// Folder of `error_<code>.html` pages; `None` (Hipache's `null`, the default) means the
    /// pages bundled into the binary from `static/`.
    pub(crate) static_dir: Option<PathBuf>,
    pub(crate) lru_cache: Option<LruCache>,
    /// `memoryLimit` (MiB in the file): a worker whose RSS reaches it retires gracefully.
    pub(crate) memory_limit_bytes: u64,
    /// `memoryCheckInterval`: how often a worker reads its RSS.
    pub(crate) memory_check_interval: Duration,
    /// `gracefulWait`: how long a draining worker lets in-flight requests and tunnels finish.
    pub(crate) graceful_wait: Duration,
    /// `forceSecure` (ours): plain-HTTP requests get a 301 to HTTPS. Already `false` when no
    /// https listener is configured.
    pub(crate) force_secure: bool,
    /// `stickySessions` (ours): a cookie keeps a client on the backend it was first sent to.
    pub(crate) sticky_sessions: bool,
    /// `stickySecret` (ours): the cookies' key, the same on every node that shares it; `None`:
    /// a random key per master.
    pub(crate) sticky_secret: Option<String>,
    /// `maxConnections`: client connections one worker serves at once; more wait in the
    /// listen backlog. `None` (the default): as many as the open file limit allows.
    pub(crate) max_connections: Option<usize>,
    /// `backendCa` and `backendTlsVerify` (ours): how `https://` backends are trusted.
    pub(crate) backend_trust: BackendTrust,
}

/// `server.accessLogFormat`: the access log's lines, in the file and in `logging.udp` datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLogFormat {
    /// `"hipache"`: Hipache's line, byte for byte.
    #[default]
    Hipache,
    /// `"json"`: one JSON object per line.
    Json,
}

/// `server.backendCa` and `server.backendTlsVerify`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BackendTrust {
    /// A PEM file of CAs trusted besides the system's roots.
    pub(crate) ca: Option<PathBuf>,
    /// Its certificates, read and parsed when the config is loaded.
    pub(crate) ca_certs: Vec<CertificateDer<'static>>,
    /// `true` by default; `false` accepts any backend certificate.
    pub(crate) verify: bool,
}

/// `server.lruCache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LruCache {
    pub(crate) size: usize,
    pub(crate) ttl: Duration,
}

impl LruCache {
    /// Hosts a worker's lookup cache holds when `server.lruCache` is absent or gives no size:
    /// a million frontends, at about 90 bytes each (benches/README.md). The memory watchdog
    /// does not count what the cache holds against `server.memoryLimit`.
    pub(crate) const DEFAULT_SIZE: usize = 1_000_000;
}

/// What each worker's lookup cache may hold: `server.lruCache` with the defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CacheLimits {
    /// Most hosts held; the least recently used (CLOCK) make room. 0 caches nothing.
    pub(crate) hosts: usize,
    /// `lruCache.ttl`: longest an answer is served without asking Redis again. `None` (no
    /// `lruCache`): as long as Redis's invalidations say it is current.
    pub(crate) max_age: Option<Duration>,
}

impl Server {
    /// The lookup cache limits from `server.lruCache`.
    pub(crate) fn cache_limits(&self) -> CacheLimits {
        match &self.lru_cache {
            Some(lru) => CacheLimits {
                hosts: lru.size,
                max_age: Some(lru.ttl),
            },
            None => CacheLimits {
                hosts: LruCache::DEFAULT_SIZE,
                max_age: None,
            },
        }
    }
}

/// One HTTPS listener with the files it serves (paths, read by the TLS module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsListener {
    pub(crate) address: SocketAddr,
    pub(crate) key: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) ca: Vec<PathBuf>,
    pub(crate) passphrase: Option<String>,
}

/// `https.http3` on: how QUIC connections are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Http3 {
    /// `https.earlyData`: TLS 1.3 early data (0-RTT) is accepted; off by default, since a
    /// request in early data can be replayed by whoever captured it.
    pub(crate) early_data: bool,
}

/// Where routes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Driver {
    /// Lookups go to `read`, dead marks to `write` (the same server unless an array was given).
    Redis { read: RedisUrl, write: RedisUrl },
    /// `file:path/to/routes.json`, relative paths resolved against the config file's folder.
    File(PathBuf),
}

/// `logging` (hipache-raft's log shipping section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Logging {
    pub(crate) web: Option<Endpoint>,
    /// `logging.web.token`: the bearer token every admin request must carry, when set.
    pub(crate) web_token: Option<String>,
    pub(crate) udp: Option<Endpoint>,
    pub(crate) session: String,
}

/// `metrics` (statsd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Metrics {
    pub(crate) endpoint: Endpoint,
    pub(crate) session: String,
}

/// A `{ "host": ..., "port": ... }` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// The first address `host:port` resolves to, as the UDP outputs (`metrics`, `logging.udp`)
/// send to; `NotFound` when it resolves to none.
pub(crate) fn first_address(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
}

impl Config {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text` as if read from `source`, which names the file in messages and anchors a
    /// relative `file:` driver. The only disk access is checking that TLS files are readable.
    pub(crate) fn parse(text: &str, source: &Path) -> Result<Loaded, ConfigError> {
        // An empty file is more often a failed copy or a wrong path than a wish for defaults.
        if text.trim().is_empty() {
            return Err(ConfigError::Document {
                file: source.to_path_buf(),
                problem: "the file is empty (a configuration of defaults only is `{}`)".to_owned(),
            });
        }
        let mut unknown = Vec::new();
        let mut json = serde_json::Deserializer::from_str(text);
        let mut record = |path: serde_ignored::Path<'_>| unknown.push(key_path(&path));
        let tracked = serde_ignored::Deserializer::new(&mut json, &mut record);
        let raw: raw::RawConfig =
            serde_path_to_error::deserialize(tracked).map_err(|e| json_error(e, source))?;
        json.end().map_err(|e| syntax_error(&e, source))?;

        let (raw, mut warnings, origins) = legacy::upgrade(raw);
        warnings.extend(
            unknown
                .iter()
                .map(|key| suggest::unknown_key_warning(source, key)),
        );
        let from_build = warnings.len();
        let config = build::build(raw, source, &mut warnings)
            .map_err(|e| e.with_key(|key| origins.as_written(key)))?;
        // `build` speaks of the new-form keys; a warning about a moved value names the old one.
        for warning in &mut warnings[from_build..] {
            if let Some((key, rest)) = warning.split_once(' ') {
                *warning = format!("{} {rest}", origins.as_written(key));
            }
        }
        Ok(Loaded { config, warnings })
    }

    /// The effective configuration for `--dry`, with passwords and passphrases redacted.
    pub fn censored(&self) -> impl std::fmt::Display + '_ {
        censored::Censored(self)
    }
}

fn syntax_error(e: &serde_json::Error, source: &Path) -> ConfigError {
    ConfigError::Syntax {
        file: source.to_path_buf(),
        line: e.line(),
        column: e.column(),
        problem: e.to_string(),
    }
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>, source: &Path) -> ConfigError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if !inner.is_data() {
        return syntax_error(&inner, source);
    }
    // The key path already says where; serde_json's position would only repeat it.
    let message = inner.to_string();
    let position = format!(" at line {} column {}", inner.line(), inner.column());
    let problem = hide_raw_names(message.strip_suffix(&position).unwrap_or(&message));
    let problem = name_the_unit(&problem, &path);
    if path == "." {
        let problem = "the top level must be a JSON object".to_owned();
        ConfigError::Document {
            file: source.to_path_buf(),
            problem,
        }
    } else {
        ConfigError::Key {
            file: source.to_path_buf(),
            key: path,
            problem,
        }
    }
}

/// serde speaks Rust (`expected u64`); the operator needs the unit the key counts in.
fn name_the_unit(problem: &str, key: &str) -> String {
    let Some((before, rust_type)) = problem.rsplit_once(", expected ") else {
        return problem.to_owned();
    };
    if !matches!(rust_type, "u8" | "u16" | "u32" | "u64") {
        return problem.to_owned();
    }
    let leaf = key.rsplit('.').next().unwrap_or(key);
    let leaf = leaf.split('[').next().unwrap_or(leaf);
    let section = key.split('.').next().unwrap_or(key);
    let wanted = match (section, leaf) {
        (_, "tcpTimeout" | "deadBackendTTL" | "gracefulWait" | "memoryCheckInterval" | "ttl")
        | ("healthCheck", "interval" | "timeout") => "a whole number of seconds",
        (_, "memoryLimit") => "a whole number of MiB",
        (_, "port") => "a port number (0 to 65535)",
        _ => "a whole number",
    };
    format!("{before}, expected {wanted}")
}

/// serde names our mirror types (`expected struct RawServer`); the operator wrote an object.
fn hide_raw_names(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("struct Raw") {
        out.push_str(&rest[..at]);
        out.push_str("an object");
        rest = rest[at..]
            .trim_start_matches("struct ")
            .trim_start_matches(char::is_alphanumeric);
    }
    out.push_str(rest);
    out
}

/// `http.bind[0].extra`, in the same spelling serde_path_to_error uses for errors.
fn key_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", key_path(parent)),
        Path::Map { parent, key } => match key_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => key_path(parent),
    }
}
