//! Route edits on Redis, in Hipache's layout: `frontend:<host>` list, `dead:<host>` set, and our
//! `state:<host>` hash beside them, all behind the read driver URL's `#prefix` (Hipache ignores a
//! prefix on the write URL).
//!
//! Reads for `ls` and `show` go to the read server, which is what the proxy sees. Edits go to the
//! write server as an optimistic transaction: `WATCH` the keys, read them, [`plan`], then
//! `MULTI`/`EXEC` the new list, dead set and state hash. A concurrent write (a proxy marking a backend dead, a
//! health checker, another operator) aborts the `EXEC`, and the edit is planned again on fresh
//! data, so dead indexes are never remapped from a stale read. `ls` walks the keys with `SCAN`,
//! never `KEYS`, so a large keyspace does not block the server.

use std::time::Duration;

use redis::{Connection, IntoConnectionInfo as _};

use crate::config::redis_url::{Address, RedisUrl};
use crate::routes::redis::glob_escape;
use crate::routes::{DEAD_PREFIX, FRONTEND_PREFIX, STATE_PREFIX};

use super::edit::{plan, Change, Edit, HostRoutes};
use super::render::Summary;
use super::ManageError;

/// Bound on connecting and on each reply: an unreachable Redis fails the command, never hangs it.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Transactions aborted by concurrent writes before giving up.
const ATTEMPTS: usize = 10;
/// Keys asked per `SCAN` step: a few milliseconds of server time each.
const SCAN_COUNT: usize = 1_000;

pub(crate) struct RedisStore {
    read: RedisUrl,
    write: RedisUrl,
}

impl RedisStore {
    pub(crate) fn new(read: &RedisUrl, write: &RedisUrl) -> RedisStore {
        RedisStore {
            read: read.clone(),
            write: write.clone(),
        }
    }

    fn frontend_key(&self, host: &str) -> String {
        format!("{}{FRONTEND_PREFIX}{host}", self.read.prefix)
    }

    fn dead_key(&self, host: &str) -> String {
        format!("{}{DEAD_PREFIX}{host}", self.read.prefix)
    }

    fn keys(&self, host: &str) -> Keys {
        Keys {
            frontend: self.frontend_key(host),
            dead: self.dead_key(host),
            state: format!("{}{STATE_PREFIX}{host}", self.read.prefix),
        }
    }

    /// Every `frontend:` key with its id and backend count.
    pub(crate) fn frontends(&self) -> Result<Vec<Summary>, ManageError> {
        let server = &self.read;
        let mut conn = connect(server)?;
        let key_prefix = self.frontend_key("");
        let pattern = format!("{}*", glob_escape(&key_prefix));
        let mut summaries = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query(&mut conn)
                .map_err(|e| redis_error(server, e))?;
            if !keys.is_empty() {
                summaries.extend(summarize(&mut conn, server, &key_prefix, &keys)?);
            }
            if next == 0 {
                return Ok(summaries);
            }
            cursor = next;
        }
    }

    /// The host's list and dead set, from the read server.
    pub(crate) fn read(&self, host: &str) -> Result<HostRoutes, ManageError> {
        let mut conn = connect(&self.read)?;
        read_host(&mut conn, &self.read, &self.keys(host))
    }

    /// Plans `edit` on the write server's current data and writes it in one transaction.
    pub(crate) fn apply(&self, host: &str, edit: &Edit) -> Result<(), ManageError> {
        self.apply_planned(host, |current| plan(host, edit, current))
    }

    /// [`Self::apply`] with the planning step given, so a test can write between the read and
    /// the `EXEC` as a concurrent proxy would.
    fn apply_planned(
        &self,
        host: &str,
        mut plan: impl FnMut(&HostRoutes) -> Result<Change, ManageError>,
    ) -> Result<(), ManageError> {
        let server = &self.write;
        let keys = self.keys(host);
        let mut conn = connect(server)?;
        for _ in 0..ATTEMPTS {
            redis::cmd("WATCH")
                .arg(&keys.frontend)
                .arg(&keys.dead)
                .arg(&keys.state)
                .exec(&mut conn)
                .map_err(|e| redis_error(server, e))?;
            let current = read_host(&mut conn, server, &keys)?;
            let change = match plan(&current) {
                Ok(change) => change,
                Err(refused) => {
                    // The connection closes right after; UNWATCH only keeps it tidy.
                    let _ = redis::cmd("UNWATCH").exec(&mut conn);
                    return Err(refused);
                }
            };
            let pipe = transaction(&keys, &change, current.dead_ttl);
            let done: Option<Vec<redis::Value>> =
                pipe.query(&mut conn).map_err(|e| redis_error(server, e))?;
            if done.is_some() {
                return Ok(());
            }
        }
        Err(ManageError::Contended {
            server: server_name(server),
            host: host.to_owned(),
        })
    }
}

