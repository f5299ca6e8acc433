//! The checker's side of Redis, in Hipache's layout: listing frontends without blocking the
//! server (`SCAN`), the heartbeat, and the dead-set writes, which are the proxy's own
//! (`routes::redis::mark_pipeline`) so that subscribers of `dead` cannot tell them apart.

use std::collections::BTreeSet;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::time::timeout;
use tracing::{debug, warn};

use crate::config::RedisUrl;
use crate::routes::redis::{
    client, frontend_pattern, mark_pipeline, scan_step, Locator, PING_KEY, SCAN_COUNT,
};
use crate::routes::{Backend, Frontend, DEAD_PREFIX, FRONTEND_PREFIX};

/// Longest one Redis command (or connection attempt) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// One backend of one frontend, as the checker probes it.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) host: String,
    pub(super) backend: Backend,
    /// Backends listed by the frontend, as `PUBLISH dead` reports it.
    pub(super) count: usize,
}

/// One Redis server, connected on demand and reconnected after a failure.
pub(super) struct Server {
    url: RedisUrl,
    /// Where the server is now (asked of Sentinel before each connection, for a
    /// `redis-sentinel://` URL, so that a promotion is followed).
    locator: Locator,
    connection: Option<MultiplexedConnection>,
    /// Set while commands fail, so an outage warns once.
    failing: bool,
}

impl Server {
    pub(super) fn new(url: RedisUrl) -> Self {
        Self {
            locator: Locator::new(&url),
            url,
            connection: None,
            failing: false,
        }
    }

    pub(super) fn prefix(&self) -> &str {
        &self.url.prefix
    }

    /// Runs `pipe`, bounded in time; a failure drops the connection for the next call to redo.
    pub(super) async fn query<T: redis::FromRedisValue>(
        &mut self,
        pipe: &redis::Pipeline,
    ) -> Option<T> {
        let result = match self.connect().await {
            Ok(mut connection) => timeout(COMMAND_TIMEOUT, pipe.query_async(&mut connection))
                .await
                .map_err(|_| "timed out".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string())),
            Err(error) => Err(error),
        };
        match result {
            Ok(value) => {
                if std::mem::take(&mut self.failing) {
                    tracing::info!(server = %self.url, "health checker reaches redis again");
                }
                Some(value)
            }
            Err(error) => {
                self.connection = None;
                if !std::mem::replace(&mut self.failing, true) {
                    warn!(server = %self.url, %error, "health checker cannot use redis");
                } else {
                    debug!(server = %self.url, %error, "health checker cannot use redis");
                }
                None
            }
        }
    }

    async fn connect(&mut self) -> Result<MultiplexedConnection, String> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        let address = self.locator.locate().await?;
        let client = client(&self.url, &address).map_err(|e| e.to_string())?;
        let connection = timeout(COMMAND_TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        self.connection = Some(connection.clone());
        Ok(connection)
    }

    /// Every backend of every frontend a request host can name, `None` when Redis failed.
    /// Wildcard frontends (`*.example.com`, `*`) are left out: a request reads the dead set of
    /// its own host, so a mark under `dead:*.example.com` would change nothing. So are
    /// frontends with one backend, which the proxy never marks either.
    pub(super) async fn targets(&mut self) -> Option<Vec<Target>> {
        let prefix = format!("{}{FRONTEND_PREFIX}", self.prefix());
        let pattern = frontend_pattern(self.prefix());
        let mut keys = BTreeSet::new();
        let mut cursor = 0u64;
        loop {
            let mut scan = redis::pipe();
            scan.add_command(scan_step(cursor, &pattern));
            let ((next, batch),): ((u64, Vec<String>),) = self.query(&scan).await?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let hosts: Vec<&str> = keys
            .iter()
            .filter_map(|key| key.strip_prefix(&prefix))
            .filter(|host| !host.contains('*') && host.bytes().all(|b| b.is_ascii_graphic()))
            .collect();
        let mut targets = Vec::new();
        for chunk in hosts.chunks(SCAN_COUNT) {
            let mut lists = redis::pipe();
            for host in chunk {
                lists.lrange(format!("{prefix}{host}"), 0, -1);
            }
            let lists: Vec<Vec<String>> = self.query(&lists).await?;
            for (host, list) in chunk.iter().zip(lists) {
                let Some(frontend) = Frontend::from_list(host, &list, |_, _| {}) else {
                    continue;
                };
                if frontend.backend_count < 2 {
                    continue;
                }
                targets.extend(frontend.backends.iter().map(|backend| Target {
                    host: (*host).to_owned(),
                    backend: backend.clone(),
                    count: frontend.backend_count,
                }));
            }
        }
        Some(targets)
    }

    /// `SET hchecker_ping <unix seconds>`, never prefixed, as Hipache's checker writes it.
    pub(super) async fn heartbeat(&mut self, unix_secs: u64) -> bool {
        let mut pipe = redis::pipe();
        pipe.set(PING_KEY, unix_secs).ignore();
        self.query::<()>(&pipe).await.is_some()
    }

    /// The proxy's own mark: `SADD`, `EXPIRE`, `PUBLISH dead "<host>;<url>;<index>;<count>"`.
    pub(super) async fn mark_dead(&mut self, target: &Target, ttl: Duration) -> bool {
        let pipe = mark_pipeline(
            &self.url.prefix,
            &target.host,
            &target.backend,
            target.count,
            Some(ttl),
        );
        self.query::<()>(&pipe).await.is_some()
    }

    /// Keeps a mark from expiring while the backend keeps failing (no new `PUBLISH`).
    pub(super) async fn renew(&mut self, target: &Target, ttl: Duration) -> bool {
        let key = self.dead_key(&target.host);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .sadd(&key, target.backend.index)
            .ignore()
            .expire(&key, ttl.as_secs().max(1) as i64)
            .ignore();
        self.query::<()>(&pipe).await.is_some()
    }

    /// `SREM dead:<host> <index>`.
    pub(super) async fn clear(&mut self, target: &Target) -> bool {
        let key = self.dead_key(&target.host);
        let mut pipe = redis::pipe();
        pipe.srem(&key, target.backend.index).ignore();
        self.query::<()>(&pipe).await.is_some()
    }

    fn dead_key(&self, host: &str) -> String {
        format!("{}{DEAD_PREFIX}{host}", self.url.prefix)
    }
}
