//! Where the Redis source's commands go: one server (Hipache's, possibly split into a read and a
//! write server), or a cluster, whose keys are read from and written to the nodes owning them.
//!
//! On one server (Sentinel's included) a lookup is one pipeline of plain reads, without MULTI:
//! one write of every command, one read of every reply (see [`super::query`]). In a cluster the
//! keys of a lookup sit on different slots, which no transaction may span, so each key is read on
//! its own node, in one pipeline per node, all nodes at once (one round trip). Reads
//! stay consistent enough without MULTI, although another client's write may run between two of
//! them: the tracking connection (one per master in a cluster, see [`super::tracking`]) bumps the
//! cache epoch for any write, and an answer is cached as fresh only if no invalidation came
//! between sending its reads and storing it. A write that ran before our last read had its
//! push queued in that event-loop turn or an earlier one, and Redis writes the push before our
//! reply, so it is in the tracking socket when the reply arrives, and the store, which drains
//! that socket first, finds the epoch moved: an answer mixing an old and a new key may answer
//! the one request that read it, never be served from cache. An answer that needed a redirection is not cached as fresh
//! at all, nor one with a reply from a node whose tracking connection was not up before the read
//! went out (a master the slot map names before its tracking connection is made): no write
//! there would reach the cache.

use redis::{Pipeline, Value};

use super::cluster::{Cluster, Group};
use super::link::{Link, LinkError};
use super::query::{self, Replies};
use crate::config::redis_url::Address;

/// Cheap-to-clone handle on the servers of a driver.
#[derive(Clone)]
pub(crate) enum Servers {
    Single { read: Link, write: Link },
    Cluster(Cluster),
}

/// What a read got: `values` (the replies, or what they say), and where they came from.
pub(crate) struct Read<T = Vec<Value>> {
    pub(crate) values: T,
    /// The answer came through a redirection (cluster only): keep it as last known, not fresh.
    pub(crate) redirected: bool,
    /// The servers the replies came from (the cluster's nodes, or the one server where Sentinel
    /// said the master was): the answer is fresh only if each was tracked before the read.
    pub(crate) nodes: Vec<Address>,
}

impl Servers {
    /// Reads the first non-empty list at `frontend_keys`, then the set at `dead_key` and the hash
    /// at `state_key`; with `ttls`, the shortest remaining TTL of the keys the answer came from.
    pub(crate) async fn lookup(
        &self,
        frontend_keys: &[String],
        dead_key: &str,
        state_key: &str,
        ttls: bool,
    ) -> Result<Read<Replies>, LinkError> {
        let keys = || (frontend_keys.iter().map(String::as_str)).chain([dead_key, state_key]);
        let candidates = frontend_keys.len();
        let parsed = |e: redis::ParsingError| LinkError::Redis(e.into());
        match self {
            Self::Single { read, .. } => {
                // Not atomic (see the module doc): MULTI and EXEC cost Redis a fifth more.
                let mut pipe = redis::pipe();
                for key in frontend_keys {
                    pipe.lrange(key, 0, -1);
                }
                pipe.smembers(dead_key);
                pipe.hgetall(state_key);
                if ttls {
                    for key in keys() {
                        pipe.pttl(key);
                    }
                }
                let (values, server) = read.query_at(&pipe).await?;
                Ok(Read {
                    values: query::command_replies(values, candidates, ttls).map_err(parsed)?,
                    redirected: false,
                    nodes: vec![server],
                })
            }
            Self::Cluster(cluster) => {
                let groups: Vec<Group> = keys()
                    .enumerate()
                    .map(|(n, key)| {
                        let read = match n.checked_sub(frontend_keys.len()) {
                            None => redis::cmd("LRANGE").arg(key).arg(0).arg(-1).to_owned(),
                            Some(0) => redis::cmd("SMEMBERS").arg(key).to_owned(),
                            Some(_) => redis::cmd("HGETALL").arg(key).to_owned(),
                        };
                        let mut commands = vec![read];
                        if ttls {
                            commands.push(redis::cmd("PTTL").arg(key).to_owned());
                        }
                        Group {
                            key: key.as_bytes().to_vec(),
                            commands,
                            atomic: false,
                        }
                    })
                    .collect();
                let (replies, redirected) = cluster.run(&groups).await?;
                let mut values = Vec::with_capacity(groups.len() * 2);
                let mut pttls = Vec::new();
                let mut nodes: Vec<Address> = Vec::new();
                for replies in replies {
                    if !nodes.contains(&replies.node) {
                        nodes.push(replies.node);
                    }
                    let mut replies = replies.values.into_iter();
                    values.push(replies.next().unwrap_or(Value::Nil));
                    pttls.extend(replies);
                }
                values.extend(pttls);
                Ok(Read {
                    values: query::command_replies(values, candidates, ttls).map_err(parsed)?,
                    redirected,
                    nodes,
                })
            }
        }
    }

