//! Every frontend the route source holds, for the status page: traffic only names the frontends
//! that were asked for, and an operator looks for the others too. Read when the page is asked
//! for, from Redis with `SCAN` (never `KEYS`, which blocks the server for as long as it walks
//! them), or from the routes file; at most [`MAX_LISTED`] are listed, all are counted.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{Hash as _, Hasher as _};
use std::path::Path;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::time::{timeout, Instant};

use crate::config::{Driver, RedisUrl};
use crate::routes::file::dead_indexes;
use crate::routes::redis::{client, frontend_pattern, scan_step, Locator, SCAN_COUNT};
use crate::routes::{Frontend, DEAD_PREFIX, FRONTEND_PREFIX};

/// Frontends listed one by one; past it, they are only counted.
pub(crate) const MAX_LISTED: usize = 1_000;
/// Longest the whole listing may take: the page is answered with what was read by then.
const LIST_WAIT: Duration = Duration::from_secs(3);

/// The frontends of the route source.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Inventory {
    /// `redis` or `file`.
    pub(crate) source: &'static str,
    /// By host, at most [`MAX_LISTED`] of them (the first in byte order).
    pub(crate) frontends: BTreeMap<String, Listed>,
    /// Every frontend key seen, listed or not.
    pub(crate) total: u64,
    /// Why the listing is missing or incomplete.
    pub(crate) error: Option<String>,
}

/// One frontend as the route source holds it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// Element 0 of the list.
    pub(crate) id: String,
    /// Its backends' URLs, by position in the list.
    pub(crate) backends: Vec<String>,
    /// Positions in its dead set (`dead:<host>`).
    pub(crate) dead: Vec<usize>,
    /// Seconds the dead set has left, when it expires.
    pub(crate) dead_ttl_secs: Option<u64>,
}

impl Listed {
    fn new(host: &str, list: &[String]) -> Self {
        let id = list.first().cloned().unwrap_or_default();
        // URLs as the proxy reads them, or as written when it cannot.
        let backends = match Frontend::from_list(host, list, |_, _| {}) {
            Some(frontend) if frontend.backends.len() + 1 == list.len() => (frontend.backends)
                .iter()
                .map(|b| b.url.to_string())
                .collect(),
            _ => list.iter().skip(1).cloned().collect(),
        };
        Self {
            id,
            backends,
            ..Self::default()
        }
    }
}

/// The frontends of `driver`, as far as they can be read within [`LIST_WAIT`].
pub(crate) async fn list(driver: &Driver) -> Inventory {
    match driver {
        Driver::Redis { read, .. } => {
            let mut inventory = Inventory {
                source: "redis",
                ..Inventory::default()
            };
            if let Err(error) = from_redis(read, &mut inventory).await {
                inventory.error = Some(error);
            }
            inventory
        }
        Driver::File(path) => from_file(path).await,
    }
}

async fn from_file(path: &Path) -> Inventory {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => from_file_text(&text),
        Err(error) => Inventory {
            source: "file",
            error: Some(format!("cannot read {}: {error}", path.display())),
            ..Inventory::default()
        },
    }
}

/// The frontends of a routes file's text (the Redis layout as JSON).
fn from_file_text(text: &str) -> Inventory {
    let mut inventory = Inventory {
        source: "file",
        ..Inventory::default()
    };
    let entries: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(text) {
        Ok(entries) => entries,
        Err(error) => {
            inventory.error = Some(format!("invalid routes file: {error}"));
            return inventory;
        }
    };
    for (key, value) in &entries {
        let Some(host) = key.strip_prefix(FRONTEND_PREFIX) else {
            continue;
        };
        inventory.total += 1;
        if inventory.frontends.len() >= MAX_LISTED {
            continue;
        }
        let list: Vec<String> = serde_json::from_value(value.clone()).unwrap_or_default();
        let mut listed = Listed::new(host, &list);
        if let Some(dead) = entries.get(&format!("{DEAD_PREFIX}{host}")) {
            listed.dead = dead_indexes(dead).unwrap_or_default();
        }
        inventory.frontends.insert(host.to_owned(), listed);
    }
    inventory
}

