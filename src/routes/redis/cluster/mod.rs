//! A Redis Cluster as seen by a worker (`redis-cluster://`): the slot map, one command link per
//! master, and sending commands to the nodes that own their keys.
//!
//! The map is read with `CLUSTER SLOTS` from a known master or a seed node of the URL, at start,
//! every [`REFRESH_INTERVAL`], and at once (at most every [`MIN_REFRESH_GAP`]) when a node says
//! MOVED, says CLUSTERDOWN or cannot be reached, so a resharding or a failover is followed. Keys
//! on different slots cannot share a transaction: commands are sent as [`Group`]s (commands on
//! one key), one pipeline per node. A group redirected with MOVED is sent again to the new owner,
//! one redirected with ASK (a slot being migrated) is sent with `ASKING` to the importing node.
//! The tracking connections follow the masters of the map ([`Cluster::masters`]).

pub(crate) mod slots;

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::Duration;

use redis::{ServerErrorKind, Value};
use tokio::sync::{watch, Notify};
use tokio::time::{sleep, timeout_at, Instant};
use tracing::{debug, info};

use super::link::{Link, LinkError, COMMAND_TIMEOUT};
use super::reconnect::Health;
use super::sentinel::Locator;
use crate::config::redis_url::Address;
use crate::config::RedisUrl;
use crate::routes::lock;
use slots::{slot, SlotMap};

/// How often the slot map is read while nothing asks for it.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest delay between two reads of the slot map, however many commands ask.
const MIN_REFRESH_GAP: Duration = Duration::from_millis(50);
/// Most redirections one group follows before giving up (a migration moves a slot once).
const MAX_REDIRECTS: usize = 5;

/// Commands on one key, sent to the node owning it: in MULTI/EXEC when `atomic` (and the node is
/// the owner; after an ASK they go one by one, each after `ASKING`).
pub(crate) struct Group {
    pub(crate) key: Vec<u8>,
    pub(crate) commands: Vec<redis::Cmd>,
    pub(crate) atomic: bool,
}

/// Cheap-to-clone handle on the cluster.
#[derive(Clone)]
pub(crate) struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    url: RedisUrl,
    seeds: Vec<Address>,
    map: watch::Sender<Arc<SlotMap>>,
    links: Mutex<HashMap<Address, Link>>,
    refresh: Arc<Notify>,
}

/// Where a group goes next.
#[derive(Clone)]
enum Target {
    Owner,
    Moved(Address),
    Ask(Address),
}

/// What the cluster said about one group.
pub(crate) struct Replies {
    /// One reply per command (a server error as [`Value::ServerError`]).
    pub(crate) values: Vec<Value>,
    /// The node that gave them: the one whose tracking must cover an answer built on them.
    pub(crate) node: Address,
}

