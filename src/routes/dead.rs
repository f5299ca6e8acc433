//! Local, in-process dead marks: `(host, backend index) → expiry`, shared by both route sources.
//!
//! A mark is what this worker learnt from a failed attempt; it hides the backend from this
//! worker's own next lookups for the dead-backend TTL even when the route source cannot (file) or
//! did not yet (Redis write in flight, hchecker active) record it. It does not talk to any other
//! process: the Redis source publishes marks itself.
//!
//! A mark remembers the backend's URL beside its index and only counts while the frontend still
//! has that URL at that index: when a backend leaves the list (`hipache backend rm`), the one that
//! takes its index is not hidden for a failure that was not its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Backend, Frontend};

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
    hosts: HashMap<String, Vec<Mark>>,
    marks_since_purge: u32,
}

/// One dead backend of a host, until when.
#[derive(Debug)]
struct Mark {
    index: usize,
    /// The backend's normalised URL (`BackendUrl::as_str`).
    url: String,
    until: Instant,
}

impl DeadMarks {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Flags `backend` of `host` dead for `ttl` from now.
    pub(crate) fn mark(&self, host: &str, backend: &Backend, ttl: Duration) {
        self.mark_at(host, backend, ttl, Instant::now());
    }

    /// Adds to `dead` the indexes of `host` flagged dead that `frontend` still has at the same
    /// index, skipping indexes already there.
    pub(crate) fn add_to(&self, host: &str, frontend: &Frontend, dead: &mut Vec<usize>) {
        self.add_to_at(host, frontend, dead, Instant::now());
    }

    /// [`Self::mark`] with an explicit clock, for tests.
    pub(crate) fn mark_at(&self, host: &str, backend: &Backend, ttl: Duration, now: Instant) {
        let until = now + ttl;
        let mut marks = self.lock();
        marks.marks_since_purge += 1;
        if marks.marks_since_purge >= PURGE_EVERY || marks.hosts.len() >= MAX_HOSTS {
            marks.purge(now);
        }
        if marks.hosts.len() >= MAX_HOSTS && !marks.hosts.contains_key(host) {
            return;
        }
        let (index, url) = (backend.index, backend.url.as_str());
        let entries = marks.hosts.entry(host.to_owned()).or_default();
        match entries
            .iter_mut()
            .find(|m| m.index == index && m.url == url)
        {
            Some(mark) => mark.until = mark.until.max(until),
            None => entries.push(Mark {
                index,
                url: url.to_owned(),
                until,
            }),
        }
    }