    /// `HGETALL` of each of `keys` (one transaction on one server, each key on its node in a
    /// cluster): one reply per key, in order.
    pub(crate) async fn hashes(&self, keys: &[String]) -> Result<Read, LinkError> {
        match self {
            Self::Single { read, .. } => {
                let mut pipe = redis::pipe();
                pipe.atomic();
                for key in keys {
                    pipe.hgetall(key);
                }
                let (values, server) = read.query_at(&pipe).await?;
                Ok(Read {
                    values,
                    redirected: false,
                    nodes: vec![server],
                })
            }
            Self::Cluster(cluster) => {
                let groups: Vec<Group> = keys
                    .iter()
                    .map(|key| Group {
                        key: key.as_bytes().to_vec(),
                        commands: vec![redis::cmd("HGETALL").arg(key).to_owned()],
                        atomic: false,
                    })
                    .collect();
                let (replies, redirected) = cluster.run(&groups).await?;
                let mut values = Vec::with_capacity(groups.len());
                let mut nodes: Vec<Address> = Vec::new();
                for replies in replies {
                    if !nodes.contains(&replies.node) {
                        nodes.push(replies.node);
                    }
                    values.push(replies.values.into_iter().next().unwrap_or(Value::Nil));
                }
                Ok(Read {
                    values,
                    redirected,
                    nodes,
                })
            }
        }
    }

    /// Runs `pipe` (commands on `key`, or on no key) on the write server, or on `key`'s node.
    pub(crate) async fn write(&self, key: &str, pipe: &Pipeline) -> Result<(), LinkError> {
        match self {
            Self::Single { write, .. } => write.query::<Value>(pipe).await.map(drop),
            Self::Cluster(cluster) => {
                let group = Group {
                    key: key.as_bytes().to_vec(),
                    commands: pipe.cmd_iter().cloned().collect(),
                    atomic: pipe.is_transaction(),
                };
                let (replies, _) = cluster.run(&[group]).await?;
                first_error(replies.into_iter().flat_map(|r| r.values))
            }
        }
    }

    /// `GET key` on the read server, or on `key`'s node.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<String>, LinkError> {
        match self {
            Self::Single { read, .. } => {
                let (value,) = read.query(redis::pipe().get(key)).await?;
                Ok(value)
            }
            Self::Cluster(cluster) => {
                let group = Group {
                    key: key.as_bytes().to_vec(),
                    commands: vec![redis::cmd("GET").arg(key).to_owned()],
                    atomic: false,
                };
                let (replies, _) = cluster.run(&[group]).await?;
                let value = replies
                    .into_iter()
                    .flat_map(|r| r.values)
                    .next()
                    .unwrap_or(Value::Nil);
                if let Value::ServerError(e) = value {
                    return Err(LinkError::Redis(e.into()));
                }
                redis::from_redis_value(value).map_err(|e| LinkError::Redis(e.into()))
            }
        }
    }
}

fn first_error(values: impl IntoIterator<Item = Value>) -> Result<(), LinkError> {
    for value in values {
        if let Value::ServerError(e) = value {
            return Err(LinkError::Redis(e.into()));
        }
    }
    Ok(())
}