impl Cluster {
    /// Starts reading the slot map of the cluster of `url` in the background (inside a tokio
    /// runtime; without one the map stays empty and every command fails).
    pub(crate) fn new(url: &RedisUrl) -> Self {
        let refresh = Arc::new(Notify::new());
        let inner = Arc::new(Inner {
            url: url.clone(),
            seeds: url
                .cluster
                .as_ref()
                .map(|seeds| seeds.nodes.clone())
                .unwrap_or_default(),
            map: watch::Sender::new(Arc::new(SlotMap::default())),
            links: Mutex::new(HashMap::new()),
            refresh: refresh.clone(),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(keep_map(Arc::downgrade(&inner), refresh));
        }
        Self { inner }
    }

    /// The slot map as it changes, for the tracking connections.
    pub(crate) fn maps(&self) -> watch::Receiver<Arc<SlotMap>> {
        self.inner.map.subscribe()
    }

    /// Sends every group to the node owning its key and returns their replies in order, plus
    /// whether any was redirected (its answer then came from a node that tracking may not cover
    /// yet). Fails when a node cannot be reached or the map has no owner for a key.
    pub(crate) async fn run(&self, groups: &[Group]) -> Result<(Vec<Replies>, bool), LinkError> {
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut replies: Vec<Option<Replies>> = groups.iter().map(|_| None).collect();
        let mut targets: Vec<Target> = vec![Target::Owner; groups.len()];
        let mut redirected = false;
        for _ in 0..=MAX_REDIRECTS {
            let map = self.map(deadline).await?;
            let mut by_node: Vec<(Address, bool, Vec<usize>)> = Vec::new();
            for (index, group) in groups.iter().enumerate() {
                if replies[index].is_some() {
                    continue;
                }
                let (node, asking) = match &targets[index] {
                    Target::Owner => match map.owner(slot(&group.key)) {
                        Some(node) => (node.clone(), false),
                        None => {
                            self.inner.refresh.notify_one();
                            return Err(LinkError::Cluster("slot not served"));
                        }
                    },
                    Target::Moved(node) => (node.clone(), false),
                    Target::Ask(node) => (node.clone(), true),
                };
                match by_node
                    .iter_mut()
                    .find(|(n, a, _)| *n == node && *a == asking)
                {
                    Some((_, _, indexes)) => indexes.push(index),
                    None => by_node.push((node, asking, vec![index])),
                }
            }
            if by_node.is_empty() {
                let replies = replies.into_iter().flatten().collect();
                return Ok((replies, redirected));
            }
            // Every node at once: a lookup costs one round trip, not one per node.
            let sends = by_node.iter().map(|(node, asking, indexes)| {
                let sent: Vec<&Group> = indexes.iter().map(|&i| &groups[i]).collect();
                async move { self.send(node, &sent, *asking).await }
            });
            let outcomes = join_all(sends.collect()).await;
            for ((node, _, indexes), answers) in by_node.into_iter().zip(outcomes) {
                for (index, answer) in indexes.into_iter().zip(answers?) {
                    match answer {
                        Outcome::Done(values) => {
                            let node = node.clone();
                            replies[index] = Some(Replies { values, node });
                        }
                        Outcome::Moved(to) => {
                            redirected = true;
                            self.inner.refresh.notify_one();
                            targets[index] = Target::Moved(to);
                        }
                        Outcome::Ask(to) => {
                            redirected = true;
                            targets[index] = Target::Ask(to);
                        }
                    }
                }
            }
        }
        Err(LinkError::Cluster("too many redirections"))
    }

    /// The current map; at start, waits (within `deadline`) for the first one.
    async fn map(&self, deadline: Instant) -> Result<Arc<SlotMap>, LinkError> {
        let mut maps = self.inner.map.subscribe();
        let ready = timeout_at(deadline, maps.wait_for(|map| !map.is_empty())).await;
        match ready {
            Ok(Ok(map)) => Ok(map.clone()),
            Ok(Err(_)) => Err(LinkError::Down),
            Err(_) => Err(LinkError::Cluster("no slot map")),
        }
    }

    /// One pipeline to `node` carrying `groups`.
    async fn send(
        &self,
        node: &Address,
        groups: &[&Group],
        asking: bool,
    ) -> Result<Vec<Outcome>, LinkError> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let mut shapes = Vec::with_capacity(groups.len());
        for group in groups {
            let atomic = group.atomic && !asking;
            if atomic {
                pipe.cmd("MULTI");
            }
            for command in &group.commands {
                if asking {
                    pipe.cmd("ASKING").ignore();
                }
                pipe.add_command(command.clone());
            }
            if atomic {
                pipe.cmd("EXEC");
            }
            shapes.push((group.commands.len(), atomic));
        }
        let link = self.link(node);
        let values: Vec<Value> = match link.query(&pipe).await {
            Ok(values) => values,
            Err(e) => {
                if e.is_connection() {
                    self.inner.refresh.notify_one();
                }
                return Err(e);
            }
        };
        let mut values = values.into_iter();
        let mut answers = Vec::with_capacity(groups.len());
        for (count, atomic) in shapes {
            let taken: Vec<Value> = values
                .by_ref()
                .take(count + 2 * usize::from(atomic))
                .collect();
            let answer = if atomic {
                // MULTI's OK, one QUEUED (or the refusal) per command, then EXEC's results.
                let redirect = taken
                    .get(1..=count)
                    .and_then(|queued| queued.iter().find_map(redirect));
                match (redirect, taken.into_iter().last()) {
                    (Some(redirect), _) => redirect,
                    (None, Some(Value::Array(results))) => Outcome::Done(results),
                    (None, other) => Outcome::Done(vec![other.unwrap_or(Value::Nil); count]),
                }
            } else {
                match taken.iter().find_map(redirect) {
                    Some(redirect) => redirect,
                    None => Outcome::Done(taken),
                }
            };
            if let Outcome::Done(values) = &answer {
                if values.iter().any(is_cluster_down) {
                    self.inner.refresh.notify_one();
                }
            }
            answers.push(answer);
        }
        Ok(answers)
    }

