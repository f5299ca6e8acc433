//! Local, in-process dead marks: `(host, backend index) → expiry`, shared by both route sources.
//!
//! A mark is what this worker learnt from a failed attempt; it hides the backend from this
//! worker's own next lookups for the dead-backend TTL even when the route source cannot (file) or
//! did not yet (Redis write in flight, hchecker active) record it. It does not talk to any other
//! process: the Redis source publishes marks itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most hosts with marks kept at once; past it, marks for new hosts are dropped (after a purge)
/// so a storm of failing hosts cannot grow memory without bound.
const MAX_HOSTS: usize = 10_000;

/// Marks recorded between two full purges of expired entries.
const PURGE_EVERY: u32 = 256;

/// Cheap-to-clone handle on a worker's dead marks.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeadMarks {
    inner: Arc<Mutex<Marks>>,
}

#[derive(Debug, Default)]
struct Marks {
    hosts: HashMap<String, Vec<(usize, Instant)>>,
    marks_since_purge: u32,
}

impl DeadMarks {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Flags backend `index` of `host` dead for `ttl` from now.
    pub(crate) fn mark(&self, host: &str, index: usize, ttl: Duration) {
        self.mark_at(host, index, ttl, Instant::now());
    }

    /// Indexes of `host` currently flagged dead, in marking order.
    pub(crate) fn dead_indexes(&self, host: &str) -> Vec<usize> {
        self.dead_indexes_at(host, Instant::now())
    }

    /// Adds the live marks of `host` to `dead`, skipping indexes already there.
    pub(crate) fn add_to(&self, host: &str, dead: &mut Vec<usize>) {
        for index in self.dead_indexes(host) {
            if !dead.contains(&index) {
                dead.push(index);
            }
        }
    }

    /// [`Self::mark`] with an explicit clock, for tests.
    pub(crate) fn mark_at(&self, host: &str, index: usize, ttl: Duration, now: Instant) {
        let until = now + ttl;
        let mut marks = self.lock();
        marks.marks_since_purge += 1;
        if marks.marks_since_purge >= PURGE_EVERY || marks.hosts.len() >= MAX_HOSTS {
            marks.purge(now);
        }
        if marks.hosts.len() >= MAX_HOSTS && !marks.hosts.contains_key(host) {
            return;
        }
        let entries = marks.hosts.entry(host.to_owned()).or_default();
        match entries.iter_mut().find(|(i, _)| *i == index) {
            Some(entry) => entry.1 = entry.1.max(until),
            None => entries.push((index, until)),
        }
    }

    /// [`Self::dead_indexes`] with an explicit clock, for tests. Drops the host's expired marks.
    pub(crate) fn dead_indexes_at(&self, host: &str, now: Instant) -> Vec<usize> {
        let mut marks = self.lock();
        if marks.hosts.is_empty() {
            return Vec::new();
        }
        let Some(entries) = marks.hosts.get_mut(host) else {
            return Vec::new();
        };
        entries.retain(|&(_, until)| until > now);
        let dead = entries.iter().map(|&(index, _)| index).collect();
        if entries.is_empty() {
            marks.hosts.remove(host);
        }
        dead
    }

    /// Number of hosts holding marks, expired or not (for tests of the memory bound).
    #[cfg(test)]
    fn host_count(&self) -> usize {
        self.lock().hosts.len()
    }

    fn lock(&self) -> MutexGuard<'_, Marks> {
        super::lock(&self.inner)
    }
}

impl Marks {
    fn purge(&mut self, now: Instant) {
        self.marks_since_purge = 0;
        self.hosts.retain(|_, entries| {
            entries.retain(|&(_, until)| until > now);
            !entries.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(30);

    #[test]
    fn mark_hides_backend_until_ttl_expires() {
        let marks = DeadMarks::new();
        let t0 = Instant::now();
        marks.mark_at("a.test", 1, TTL, t0);
        marks.mark_at("a.test", 0, TTL, t0 + Duration::from_secs(10));
        assert_eq!(marks.dead_indexes_at("a.test", t0), [1, 0]);
        assert!(marks.dead_indexes_at("b.test", t0).is_empty());
        assert_eq!(marks.dead_indexes_at("a.test", t0 + TTL), [0]);
        assert!(marks
            .dead_indexes_at("a.test", t0 + TTL + Duration::from_secs(10))
            .is_empty());
        assert_eq!(marks.host_count(), 0);
    }

    #[test]
    fn marking_again_extends_and_never_duplicates() {
        let marks = DeadMarks::new();
        let t0 = Instant::now();
        marks.mark_at("a.test", 2, TTL, t0);
        marks.mark_at("a.test", 2, TTL, t0 + Duration::from_secs(20));
        assert_eq!(marks.dead_indexes_at("a.test", t0 + TTL), [2]);
        let mut dead = vec![2, 5];
        marks.mark("a.test", 3, TTL);
        marks.add_to("a.test", &mut dead);
        assert_eq!(dead, [2, 5, 3]);
    }

    #[test]
    fn expired_marks_of_other_hosts_are_purged_and_hosts_are_bounded() {
        let marks = DeadMarks::new();
        let t0 = Instant::now();
        for n in 0..MAX_HOSTS {
            marks.mark_at(&format!("h{n}.test"), 0, TTL, t0);
        }
        assert_eq!(marks.host_count(), MAX_HOSTS);
        // Full of live marks: a new host is refused, a known one still updates.
        marks.mark_at("new.test", 0, TTL, t0);
        assert!(marks.dead_indexes_at("new.test", t0).is_empty());
        marks.mark_at("h1.test", 4, TTL, t0);
        assert_eq!(marks.dead_indexes_at("h1.test", t0), [0, 4]);
        // Once they expire, the next mark purges them all.
        marks.mark_at("new.test", 0, TTL, t0 + TTL);
        assert_eq!(marks.host_count(), 1);
        assert_eq!(marks.dead_indexes_at("new.test", t0 + TTL), [0]);
    }
}