/// Id and backend count of each of `keys` (one batch of `SCAN`), in one round trip.
fn summarize(
    conn: &mut Connection,
    server: &RedisUrl,
    key_prefix: &str,
    keys: &[String],
) -> Result<Vec<Summary>, ManageError> {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.lindex(key, 0).llen(key);
    }
    let replies: Vec<redis::Value> = match pipe.query(conn) {
        Ok(replies) => replies,
        Err(e) => {
            let bad = find_bad_key(conn, server, keys);
            return Err(bad.unwrap_or_else(|| redis_error(server, e)));
        }
    };
    let mut summaries = Vec::with_capacity(keys.len());
    for (key, pair) in keys.iter().zip(replies.chunks(2)) {
        let [id, len] = pair else { continue };
        let id: Option<String> = redis::from_redis_value(id.clone()).ok().flatten();
        let len: usize = redis::from_redis_value(len.clone()).unwrap_or(0);
        // A key deleted between SCAN and LINDEX has no id: it is gone, not listed.
        if let (Some(id), Some(host)) = (id, key.strip_prefix(key_prefix)) {
            summaries.push(Summary {
                host: host.to_owned(),
                id,
                backends: len.saturating_sub(1),
            });
        }
    }
    Ok(summaries)
}

/// The keys of one host.
struct Keys {
    frontend: String,
    dead: String,
    state: String,
}

/// `MULTI; DEL frontend; RPUSH frontend list...; [DEL dead; SADD dead ...; PEXPIRE dead ttl];
/// [DEL state; HSET state url word ...]; EXEC`. The list is rewritten whole: under `WATCH` that is
/// as safe as an `RPUSH`, and one shape of transaction serves every edit. A state change alone
/// writes only the state hash.
fn transaction(keys: &Keys, change: &Change, dead_ttl: Option<Duration>) -> redis::Pipeline {
    let (frontend_key, dead_key) = (keys.frontend.as_str(), keys.dead.as_str());
    let mut pipe = redis::pipe();
    pipe.atomic();
    match change {
        Change::Delete => {
            pipe.del(frontend_key).del(dead_key).del(&keys.state);
        }
        Change::States(states) => put_states(&mut pipe, &keys.state, states),
        Change::Put { list, dead, states } => {
            pipe.del(frontend_key).rpush(frontend_key, list);
            if let Some(dead) = dead {
                pipe.del(dead_key);
                if !dead.is_empty() {
                    pipe.sadd(dead_key, dead);
                    // The marks keep the time they had left: an edit does not revive or extend them.
                    if let Some(ttl) = dead_ttl {
                        let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
                        pipe.pexpire(dead_key, millis);
                    }
                }
            }
            if let Some(states) = states {
                put_states(&mut pipe, &keys.state, states);
            }
        }
    }
    pipe
}

fn put_states(pipe: &mut redis::Pipeline, key: &str, states: &[(String, String)]) {
    pipe.del(key);
    if !states.is_empty() {
        pipe.cmd("HSET").arg(key).arg(states);
    }
}