    /// The command link of `node`, started on first use.
    fn link(&self, node: &Address) -> Link {
        let mut links = lock(&self.inner.links);
        links
            .entry(node.clone())
            .or_insert_with(|| {
                let url = self.inner.url.node(node);
                Link::new(&url, Locator::new(&url), Health::new(&url))
            })
            .clone()
    }

    /// Reads the slot map from a known master, else a seed; publishes it when it changed and
    /// lets go of the links of nodes that no longer serve slots.
    async fn refresh(&self) {
        let known = self.inner.map.borrow().masters();
        let mut asked: Vec<Address> = Vec::new();
        for node in known.iter().chain(&self.inner.seeds) {
            if asked.contains(node) {
                continue;
            }
            asked.push(node.clone());
            let mut pipe = redis::pipe();
            pipe.cmd("CLUSTER").arg("SLOTS");
            let reply = self.link(node).query::<(Value,)>(&pipe).await;
            let map = match reply {
                Ok((reply,)) => SlotMap::parse(&reply, node),
                Err(e) => {
                    debug!(node = %node, error = %e, "redis cluster slots unreadable");
                    None
                }
            };
            let Some(map) = map.filter(|map| !map.is_empty()) else {
                continue;
            };
            let masters = map.masters();
            let changed = self.inner.map.send_if_modified(|current| {
                let changed = **current != map;
                if changed {
                    *current = Arc::new(map);
                }
                changed
            });
            if changed {
                info!(masters = masters.len(), "redis cluster slot map read");
            }
            lock(&self.inner.links).retain(|node, _| masters.contains(node));
            return;
        }
    }
}

/// Runs `futures` concurrently on this task and returns their outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// What a node said to one group.
enum Outcome {
    Done(Vec<Value>),
    Moved(Address),
    Ask(Address),
}

/// A MOVED or ASK reply, as where to go.
fn redirect(value: &Value) -> Option<Outcome> {
    let Value::ServerError(error) = value else {
        return None;
    };
    let kind = error.kind()?;
    if kind != ServerErrorKind::Moved && kind != ServerErrorKind::Ask {
        return None;
    }
    // "<slot> <host>:<port>"
    let to = error.details()?.split_ascii_whitespace().nth(1)?;
    let (host, port) = to.rsplit_once(':')?;
    let to = Address {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port: port.parse().ok()?,
    };
    Some(if kind == ServerErrorKind::Moved {
        Outcome::Moved(to)
    } else {
        Outcome::Ask(to)
    })
}

fn is_cluster_down(value: &Value) -> bool {
    matches!(value, Value::ServerError(e) if e.kind() == Some(ServerErrorKind::ClusterDown))
}

/// Reads the slot map at start, every [`REFRESH_INTERVAL`] and when asked, until the cluster
/// handle is gone.
async fn keep_map(inner: Weak<Inner>, refresh: Arc<Notify>) {
    loop {
        let Some(cluster) = inner.upgrade().map(|inner| Cluster { inner }) else {
            return;
        };
        cluster.refresh().await;
        let empty = cluster.inner.map.borrow().is_empty();
        drop(cluster);
        if !empty {
            tokio::select! {
                () = refresh.notified() => {}
                () = sleep(REFRESH_INTERVAL) => {}
            }
        }
        sleep(MIN_REFRESH_GAP).await;
    }
}

#[cfg(test)]
mod tests;
