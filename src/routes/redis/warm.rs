//! A new worker's cache, warmed before its clients ask: the hosts a warm sibling has cached
//! (handed over by the master: `supervision::WARM`) are looked up in the background, a batch of
//! concurrent lookups at a time, which share the one connection (pipelined on it, one round trip
//! per batch) and join any request's lookup of the same host in flight ([`super::flight`]).
//!
//! Only once tracking is on: each answer is then stored under a ticket like any lookup's, so a
//! preloaded answer follows the same invalidation rules as one a client caused, and none can be
//! served stale. While tracking is off (Redis unreachable or too old), reads would not be
//! cached: nothing is preloaded.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tracing::info;

use super::super::RouteSource as _;
use super::RedisRoutes;

/// Lookups in flight at once: enough to fill a round trip, few enough that a client's request
/// never queues behind many of them.
const BATCH: usize = 64;
/// Longest the preload waits for tracking to come up before giving up.
const TRACKING_WAIT: Duration = Duration::from_secs(10);
/// How often it looks whether tracking is up meanwhile.
const TRACKING_POLL: Duration = Duration::from_millis(20);

impl RedisRoutes {
    /// Up to `limit` hosts this worker's cache holds, the most recently used first.
    pub(crate) fn recent_hosts(&self, limit: usize) -> Vec<String> {
        self.shared.tracking.hosts(limit)
    }

    /// Looks `hosts` up so that their answers are cached before a client asks (module doc).
    pub(crate) async fn preload(&self, hosts: Vec<String>) {
        let started = Instant::now();
        let deadline = started + TRACKING_WAIT;
        while !self.shared.tracking.is_on() {
            if Instant::now() >= deadline {
                info!(
                    hosts = hosts.len(),
                    "cache not preloaded: redis tracking is off"
                );
                return;
            }
            tokio::time::sleep(TRACKING_POLL).await;
        }
        let mut answered = 0;
        for batch in hosts.chunks(BATCH) {
            let mut lookups = JoinSet::new();
            for host in batch {
                let (routes, host) = (self.clone(), host.clone());
                lookups.spawn(async move { routes.lookup(&host).await.is_ok() });
            }
            while let Some(done) = lookups.join_next().await {
                answered += usize::from(done.unwrap_or(false));
            }
        }
        info!(
            hosts = hosts.len(),
            answered,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "cache preloaded"
        );
    }
}
