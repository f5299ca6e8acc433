//! What one worker has counted since it started, as it travels to the master, and the sum of
//! several of those. Counters only grow, so the master can add the last snapshot of a worker
//! that exited to what the live ones report and keep every total monotonic.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::histogram::Histogram;
use super::names::{Counter, COUNTER_COUNT};

/// Frontends a sum lists one by one (the workers' tables may hold different ones, and exited
/// workers' add up over time); later ones are only counted, together.
pub(crate) const MAX_SUMMED_FRONTENDS: usize = 10_000;

/// One worker's counts, or a sum of workers' counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    /// Indexed by [`Counter`].
    pub(crate) counters: [u64; COUNTER_COUNT],
    /// Gauges: what is open now.
    pub(crate) connections_open: u64,
    pub(crate) tunnels_open: u64,
    /// Redis connections answering, and not answering, at their last attempt.
    #[serde(default)]
    pub(crate) redis_links_up: u64,
    #[serde(default)]
    pub(crate) redis_links_down: u64,
    pub(crate) latency: Histogram,
    pub(crate) backend_latency: Histogram,
    pub(crate) frontends: Vec<FrontendStats>,
    /// Certificates served, and when each expires; of a sum, the earliest of each name and
    /// source among the live workers.
    #[serde(default)]
    pub(crate) certificates: Vec<CertificateExpiry>,
}

/// A certificate a worker serves, and its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CertificateExpiry {
    /// The name it serves (`example.com`, `*.example.com`): a `tls:` key's, or one of a
    /// file's names.
    pub(crate) name: String,
    /// Where it was read: `redis` or `file`.
    pub(crate) source: String,
    /// `notAfter`, in Unix seconds.
    pub(crate) not_after: i64,
}

/// One frontend as the workers saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct FrontendStats {
    /// The key that matched (`www.example.com`, `*.example.com`); empty for the entry that
    /// sums the frontends past a worker's cap.
    pub(crate) key: String,
    /// Its identifier (element 0 of the list).
    pub(crate) id: String,
    pub(crate) requests: u64,
    /// Answers by status class, 1xx to 5xx.
    pub(crate) responses: [u64; 5],
    pub(crate) latency: Histogram,
    pub(crate) backends: Vec<BackendStats>,
}

/// One backend of a frontend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BackendStats {
    /// Its position in the frontend list (what `dead:<host>` holds).
    pub(crate) index: usize,
    pub(crate) url: String,
    /// Attempts sent to it.
    pub(crate) requests: u64,
    /// Attempts that failed or answered as a dead backend does (5xx by Hipache's rules).
    pub(crate) errors: u64,
    /// Flagged dead when last seen (a lookup's dead set, or this worker's own mark).
    pub(crate) dead: bool,
    /// How long it took to answer (to the end of its answer's head), of the answers it gave.
    #[serde(default)]
    pub(crate) latency: Histogram,
    /// This worker's own dead mark while it holds: why and when. A backend `dead` without
    /// one was read dead from the route source (another node, or the health checker).
    #[serde(default)]
    pub(crate) dead_mark: Option<DeadMark>,
}

/// Why and since when a worker holds a backend dead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeadMark {
    /// The failure, as the access log and `X-Debug-Error` word it (`connection refused`), or
    /// the status of the answer that marked it (`500`).
    pub(crate) reason: String,
    /// When, in Unix milliseconds.
    pub(crate) since_unix_ms: u64,
}

impl Snapshot {
    pub(crate) fn counter(&self, counter: Counter) -> u64 {
        self.counters[counter as usize]
    }

    /// Adds `other` in; with `gauges` false, what is open in `other` is left out (it exited).
    pub(crate) fn add(&mut self, other: &Snapshot, gauges: bool) {
        for (mine, theirs) in self.counters.iter_mut().zip(other.counters) {
            *mine += theirs;
        }
        if gauges {
            self.connections_open += other.connections_open;
            self.tunnels_open += other.tunnels_open;
            self.redis_links_up += other.redis_links_up;
            self.redis_links_down += other.redis_links_down;
            for theirs in &other.certificates {
                match self
                    .certificates
                    .iter_mut()
                    .find(|c| (&c.name, &c.source) == (&theirs.name, &theirs.source))
                {
                    Some(mine) => mine.not_after = mine.not_after.min(theirs.not_after),
                    None => self.certificates.push(theirs.clone()),
                }
            }
        }
        self.latency.add(&other.latency);
        self.backend_latency.add(&other.backend_latency);
        let mut at: HashMap<String, usize> = (self.frontends.iter().enumerate())
            .map(|(i, f)| (f.key.clone(), i))
            .collect();
        for theirs in &other.frontends {
            if let Some(&i) = at.get(&theirs.key) {
                self.frontends[i].add(theirs, gauges);
            } else if self.frontends.len() < MAX_SUMMED_FRONTENDS {
                let mut added = theirs.clone();
                if !gauges {
                    added.backends.iter_mut().for_each(|b| {
                        b.dead = false;
                        b.dead_mark = None;
                    });
                }
                at.insert(added.key.clone(), self.frontends.len());
                self.frontends.push(added);
            } else {
                // Past the cap, frontends are only counted, together, like a worker's overflow.
                let i = *at.entry(String::new()).or_insert_with(|| {
                    self.frontends.push(FrontendStats::default());
                    self.frontends.len() - 1
                });
                self.frontends[i].add_counts(theirs);
            }
        }
    }
}

