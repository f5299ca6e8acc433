//! `server`: Hipache's process and backend settings with their defaults, and ours beside them.

use std::path::PathBuf;
use std::time::Duration;

use super::{backend_tls, Ctx, DEFAULT_ACCESS_LOG, DEFAULT_LRU_SIZE, DEFAULT_LRU_TTL_SECS};
use crate::config::raw::RawServer;
use crate::config::{AccessLogFormat, ConfigError, LruCache, Server};

pub(super) fn server(raw: RawServer, ctx: &mut Ctx<'_>) -> Result<Server, ConfigError> {
    let at_least_one = |key: &str, value: Option<u32>, default: u32| match value {
        Some(0) => Err(ctx.err(key, "must be at least 1")),
        Some(n) => Ok(n as usize),
        None => Ok(default as usize),
    };
    let workers = at_least_one("server.workers", raw.workers, 10)?;
    let max_sockets = at_least_one("server.maxSockets", raw.max_sockets, 100)?;
    let memory_limit_bytes =
        at_least_one("server.memoryLimit", raw.memory_limit, 200)? as u64 * 1024 * 1024;
    let memory_check_interval = Duration::from_secs(at_least_one(
        "server.memoryCheckInterval",
        raw.memory_check_interval,
        60,
    )? as u64);
    let max_connections = match raw.max_connections {
        None => None,
        Some(n) => Some(at_least_one("server.maxConnections", Some(n), 1)?),
    };
    let access_log = match raw.access_log {
        None => Some(PathBuf::from(DEFAULT_ACCESS_LOG)),
        Some(path) => path.filter(|p| !p.is_empty()).map(PathBuf::from),
    };
    let access_log_format = match raw.access_log_format.as_deref() {
        None | Some("hipache") => AccessLogFormat::Hipache,
        Some("json") => AccessLogFormat::Json,
        Some(_) => return Err(ctx.err("server.accessLogFormat", "must be \"hipache\" or \"json\"")),
    };
    let lru_cache = match raw.lru_cache {
        Some(lru) => {
            if lru.size.is_none() {
                ctx.warnings.push(format!(
                    "server.lruCache.size missing; using {DEFAULT_LRU_SIZE}"
                ));
            }
            if lru.ttl.is_none() {
                ctx.warnings.push(format!(
                    "server.lruCache.ttl missing; using {DEFAULT_LRU_TTL_SECS}"
                ));
            }
            let size = usize::try_from(lru.size.unwrap_or(DEFAULT_LRU_SIZE))
                .map_err(|_| ctx.err("server.lruCache.size", "too large"))?;
            Some(LruCache {
                size,
                ttl: Duration::from_secs(lru.ttl.unwrap_or(DEFAULT_LRU_TTL_SECS)),
            })
        }
        None => None,
    };
    Ok(Server {
        debug: raw.debug.unwrap_or(false),
        workers,
        max_sockets,
        tcp_timeout: Duration::from_secs(raw.tcp_timeout.unwrap_or(30)),
        dead_backend_ttl: Duration::from_secs(raw.dead_backend_ttl.unwrap_or(30)),
        retry_on_error: raw.retry_on_error.unwrap_or(3),
        access_log,
        access_log_format,
        http_keep_alive: raw.http_keep_alive.unwrap_or(false),
        dead_backend_on_500: raw.dead_backend_on500.unwrap_or(true),
        static_dir: raw.static_dir.filter(|d| !d.is_empty()).map(PathBuf::from),
        lru_cache,
        memory_limit_bytes,
        memory_check_interval,
        graceful_wait: Duration::from_secs(raw.graceful_wait.unwrap_or(120)),
        force_secure: raw.force_secure.unwrap_or(false),
        sticky_sessions: raw.sticky_sessions.unwrap_or(false),
        sticky_secret: raw.sticky_secret.filter(|s| !s.is_empty()),
        max_connections,
        backend_trust: backend_tls::trust(raw.backend_ca.as_deref(), raw.backend_tls_verify, ctx)?,
    })
}
