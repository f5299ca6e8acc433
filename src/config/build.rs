//! Raw mirror → typed `Config`: Hipache's defaults, value checks and the cross-field rules.
//!
//! Owns: defaults (one place), address resolution, HTTPS key/cert inheritance and readability
//! checks (in `https`), the `server` section (in `server`, its backend TLS trust in
//! `backend_tls`), driver URL parsing. Nothing here reads the JSON; `legacy` has already run.

mod acme;
mod backend_tls;
mod https;
mod server;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{Name, OneOrMany, RawBind, RawConfig, RawEndpoint, RawHealthCheck, RawListen};
use super::{
    Config, ConfigError, Driver, Endpoint, HealthCheck, Http3, Logging, LruCache, Metrics, RedisUrl,
};

const DEFAULT_ACCESS_LOG: &str = "/var/log/hipache/access.log";
const DEFAULT_HTTP_PORT: u16 = 80;
const DEFAULT_HTTP_BIND: &str = "127.0.0.1";
const DEFAULT_DRIVER: &str = "redis:";
const DEFAULT_USER: &str = "www-data";
const DEFAULT_SESSION: &str = "hipache";
const DEFAULT_ENDPOINT_HOST: &str = "127.0.0.1";
// Hipache's lru-cache treated a missing size or ttl as "unbounded"; we keep memory bounded.
const DEFAULT_LRU_SIZE: u64 = LruCache::DEFAULT_SIZE as u64;
const DEFAULT_LRU_TTL_SECS: u64 = 30;

/// Builds errors and warnings that name the config file.
pub(super) struct Ctx<'a> {
    pub(super) source: &'a Path,
    pub(super) warnings: &'a mut Vec<String>,
}

impl Ctx<'_> {
    pub(super) fn err(&self, key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError::Key {
            file: self.source.to_path_buf(),
            key: key.into(),
            problem: problem.into(),
        }
    }
}

pub(super) fn build(
    raw: RawConfig,
    source: &Path,
    warnings: &mut Vec<String>,
) -> Result<Config, ConfigError> {
    let mut ctx = Ctx { source, warnings };
    let mut server = server::server(raw.server.unwrap_or_default(), &mut ctx)?;
    let http = http(raw.http.unwrap_or_default(), &ctx)?;
    let (https, cert_dir, redis_certificates, http3) = match raw.https {
        Some(section) => {
            https::node_tls_knobs(&section, &mut ctx);
            let cert_dir = https::cert_dir(&section, &mut ctx)?;
            let redis_certificates = section.redis_certificates.unwrap_or(false);
            let http3 = section.http3.unwrap_or(false).then_some(Http3 {
                early_data: section.early_data.unwrap_or(false),
            });
            let listeners = https::listeners(section, &ctx)?;
            (listeners, cert_dir, redis_certificates, http3)
        }
        None => (Vec::new(), None, false, None),
    };
    if server.force_secure && https.is_empty() {
        ctx.warnings.push(
            "server.forceSecure ignored: no https listener is configured (https.bind is empty)"
                .to_owned(),
        );
        server.force_secure = false;
    }
    let driver = driver(raw.driver, &ctx)?;
    let redis_certificates = redis_certificates
        && !https.is_empty()
        && {
            let redis = matches!(driver, Driver::Redis { .. });
            if !redis {
                ctx.warnings.push(
                "https.redisCertificates ignored: the driver is not Redis (certificates come from the files only)"
                    .to_owned(),
            );
            }
            redis
        };
    let acme = raw
        .acme
        .map(|section| {
            let redis = matches!(driver, Driver::Redis { .. });
            acme::acme(section, redis, redis_certificates, &ctx)
        })
        .transpose()?;
    let health_check = raw
        .health_check
        .map(|raw| health_check(raw, &driver, &ctx))
        .transpose()?;
    let logging = raw.logging.map(|l| logging(l, &ctx)).transpose()?;
    if let Some(web) = logging.as_ref().and_then(|l| l.web.as_ref()) {
        let proxied = http.iter().chain(https.iter().map(|l| &l.address));
        admin_apart(web, proxied, &ctx)?;
    }
    let metrics = match raw.metrics {
        Some(m) => Some(Metrics {
            endpoint: endpoint(
                RawEndpoint {
                    host: m.host,
                    port: m.port,
                },
                "metrics",
                &ctx,
            )?,
            session: m.session.unwrap_or_else(|| DEFAULT_SESSION.to_owned()),
        }),
        None => None,
    };
    Ok(Config {
        source: source.to_path_buf(),
        server,
        http,
        cert_dir: cert_dir.filter(|_| !https.is_empty()),
        redis_certificates,
        http3: http3.filter(|_| !https.is_empty()),
        https,
        driver,
        user: name_or_default(raw.user),
        group: name_or_default(raw.group),
        logging,
        metrics,
        health_check,
        acme,
    })
}

