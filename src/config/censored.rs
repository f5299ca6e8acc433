//! The `--dry` rendering of an effective `Config`: one `key = value` line per setting.
//!
//! Secrets never appear: TLS passphrases and Redis passwords print as `<redacted>` (the latter
//! through `RedisUrl`'s own `Display`). Key and certificate files print as paths, which are not
//! secret.

use std::fmt::{self, Display, Formatter};
use std::path::Path;

use super::{Config, Driver, Endpoint};

pub(super) struct Censored<'a>(pub(super) &'a Config);

const REDACTED: &str = "<redacted>";

impl Display for Censored<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let c = self.0;
        let s = &c.server;
        writeln!(f, "# effective configuration from {}", c.source.display())?;
        writeln!(f, "server.debug = {}", s.debug)?;
        writeln!(f, "server.workers = {}", s.workers)?;
        writeln!(f, "server.maxSockets = {}", s.max_sockets)?;
        writeln!(f, "server.tcpTimeout = {}s", s.tcp_timeout.as_secs())?;
        writeln!(
            f,
            "server.deadBackendTTL = {}s",
            s.dead_backend_ttl.as_secs()
        )?;
        writeln!(f, "server.retryOnError = {}", s.retry_on_error)?;
        writeln!(
            f,
            "server.accessLog = {}",
            optional_path(s.access_log.as_deref())
        )?;
        writeln!(f, "server.accessLogFormat = {:?}", s.access_log_format)?;
        writeln!(f, "server.httpKeepAlive = {}", s.http_keep_alive)?;
        writeln!(f, "server.deadBackendOn500 = {}", s.dead_backend_on_500)?;
        writeln!(
            f,
            "server.memoryLimit = {} MiB",
            s.memory_limit_bytes / (1024 * 1024)
        )?;
        let interval = s.memory_check_interval.as_secs();
        writeln!(f, "server.memoryCheckInterval = {interval}s")?;
        writeln!(f, "server.gracefulWait = {}s", s.graceful_wait.as_secs())?;
        match s.max_connections {
            Some(n) => writeln!(f, "server.maxConnections = {n}")?,
            None => writeln!(f, "server.maxConnections = unlimited")?,
        }
        match &s.static_dir {
            Some(dir) => writeln!(f, "server.staticDir = {}", dir.display())?,
            None => writeln!(f, "server.staticDir = (bundled pages)")?,
        }
        match &s.lru_cache {
            Some(lru) => writeln!(
                f,
                "server.lruCache = {} entries, {}s",
                lru.size,
                lru.ttl.as_secs()
            )?,
            None => writeln!(
                f,
                "server.lruCache = (default) {} entries, no age limit",
                super::LruCache::DEFAULT_SIZE
            )?,
        }
        writeln!(f, "server.forceSecure = {}", s.force_secure)?;
        writeln!(f, "server.stickySessions = {}", s.sticky_sessions)?;
        if s.sticky_secret.is_some() {
            writeln!(f, "server.stickySecret = {REDACTED}")?;
        }
        match &s.backend_trust.ca {
            Some(path) => writeln!(
                f,
                "server.backendCa = {} ({} certificates)",
                path.display(),
                s.backend_trust.ca_certs.len()
            )?,
            None => writeln!(f, "server.backendCa = (none: system roots only)")?,
        }
        writeln!(f, "server.backendTlsVerify = {}", s.backend_trust.verify)?;
        writeln!(f, "http.bind = {}", list(c.http.iter()))?;
        if c.https.is_empty() {
            writeln!(f, "https.bind = (off)")?;
        }
        if let Some(dir) = &c.cert_dir {
            writeln!(f, "https.certDir = {}", dir.display())?;
        }
        if c.redis_certificates {
            writeln!(f, "https.redisCertificates = true")?;
        }
        if let Some(acme) = &c.acme {
            writeln!(f, "acme.directory = {}", acme.directory)?;
            writeln!(f, "acme.challenge = {}", acme.challenge.name())?;
            writeln!(f, "acme.onDemand = {}", acme.on_demand)?;
            writeln!(
                f,
                "acme.renewBefore = {} days",
                acme.renew_before.as_secs() / 86_400
            )?;
            if let Some(ca) = &acme.directory_ca {
                writeln!(f, "acme.directoryCa = {}", ca.display())?;
            }
        }
        if let Some(http3) = &c.http3 {
            writeln!(f, "https.http3 = true")?;
            writeln!(f, "https.earlyData = {}", http3.early_data)?;
        }
        for (i, l) in c.https.iter().enumerate() {
            writeln!(f, "https.bind[{i}] = {}", l.address)?;
            writeln!(f, "https.bind[{i}].key = {}", l.key.display())?;
            writeln!(f, "https.bind[{i}].cert = {}", l.cert.display())?;
            writeln!(
                f,
                "https.bind[{i}].ca = {}",
                list(l.ca.iter().map(|p| p.display()))
            )?;
            if l.passphrase.is_some() {
                writeln!(f, "https.bind[{i}].passphrase = {REDACTED}")?;
            }
        }
        match &c.driver {
            Driver::Redis { read, write } if read == write => writeln!(f, "driver = {read}")?,
            Driver::Redis { read, write } => writeln!(f, "driver = read {read}, write {write}")?,
            Driver::File(path) => writeln!(f, "driver = file:{}", path.display())?,
        }
        match &c.health_check {
            Some(h) => writeln!(
                f,
                "healthCheck = GET {} every {}s, timeout {}s, dead after {} failures, alive after {} successes",
                h.path,
                h.interval.as_secs(),
                h.timeout.as_secs(),
                h.unhealthy,
                h.healthy
            )?,
            None => writeln!(f, "healthCheck = (off)")?,
        }
        writeln!(f, "user = {}", c.user)?;
        writeln!(f, "group = {}", c.group)?;
        if let Some(logging) = &c.logging {
            writeln!(
                f,
                "logging.web = {}",
                optional_endpoint(logging.web.as_ref())
            )?;
            if logging.web_token.is_some() {
                writeln!(f, "logging.web.token = <redacted>")?;
            }
            writeln!(
                f,
                "logging.udp = {}",
                optional_endpoint(logging.udp.as_ref())
            )?;
            writeln!(f, "logging.session = {}", logging.session)?;
        }
        if let Some(metrics) = &c.metrics {
            writeln!(f, "metrics = {}", endpoint(&metrics.endpoint))?;
            writeln!(f, "metrics.session = {}", metrics.session)?;
        }
        Ok(())
    }
}

fn list<T: Display>(items: impl Iterator<Item = T>) -> String {
    let items: Vec<String> = items.map(|i| i.to_string()).collect();
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

fn optional_path(path: Option<&Path>) -> String {
    path.map_or_else(|| "(off)".to_owned(), |p| p.display().to_string())
}

fn endpoint(e: &Endpoint) -> String {
    // Bracket IPv6 hosts so the port stays readable.
    if e.host.contains(':') {
        format!("[{}]:{}", e.host, e.port)
    } else {
        format!("{}:{}", e.host, e.port)
    }
}

fn optional_endpoint(e: Option<&Endpoint>) -> String {
    e.map_or_else(|| "(off)".to_owned(), endpoint)
}