fn read_host(
    conn: &mut Connection,
    server: &RedisUrl,
    keys: &Keys,
) -> Result<HostRoutes, ManageError> {
    type Replies = (Vec<String>, Vec<String>, i64, Vec<(String, String)>);
    let (list, members, pttl, mut states): Replies = redis::pipe()
        .lrange(&keys.frontend, 0, -1)
        .smembers(&keys.dead)
        .pttl(&keys.dead)
        .hgetall(&keys.state)
        .query(conn)
        .map_err(|e| redis_error(server, e))?;
    states.sort_unstable();
    // Hipache ignores members that are not indexes; so do we.
    let mut dead: Vec<usize> = members
        .iter()
        .filter_map(|member| member.trim().parse().ok())
        .collect();
    dead.sort_unstable();
    dead.dedup();
    // PTTL: -1 no expiry, -2 no key.
    let dead_ttl = u64::try_from(pttl).ok().map(Duration::from_millis);
    Ok(HostRoutes {
        list,
        dead,
        dead_ttl,
        states,
    })
}

/// Whether `server` answers `PING` within the timeout (through its sentinels for a
/// `redis-sentinel://` URL; one seed node of a cluster); if not, `<server> does not answer
/// (<why>)`.
pub(crate) fn ping(server: &RedisUrl) -> Result<(), String> {
    let silent = |error: ManageError| match error {
        ManageError::Redis { server, source } => format!("{server} does not answer ({source})"),
        other => other.to_string(),
    };
    let mut conn = connect(server).map_err(silent)?;
    redis::cmd("PING")
        .query::<String>(&mut conn)
        .map(drop)
        .map_err(|e| silent(redis_error(server, e)))
}

fn connect(server: &RedisUrl) -> Result<Connection, ManageError> {
    let address = server_address(server).map_err(|e| redis_error(server, e))?;
    let conn = crate::routes::redis::client(server, &address)
        .and_then(|client| client.get_connection_with_timeout(TIMEOUT))
        .and_then(|conn| {
            conn.set_read_timeout(Some(TIMEOUT))?;
            conn.set_write_timeout(Some(TIMEOUT))?;
            Ok(conn)
        });
    conn.map_err(|e| redis_error(server, e))
}

/// The server to talk to: the URL's own, or for `redis-sentinel://` the master the first
/// sentinel that answers names (as the proxy asks before each connection).
fn server_address(server: &RedisUrl) -> redis::RedisResult<Address> {
    let Some(sentinel) = &server.sentinel else {
        return Ok(Address {
            host: server.host.clone(),
            port: server.port,
        });
    };
    let mut last = None;
    for candidate in &sentinel.sentinels {
        let asked = redis::ConnectionAddr::Tcp(candidate.host.clone(), candidate.port)
            .into_connection_info()
            .and_then(redis::Client::open)
            .and_then(|client| client.get_connection_with_timeout(TIMEOUT))
            .and_then(|mut conn| {
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&sentinel.master)
                    .query::<Option<(String, u16)>>(&mut conn)
            });
        match asked {
            Ok(Some((host, port))) => return Ok(Address { host, port }),
            Ok(None) => {
                last = Some(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "no sentinel knows the master",
                    sentinel.master.clone(),
                )))
            }
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| {
        redis::RedisError::from((redis::ErrorKind::Client, "no sentinel address"))
    }))
}

fn redis_error(server: &RedisUrl, source: redis::RedisError) -> ManageError {
    ManageError::Redis {
        server: server_name(server),
        source,
    }
}

/// The server in messages: its censored URL without the `#prefix`, which names no server and
/// whose usual trailing `:` would run into the message's own.
fn server_name(server: &RedisUrl) -> String {
    let shown = server.to_string();
    match shown.split_once('#') {
        Some((url, _)) => url.to_owned(),
        None => shown,
    }
}

/// After a failed batch, the key that is not a list, so the error can name it.
fn find_bad_key(conn: &mut Connection, server: &RedisUrl, keys: &[String]) -> Option<ManageError> {
    keys.iter().find_map(|key| {
        let kind: String = redis::cmd("TYPE").arg(key).query(conn).ok()?;
        (kind != "list" && kind != "none").then(|| ManageError::RedisLayout {
            server: server_name(server),
            key: key.clone(),
            expected: "list",
        })
    })
}

#[cfg(test)]
#[path = "redis_tests.rs"]
mod tests;