/// Fills `inventory` from Redis: `SCAN` for the keys, then each listed frontend's list, dead
/// set and the dead set's TTL, pipelined.
async fn from_redis(url: &RedisUrl, inventory: &mut Inventory) -> Result<(), String> {
    let deadline = Instant::now() + LIST_WAIT;
    let locator = Locator::new(url);
    let address = timeout(LIST_WAIT, locator.locate())
        .await
        .map_err(|_| "redis: locating the server timed out".to_owned())??;
    let client = client(url, &address).map_err(|e| format!("redis: {e}"))?;
    let mut connection = bounded(deadline, client.get_multiplexed_async_connection()).await?;
    let prefix = format!("{}{FRONTEND_PREFIX}", url.prefix);
    let pattern = frontend_pattern(&url.prefix);
    let mut hosts = BTreeSet::new();
    // SCAN may return a key twice (while Redis resizes its table): counted once, by its hash.
    let mut seen = HashSet::new();
    let mut cursor = 0u64;
    loop {
        let scan = scan_step(cursor, &pattern);
        let (next, batch): (u64, Vec<String>) =
            bounded(deadline, scan.query_async(&mut connection)).await?;
        for key in batch {
            let Some(host) = key.strip_prefix(&prefix) else {
                continue;
            };
            let mut hasher = DefaultHasher::new();
            host.hash(&mut hasher);
            if !seen.insert(hasher.finish()) {
                continue;
            }
            inventory.total += 1;
            hosts.insert(host.to_owned());
            // Kept: the first in byte order, whatever order SCAN walks in.
            if hosts.len() > MAX_LISTED {
                hosts.pop_last();
            }
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let hosts: Vec<String> = hosts.into_iter().collect();
    for chunk in hosts.chunks(SCAN_COUNT) {
        let found = details(&mut connection, deadline, &url.prefix, chunk).await?;
        inventory.frontends.extend(found);
    }
    Ok(())
}

async fn details(
    connection: &mut MultiplexedConnection,
    deadline: Instant,
    prefix: &str,
    hosts: &[String],
) -> Result<Vec<(String, Listed)>, String> {
    let mut pipe = redis::pipe();
    for host in hosts {
        let dead_key = format!("{prefix}{DEAD_PREFIX}{host}");
        pipe.lrange(format!("{prefix}{FRONTEND_PREFIX}{host}"), 0, -1)
            .smembers(&dead_key)
            .ttl(&dead_key);
    }
    let answers: Vec<(Vec<String>, Vec<String>, i64)> =
        bounded(deadline, pipe.query_async(connection)).await?;
    Ok(hosts
        .iter()
        .zip(answers)
        .map(|(host, (list, dead, ttl))| {
            let mut listed = Listed::new(host, &list);
            listed.dead = dead.iter().filter_map(|i| i.trim().parse().ok()).collect();
            listed.dead.sort_unstable();
            // -1: no expiry, -2: no set.
            listed.dead_ttl_secs = u64::try_from(ttl).ok();
            (host.clone(), listed)
        })
        .collect())
}

/// `command` until `deadline`, its errors as text.
async fn bounded<T>(
    deadline: Instant,
    command: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout_at(deadline, command).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("redis: {error}")),
        Err(_) => Err(format!(
            "redis: listing took longer than {}s",
            LIST_WAIT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routes_file_lists_its_frontends_and_dead_sets() {
        let text = r#"{"frontend:a.test": ["a", "http://127.0.0.1:1", "http://127.0.0.1:2"],
                       "dead:a.test": [1], "frontend:b.test": ["b"], "other": 1}"#;
        let inventory = from_file_text(text);
        assert_eq!((inventory.source, inventory.total), ("file", 2));
        let a = &inventory.frontends["a.test"];
        assert_eq!(a.id, "a");
        assert_eq!(a.backends, ["http://127.0.0.1:1/", "http://127.0.0.1:2/"]);
        assert_eq!(a.dead, [1]);
        assert!(inventory.frontends["b.test"].backends.is_empty());
    }

    #[test]
    fn redis_frontends_are_scanned_counted_and_listed_up_to_the_cap() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let server = crate::routes::redis::tests::RedisServer::start(&[]).await;
            let mut url = server.url("");
            url.prefix = "a*p:".into();
            let address = Locator::new(&url).locate().await.unwrap();
            let mut connection = client(&url, &address)
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let mut pipe = redis::pipe();
            for i in 0..MAX_LISTED + 2 {
                pipe.rpush(
                    format!("a*p:frontend:h{i:04}.test"),
                    &["h", "http://127.0.0.1:1"],
                )
                .ignore();
            }
            pipe.rpush("a*p:frontend:h0000.test", "http://127.0.0.1:2")
                .ignore()
                .sadd("a*p:dead:h0000.test", "1")
                .ignore()
                .expire("a*p:dead:h0000.test", 100)
                .ignore()
                .rpush("frontend:unprefixed.test", &["u", "http://127.0.0.1:3"])
                .ignore()
                .rpush("aXp:frontend:other.test", &["o", "http://127.0.0.1:4"])
                .ignore();
            pipe.query_async::<()>(&mut connection).await.unwrap();

            let inventory = list(&Driver::Redis {
                read: url.clone(),
                write: url,
            })
            .await;
            assert_eq!(inventory.error, None);
            assert_eq!(inventory.source, "redis");
            assert_eq!(inventory.total, MAX_LISTED as u64 + 2);
            assert_eq!(inventory.frontends.len(), MAX_LISTED);
            assert!(inventory.frontends.contains_key("h0999.test"));
            assert!(!inventory.frontends.contains_key("h1000.test"));
            let first = &inventory.frontends["h0000.test"];
            assert_eq!(
                first.backends,
                ["http://127.0.0.1:1/", "http://127.0.0.1:2/"]
            );
            assert_eq!(first.dead, [1]);
            assert!(first
                .dead_ttl_secs
                .is_some_and(|ttl| (1..=100).contains(&ttl)));
            assert_eq!(inventory.frontends["h0001.test"].dead_ttl_secs, None);
        });
    }

    #[test]
    fn redis_out_of_reach_is_said_not_waited_on() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = RedisUrl::parse(&format!("redis://127.0.0.1:{port}")).unwrap();
        let inventory = runtime.block_on(list(&Driver::Redis {
            read: url.clone(),
            write: url,
        }));
        assert!(inventory.frontends.is_empty());
        assert!(inventory.error.is_some_and(|e| e.starts_with("redis: ")));
    }

    #[test]
    fn a_routes_file_past_the_cap_is_counted_not_listed() {
        let entries: serde_json::Map<String, serde_json::Value> = (0..MAX_LISTED + 2)
            .map(|i| (format!("frontend:h{i}.test"), serde_json::json!(["x"])))
            .collect();
        let inventory = from_file_text(&serde_json::Value::Object(entries).to_string());
        assert_eq!(inventory.frontends.len(), MAX_LISTED);
        assert_eq!(inventory.total, MAX_LISTED as u64 + 2);
    }
}
