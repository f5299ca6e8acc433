//! The Redis route source, in Hipache's exact key layout and traffic (COMPATIBILITY.md).
//!
//! It owns: the lookup (one round trip, one pipeline of plain reads; done only on a cache miss
//! or while tracking is off), stale-if-error answers when Redis is
//! unreachable, local dead marks, and the dead-mark write + `PUBLISH dead` to the write server.
//! The wire format of the lookup and of the dead mark is in [`query`]; connections live in
//! [`link`], kept up by the one reconnect loop of [`reconnect`] (which also
//! tells the operator about outages); the cache kept fresh by Redis's invalidation pushes in
//! [`tracking`] and [`cache`] (compact answers in [`intern`]); one lookup per host in flight in
//! [`flight`]; the hchecker heartbeat in [`hchecker`]. Where commands go (one server, a read and a
//! write server, or the nodes of a cluster owning their keys) is [`servers`]'s; the cluster's
//! slot map and redirections are [`cluster`]'s.
//!
//! A new worker's cache is warmed with a sibling's hosts by [`warm`].
//!
//! Certificates kept in Redis (`tls:` hashes, when `https.redisCertificates` is on) are read and
//! cached by [`certs`], through the same servers and tracking.
//!
//! Keys: the read driver URL's prefix goes in front of `frontend:`, `dead:` and `tls:` keys (and
//! our `state:` hashes, read in the lookup beside `dead:`), on both servers, exactly as Hipache (which ignores a prefix on the write URL). It is not applied
//! to `hchecker_ping` nor to the `dead` pub/sub channel, as in Hipache.

mod cache;
#[cfg(test)]
mod cache_tests;
mod certs;
mod cluster;
mod flight;
mod hchecker;
mod host_index;
mod intern;
mod link;
mod query;
mod reconnect;
mod resp;
mod scan;
mod sentinel;
mod servers;
mod store;
#[cfg(test)]
pub(crate) mod tests;
mod tracking;
#[cfg(test)]
mod tracking_tests;
mod warm;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::dead::DeadMarks;
use super::{
    lock, Backend, Footprint, Frontend, Held, Lookup, RouteError, RouteSource, DEAD_PREFIX,
    FRONTEND_PREFIX, STATE_PREFIX,
};
use crate::config::redis_url::Address;
use crate::config::{CacheLimits, RedisUrl};
use crate::metrics::{self, names::Counter};
use cluster::Cluster;
use flight::{Flights, Join};
use hchecker::PassiveChecks;
// The master's health checker (the `health` module) writes the same keys and messages.
use crate::escape::Escaped;
pub(crate) use hchecker::{unix_now_secs, PING_KEY};
pub(crate) use link::client;
use link::{Link, LinkError};
use query::answer;
pub(crate) use query::mark_pipeline;
use reconnect::Health;
pub(crate) use scan::{frontend_pattern, glob_escape, scan_step, SCAN_COUNT};
pub(crate) use sentinel::Locator;
use servers::{Read, Servers};
pub(crate) use store::StoreError;
use tracking::{Check, Ticket, Tracking};

/// Most (key, entry) pairs remembered as already reported, so bad data is logged once, not per
/// request. When full the set is cleared, which at worst logs each pair once more.
const MAX_REPORTED: usize = 1_024;

/// Cheap-to-clone handle on the Redis routes of a worker.
#[derive(Clone)]
pub(crate) struct RedisRoutes {
    shared: Arc<Shared>,
}

struct Shared {
    servers: Servers,
    prefix: String,
    dead_ttl: Duration,
    passive: PassiveChecks,
    marks: DeadMarks,
    tracking: Tracking,
    flights: Flights<Result<Option<Lookup>, RouteError>>,
    /// Set by a failed dead-mark write, so an outage warns once rather than per mark.
    write_failing: AtomicBool,
    reported: Mutex<HashSet<(String, String)>>,
}

/// Where a lookup's answer came from.
enum Source {
    /// Through a redirection: from a node tracking may not cover yet.
    Redirected,
    /// From these cluster nodes (none: the one server).
    Nodes(Vec<Address>),
}