const DEFAULT_HEALTH_PATH: &str = "/";
const DEFAULT_HEALTH_INTERVAL_SECS: u64 = 10;
const DEFAULT_HEALTH_TIMEOUT_SECS: u64 = 3;
const DEFAULT_HEALTH_THRESHOLD: u32 = 2;

fn health_check(
    raw: RawHealthCheck,
    driver: &Driver,
    ctx: &Ctx<'_>,
) -> Result<HealthCheck, ConfigError> {
    if let Driver::File(_) = driver {
        // Workers of the file driver keep dead marks each in its own memory: a checker in the
        // master would have nowhere to write them that the workers read.
        return Err(ctx.err(
            "healthCheck",
            "needs the redis driver (the file driver has no shared dead sets); remove it or use redis://",
        ));
    }
    if let Driver::Redis { read, .. } = driver {
        if read.cluster.is_some() {
            // Its probes and marks would go to the first node only, which refuses the keys it
            // does not own: better no checker than one that never marks.
            return Err(ctx.err(
                "healthCheck",
                "does not follow a redis-cluster driver yet; remove it or use redis:// or redis-sentinel://",
            ));
        }
    }
    let path = raw.path.unwrap_or_else(|| DEFAULT_HEALTH_PATH.to_owned());
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ctx.err(
            "healthCheck.path",
            format!("{path:?}: expected a path starting with / (no spaces)"),
        ));
    }
    let positive = |key: &str, value: Option<u64>, default: u64| match value {
        Some(0) => Err(ctx.err(key, "must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    let interval = positive(
        "healthCheck.interval",
        raw.interval,
        DEFAULT_HEALTH_INTERVAL_SECS,
    )?;
    let timeout = positive(
        "healthCheck.timeout",
        raw.timeout,
        DEFAULT_HEALTH_TIMEOUT_SECS,
    )?;
    let threshold = |key, value: Option<u32>| {
        positive(
            key,
            value.map(u64::from),
            u64::from(DEFAULT_HEALTH_THRESHOLD),
        )
        .map(|n| n as u32)
    };
    Ok(HealthCheck {
        path,
        interval: Duration::from_secs(interval),
        timeout: Duration::from_secs(timeout),
        unhealthy: threshold("healthCheck.unhealthy", raw.unhealthy)?,
        healthy: threshold("healthCheck.healthy", raw.healthy)?,
    })
}

fn name_or_default(name: Option<Name>) -> String {
    name.map(|n| n.0)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_USER.to_owned())
}