    /// [`Self::add_to`] with an explicit clock, for tests. Drops the host's expired marks.
    pub(crate) fn add_to_at(
        &self,
        host: &str,
        frontend: &Frontend,
        dead: &mut Vec<usize>,
        now: Instant,
    ) {
        let mut marks = self.lock();
        if marks.hosts.is_empty() {
            return;
        }
        let Some(entries) = marks.hosts.get_mut(host) else {
            return;
        };
        entries.retain(|mark| mark.until > now);
        for mark in entries.iter() {
            let same_backend = frontend
                .backends
                .iter()
                .any(|b| b.index == mark.index && b.url.as_str() == mark.url);
            if same_backend && !dead.contains(&mark.index) {
                dead.push(mark.index);
            }
        }
        if entries.is_empty() {
            marks.hosts.remove(host);
        }
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
            entries.retain(|mark| mark.until > now);
            !entries.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::BackendUrl;

    const TTL: Duration = Duration::from_secs(30);

    fn frontend(urls: &[&str]) -> Frontend {
        let list: Vec<String> = std::iter::once("id")
            .chain(urls.iter().copied())
            .map(String::from)
            .collect();
        Frontend::from_list("h", &list, |_, _| {}).unwrap()
    }

    fn backend(index: usize, url: &str) -> Backend {
        Backend {
            index,
            url: BackendUrl::parse(url).unwrap(),
        }
    }

    /// The live marks of `host` against a frontend whose backend `i` is `http://h:<i>`.
    fn dead_at(marks: &DeadMarks, host: &str, now: Instant) -> Vec<usize> {
        let urls: Vec<String> = (0..8).map(|i| format!("http://h:{i}")).collect();
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        let mut dead = Vec::new();
        marks.add_to_at(host, &frontend(&urls), &mut dead, now);
        dead
    }

    fn mark_at(marks: &DeadMarks, host: &str, index: usize, now: Instant) {
        marks.mark_at(
            host,
            &backend(index, &format!("http://h:{index}")),
            TTL,
            now,
        );
    }

    #[test]
    fn mark_hides_backend_until_ttl_expires() {
        let marks = DeadMarks::new();
        let t0 = Instant::now();
        mark_at(&marks, "a.test", 1, t0);
        mark_at(&marks, "a.test", 0, t0 + Duration::from_secs(10));
        assert_eq!(dead_at(&marks, "a.test", t0), [1, 0]);
        assert!(dead_at(&marks, "b.test", t0).is_empty());
        assert_eq!(dead_at(&marks, "a.test", t0 + TTL), [0]);
        assert!(dead_at(&marks, "a.test", t0 + TTL + Duration::from_secs(10)).is_empty());
        assert_eq!(marks.host_count(), 0);
    }

    #[test]
    fn marking_again_extends_and_never_duplicates() {
        let marks = DeadMarks::new();
        let t0 = Instant::now();
        mark_at(&marks, "a.test", 2, t0);
        mark_at(&marks, "a.test", 2, t0 + Duration::from_secs(20));
        assert_eq!(dead_at(&marks, "a.test", t0 + TTL), [2]);
        let mut dead = vec![2, 5];
        marks.mark("a.test", &backend(3, "http://h:3"), TTL);
        let f = frontend(&["http://h:0", "http://h:1", "http://h:2", "http://h:3"]);
        marks.add_to("a.test", &f, &mut dead);
        assert_eq!(dead, [2, 5, 3]);
    }

    #[test]
    fn a_mark_does_not_follow_its_index_to_another_backend() {
        let marks = DeadMarks::new();
        let t0 = Instant::now();
        marks.mark_at("a.test", &backend(0, "http://gone:1"), TTL, t0);
        marks.mark_at("a.test", &backend(2, "http://c:3"), TTL, t0);
        // `gone` left the list: b took index 0, c moved to 1.
        let after = frontend(&["http://b:2", "http://c:3"]);
        let mut dead = Vec::new();
        marks.add_to_at("a.test", &after, &mut dead, t0);
        assert!(dead.is_empty(), "{dead:?}");
        // The same URL in another spelling is the same backend.
        let before = frontend(&["http://GONE:1/", "http://b:2", "http://c:3"]);
        marks.add_to_at("a.test", &before, &mut dead, t0);
        assert_eq!(dead, [0, 2]);
    }

    #[test]
    fn expired_marks_of_other_hosts_are_purged_and_hosts_are_bounded() {
        let marks = DeadMarks::new();
        let t0 = Instant::now();
        for n in 0..MAX_HOSTS {
            mark_at(&marks, &format!("h{n}.test"), 0, t0);
        }
        assert_eq!(marks.host_count(), MAX_HOSTS);
        // Full of live marks: a new host is refused, a known one still updates.
        mark_at(&marks, "new.test", 0, t0);
        assert!(dead_at(&marks, "new.test", t0).is_empty());
        mark_at(&marks, "h1.test", 4, t0);
        assert_eq!(dead_at(&marks, "h1.test", t0), [0, 4]);
        // Once they expire, the next mark purges them all.
        mark_at(&marks, "new.test", 0, t0 + TTL);
        assert_eq!(marks.host_count(), 1);
        assert_eq!(dead_at(&marks, "new.test", t0 + TTL), [0]);
    }
}