/// What Redis said about a host: the matched frontend, the `dead:<host>` set and the
/// `state:<host>` hash.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    frontend: Arc<Frontend>,
    dead: Vec<usize>,
    held: Held,
}

impl RedisRoutes {
    /// Starts connecting to `read` (lookups, `hchecker_ping`) and `write` (dead marks) in the
    /// background; pass the same URL twice for a single server or a cluster (whose nodes do both;
    /// the config refuses a split cluster). Never blocks nor fails: while Redis is down lookups
    /// answer [`RouteError::Unavailable`] and connections keep retrying. Must be called inside a
    /// tokio runtime (otherwise the source stays unavailable). The cache's bytes are published
    /// in `footprint`.
    pub(crate) fn new(
        read: &RedisUrl,
        write: &RedisUrl,
        dead_ttl: Duration,
        cache: CacheLimits,
        certificates: bool,
        footprint: Footprint,
    ) -> Self {
        let (servers, tracking) = if read.cluster.is_some() {
            let cluster = Cluster::new(read);
            let maps = cluster.maps();
            let (hosts, max_age) = (cache.hosts, cache.max_age);
            let tracking =
                Tracking::start_cluster(read, maps, hosts, max_age, certificates, footprint);
            (Servers::Cluster(cluster), tracking)
        } else {
            let read_health = Health::new(read);
            let read_locator = Locator::new(read);
            let read_link = Link::new(read, read_locator.clone(), read_health.clone());
            let write_link = if write == read {
                read_link.clone()
            } else {
                Link::new(write, Locator::new(write), Health::new(write))
            };
            let (hosts, max_age) = (cache.hosts, cache.max_age);
            let tracking = Tracking::start(
                read,
                read_locator,
                read_health,
                hosts,
                max_age,
                certificates,
                footprint,
            );
            let servers = Servers::Single {
                read: read_link,
                write: write_link,
            };
            (servers, tracking)
        };
        if !write.prefix.is_empty() && write.prefix != read.prefix {
            warn!(server = %write, "prefix of the write driver ignored; the read driver's is used");
        }
        let passive = PassiveChecks::watch(servers.clone());
        Self {
            shared: Arc::new(Shared {
                servers,
                prefix: read.prefix.clone(),
                dead_ttl,
                passive,
                marks: DeadMarks::new(),
                tracking,
                flights: Flights::new(),
                write_failing: AtomicBool::new(false),
                reported: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// True while the proxy writes `dead:` sets itself (no fresh hchecker heartbeat).
    #[cfg(test)]
    pub(crate) fn passive_checks(&self) -> bool {
        self.shared.passive.is_on()
    }

    /// The lookup. With `ttls`, it also reads the PTTL of every key the answer depends on and
    /// returns the shortest, after which a cached answer must not be served. The last
    /// part says where the answer came from, for whether it may be cached as fresh (see
    /// [`servers`]).
    async fn fetch(
        &self,
        host: &str,
        ttls: bool,
    ) -> Result<(Option<Answer>, Option<Duration>, Source), LinkError> {
        let shared = &self.shared;
        let candidates = crate::host_keys::candidates(host);
        let keys: Vec<String> = candidates
            .iter()
            .map(|candidate| format!("{}{FRONTEND_PREFIX}{candidate}", shared.prefix))
            .collect();
        // Quirk kept from Hipache: the dead set of the request's host, even for a wildcard match.
        // Ours, for the same host as the dead set, so that it needs one command more.
        let state_key = format!("{}{STATE_PREFIX}{host}", shared.prefix);
        let dead_key = format!("{}{DEAD_PREFIX}{host}", shared.prefix);
        let Read {
            values: replies,
            redirected,
            nodes,
        } = (shared.servers)
            .lookup(&keys, &dead_key, &state_key, ttls)
            .await?;
        let answer = answer(&candidates, &replies, |key, entry, error| {
            if self.first_report(&format!("{FRONTEND_PREFIX}{key}"), entry) {
                warn!(frontend = %Escaped(key), entry, error = %error, "unusable backend url");
            }
        });
        let source = match redirected {
            true => Source::Redirected,
            false => Source::Nodes(nodes),
        };
        Ok((answer, replies.ttl, source))
    }

    fn first_report(&self, key: &str, entry: &str) -> bool {
        let mut reported = lock(&self.shared.reported);
        if reported.len() >= MAX_REPORTED {
            reported.clear();
        }
        reported.insert((key.to_owned(), entry.to_owned()))
    }

    /// Reads `host` from Redis and records the answer (fresh under `ticket`); while Redis is
    /// unreachable, answers with the last known one.
    async fn read(&self, host: &str, ticket: Option<Ticket>) -> Result<Option<Lookup>, RouteError> {
        let shared = &self.shared;
        let sent = Instant::now();
        match self.fetch(host, ticket.is_some()).await {
            Ok((answer, ttl, source)) => {
                metrics::count(Counter::LookupsRedis);
                let expires = ttl.map(|ttl| sent + ttl);
                let (ticket, nodes) = match source {
                    Source::Redirected => (None, Vec::new()),
                    Source::Nodes(nodes) => (ticket, nodes),
                };
                shared
                    .tracking
                    .store(ticket, &nodes, host, &answer, expires);
                Ok(self.to_lookup(host, answer))
            }
            Err(e) => {
                metrics::count(Counter::RedisErrors);
                // Reachability is told by the reconnect loop ([`reconnect::Health`]), once per
                // outage; other failures once per distinct error.
                if !e.is_connection() && self.first_report("lookup error", &e.to_string()) {
                    warn!(host = %Escaped(host), error = %e, "redis lookup failed");
                }
                match shared.tracking.last_known(host) {
                    Some(answer) => Ok(self.to_lookup(host, answer)),
                    None => Err(RouteError::Unavailable {
                        reason: e.to_string(),
                    }),
                }
            }
        }
    }

    fn to_lookup(&self, host: &str, answer: Option<Answer>) -> Option<Lookup> {
        let Answer {
            frontend,
            mut dead,
            held,
        } = answer?;
        self.shared.marks.add_to(host, &frontend, &mut dead);
        Some(Lookup {
            frontend,
            dead,
            held,
        })
    }
}

impl std::fmt::Debug for RedisRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRoutes")
            .field("prefix", &self.shared.prefix)
            .finish_non_exhaustive()
    }
}

impl RouteSource for RedisRoutes {
    async fn lookup(&self, host: &str) -> Result<Option<Lookup>, RouteError> {
        let shared = &self.shared;
        loop {
            let ticket = match shared.tracking.check(host) {
                Check::Hit(answer) => {
                    metrics::count(Counter::LookupsCache);
                    return Ok(self.to_lookup(host, answer));
                }
                Check::Miss(ticket) => ticket,
                // Without tracking nothing says whether a read in flight is still current.
                Check::Off => return self.read(host, None).await,
            };
            match shared.flights.join(host, ticket) {
                Join::Lead(leader) => {
                    let outcome = self.read(host, Some(ticket)).await;
                    leader.finish(outcome.clone());
                    return outcome;
                }
                Join::Follow(flight) => {
                    if let Some(outcome) = flight.outcome().await {
                        return outcome;
                    }
                }
            }
        }
    }

    fn mark_dead(&self, host: &str, frontend: &Frontend, backend: &Backend) {
        let shared = &self.shared;
        let passive = shared.passive.is_on();
        if passive {
            shared.marks.mark(host, backend, shared.dead_ttl);
        }
        let pipe = mark_pipeline(
            &shared.prefix,
            host,
            backend,
            frontend.backend_count,
            passive.then_some(shared.dead_ttl),
        );
        let shared = shared.clone();
        let host = host.to_owned();
        let key = format!("{}{DEAD_PREFIX}{host}", shared.prefix);
        tokio::spawn(async move {
            match shared.servers.write(&key, &pipe).await {
                Ok(_) => shared.write_failing.store(false, Ordering::Relaxed),
                Err(e) if !shared.write_failing.swap(true, Ordering::Relaxed) => {
                    warn!(host = %Escaped(&host), error = %e, "redis dead mark failed");
                }
                Err(e) => debug!(host = %Escaped(&host), error = %e, "redis dead mark failed"),
            }
        });
    }
}