fn http(raw: RawListen, ctx: &Ctx<'_>) -> Result<Vec<SocketAddr>, ConfigError> {
    let port = raw.port.unwrap_or(DEFAULT_HTTP_PORT);
    let binds = raw.bind.map_or_else(
        || vec![RawBind::Address(DEFAULT_HTTP_BIND.to_owned())],
        |b| b.0,
    );
    let mut out = Vec::new();
    for (i, item) in binds.iter().enumerate() {
        let key = format!("http.bind[{i}]");
        let (address, item_port) = match item {
            RawBind::Address(address) => (Some(address), None),
            RawBind::Object(object) => (object.address.as_ref(), object.port),
        };
        let address = address.ok_or_else(|| ctx.err(format!("{key}.address"), "missing"))?;
        for addr in resolve(address, item_port.unwrap_or(port)).map_err(|e| ctx.err(&key, e))? {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    Ok(out)
}

/// An IP literal (brackets optional) or a host name, resolved now to every address it has.
pub(super) fn resolve(address: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let bare = address
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(address);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if bare.is_empty() {
        return Err("empty address".to_owned());
    }
    let mut out: Vec<SocketAddr> = Vec::new();
    let resolved = (bare, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {bare:?}: {e}"))?;
    for addr in resolved {
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    if out.is_empty() {
        return Err(format!("{bare:?} resolves to no address"));
    }
    Ok(out)
}

fn driver(raw: Option<OneOrMany<String>>, ctx: &Ctx<'_>) -> Result<Driver, ConfigError> {
    let urls = raw.map_or_else(|| vec![DEFAULT_DRIVER.to_owned()], |d| d.0);
    let (read, write) = match urls.as_slice() {
        [one] => (one, one),
        [read, write] => (read, write),
        _ => {
            return Err(ctx.err(
                "driver",
                format!("expected 1 or 2 URLs, got {}", urls.len()),
            ))
        }
    };
    if let Some(path) = read.trim().strip_prefix("file:") {
        if urls.len() != 1 {
            return Err(ctx.err("driver", "a file driver takes a single path, not a list"));
        }
        return Ok(Driver::File(route_file(path, ctx.source)));
    }
    let parse = |url: &String| {
        let text = url.trim();
        let known = ["redis:", "redis-sentinel:", "redis-cluster:"];
        if !known.iter().any(|scheme| text.starts_with(scheme)) {
            return Err(ctx.err(
                "driver",
                format!(
                    "unsupported driver {url:?}: supported drivers are redis://..., \
                     redis-sentinel://..., redis-cluster://... and file:..."
                ),
            ));
        }
        RedisUrl::parse(url).map_err(|e| ctx.err("driver", format!("{url:?}: {e}")))
    };
    let (read, write) = (parse(read)?, parse(write)?);
    // Every node of a cluster serves its keys both ways; a split would name two clusters or mix
    // a cluster with a single server, whose keys could never agree.
    if (read.cluster.is_some() || write.cluster.is_some()) && read != write {
        return Err(ctx.err(
            "driver",
            "a redis-cluster driver cannot be split into read and write servers: \
             give one redis-cluster URL",
        ));
    }
    Ok(Driver::Redis { read, write })
}

/// `file:routes.json` next to `config/config.json` is `config/routes.json`.
fn route_file(path: &str, source: &Path) -> PathBuf {
    // Accept the URL spelling `file:///abs/path` as well.
    let path = Path::new(path.strip_prefix("//").unwrap_or(path));
    match source.parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

fn logging(raw: super::raw::RawLogging, ctx: &Ctx<'_>) -> Result<Logging, ConfigError> {
    let web_token = match raw.web.as_ref().and_then(|w| w.token.clone()) {
        Some(token)
            if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            return Err(ctx.err(
                "logging.web.token",
                "must be a non-empty word (no spaces or control characters), as a bearer token is",
            ));
        }
        token => token,
    };
    Ok(Logging {
        web: raw
            .web
            .map(|w| {
                let raw = RawEndpoint {
                    host: w.host,
                    port: w.port,
                };
                endpoint(raw, "logging.web", ctx)
            })
            .transpose()?,
        web_token,
        udp: raw
            .udp
            .map(|e| endpoint(e, "logging.udp", ctx))
            .transpose()?,
        session: raw.session.unwrap_or_else(|| DEFAULT_SESSION.to_owned()),
    })
}

/// The admin page must not answer on a proxied address, where it would shadow (or be shadowed
/// by) the frontends: the same port on the same or a wildcard address is refused.
fn admin_apart<'a>(
    web: &Endpoint,
    proxied: impl Iterator<Item = &'a SocketAddr> + Clone,
    ctx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    if web.port == 0 {
        return Ok(());
    }
    let addrs = (web.host.as_str(), web.port)
        .to_socket_addrs()
        .map_err(|e| {
            ctx.err(
                "logging.web.host",
                format!("cannot resolve {:?}: {e}", web.host),
            )
        })?;
    for admin in addrs {
        let clash = proxied.clone().find(|listener| {
            listener.port() == admin.port()
                && (listener.ip() == admin.ip()
                    || listener.ip().is_unspecified()
                    || admin.ip().is_unspecified())
        });
        if let Some(listener) = clash {
            return Err(ctx.err(
                "logging.web",
                format!(
                    "{admin} is also a proxied listener ({listener}); \
                     the admin page needs a port of its own"
                ),
            ));
        }
    }
    Ok(())
}

fn endpoint(raw: RawEndpoint, key: &str, ctx: &Ctx<'_>) -> Result<Endpoint, ConfigError> {
    let port = raw
        .port
        .ok_or_else(|| ctx.err(format!("{key}.port"), "missing"))?;
    Ok(Endpoint {
        host: raw.host.unwrap_or_else(|| DEFAULT_ENDPOINT_HOST.to_owned()),
        port,
    })
}