impl FrontendStats {
    /// Errors: the 5xx answers the clients got, error pages included.
    pub(crate) fn errors(&self) -> u64 {
        self.responses[4]
    }

    /// Adds `other`'s requests, responses and latencies, not its backends.
    pub(crate) fn add_counts(&mut self, other: &FrontendStats) {
        self.requests += other.requests;
        for (mine, theirs) in self.responses.iter_mut().zip(other.responses) {
            *mine += theirs;
        }
        self.latency.add(&other.latency);
    }

    fn add(&mut self, other: &FrontendStats, states: bool) {
        self.add_counts(other);
        if !other.id.is_empty() {
            self.id.clone_from(&other.id);
        }
        for theirs in &other.backends {
            match self.backends.iter_mut().find(|b| b.index == theirs.index) {
                Some(mine) => {
                    mine.requests += theirs.requests;
                    mine.errors += theirs.errors;
                    mine.latency.add(&theirs.latency);
                    mine.dead |= states && theirs.dead;
                    // Of several workers' marks, the latest says what happened last.
                    if let Some(mark) = theirs.dead_mark.as_ref().filter(|_| states) {
                        if mine
                            .dead_mark
                            .as_ref()
                            .is_none_or(|m| m.since_unix_ms < mark.since_unix_ms)
                        {
                            mine.dead_mark = Some(mark.clone());
                        }
                    }
                    if mine.url != theirs.url && states {
                        mine.url.clone_from(&theirs.url);
                    }
                }
                None => self.backends.push(BackendStats {
                    dead: states && theirs.dead,
                    dead_mark: theirs.dead_mark.clone().filter(|_| states),
                    ..theirs.clone()
                }),
            }
        }
        self.backends.sort_by_key(|b| b.index);
    }
}

/// The class index (0 for 1xx … 4 for 5xx) of a status; anything odd counts as 5xx.
pub(crate) fn class_of(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(requests: u64, dead: bool) -> Snapshot {
        let mut s = Snapshot {
            connections_open: 2,
            ..Snapshot::default()
        };
        s.counters[Counter::Requests as usize] = requests;
        s.frontends.push(FrontendStats {
            key: "a.test".into(),
            id: "a".into(),
            requests,
            responses: [0, requests, 0, 0, 0],
            latency: Histogram::default(),
            backends: vec![BackendStats {
                index: 0,
                url: "http://127.0.0.1:1".into(),
                requests,
                errors: 0,
                dead,
                latency: Histogram::default(),
                dead_mark: None,
            }],
        });
        s
    }

    #[test]
    fn sums_add_counters_and_keep_states_only_of_live_workers() {
        let mut total = Snapshot::default();
        total.add(&worker(3, false), true);
        total.add(&worker(4, true), true);
        total.add(&worker(5, true), false);
        assert_eq!(total.counter(Counter::Requests), 12);
        assert_eq!(total.connections_open, 4);
        assert_eq!(total.frontends.len(), 1);
        let frontend = &total.frontends[0];
        assert_eq!((frontend.requests, frontend.responses[1]), (12, 12));
        assert_eq!(frontend.backends[0].requests, 12);
        assert!(frontend.backends[0].dead);
        let mut exited_only = Snapshot::default();
        exited_only.add(&worker(5, true), false);
        assert!(!exited_only.frontends[0].backends[0].dead);
    }

    #[test]
    fn sums_list_at_most_the_cap_and_count_the_rest_together() {
        let mut many = Snapshot::default();
        for i in 0..MAX_SUMMED_FRONTENDS + 3 {
            many.frontends.push(FrontendStats {
                key: format!("h{i}.test"),
                requests: 1,
                ..FrontendStats::default()
            });
        }
        let mut total = Snapshot::default();
        total.add(&many, false);
        assert_eq!(total.frontends.len(), MAX_SUMMED_FRONTENDS + 1);
        let rest = total.frontends.iter().find(|f| f.key.is_empty()).unwrap();
        assert_eq!(rest.requests, 3);
    }

    #[test]
    fn backend_latencies_add_up_and_the_latest_dead_mark_wins() {
        let with = |millis: u64, since_unix_ms: u64, reason: &str| {
            let mut s = worker(1, true);
            let backend = &mut s.frontends[0].backends[0];
            backend
                .latency
                .record(std::time::Duration::from_millis(millis));
            backend.dead_mark = Some(DeadMark {
                reason: reason.into(),
                since_unix_ms,
            });
            s
        };
        let mut total = Snapshot::default();
        total.add(&with(3, 2_000, "500"), true);
        total.add(&with(7, 5_000, "connection refused"), true);
        total.add(&with(9, 1_000, "connect timeout"), true);
        total.add(&with(40, 9_000, "backend timeout"), false);
        let backend = &total.frontends[0].backends[0];
        assert_eq!(backend.latency.count(), 4);
        assert_eq!(backend.latency.sum_micros, 59_000);
        let mark = backend.dead_mark.as_ref().unwrap();
        assert_eq!(
            (mark.reason.as_str(), mark.since_unix_ms),
            ("connection refused", 5_000)
        );
    }

    #[test]
    fn status_classes() {
        assert_eq!(class_of(101), 0);
        assert_eq!(class_of(200), 1);
        assert_eq!(class_of(404), 3);
        assert_eq!(class_of(599), 4);
        assert_eq!(class_of(42), 4);
    }
}
