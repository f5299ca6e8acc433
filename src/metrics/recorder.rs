//! The worker's side: counters in thread-local cells, written on the request path without a
//! lock, an allocation (but the first request of a frontend) or a system call. A worker is one
//! thread, so these are its counters; the master reads them as [`Snapshot`]s.
//!
//! Until [`enable`] is called (a worker whose config has `metrics` or `logging.web`), every
//! recording returns at its first branch.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::histogram::Histogram;
use super::names::{Counter, COUNTER_COUNT};
use super::snapshot::{class_of, BackendStats, DeadMark, FrontendStats, Snapshot};
use crate::frontend::Frontend;

/// Frontends a worker tracks one by one; later ones are summed into one entry.
pub(crate) const MAX_FRONTENDS: usize = 1_000;

struct Counts {
    enabled: Cell<bool>,
    counters: [Cell<u64>; COUNTER_COUNT],
    connections_open: Cell<u64>,
    /// Redis connections whose last attempt reached their server, and those whose last failed.
    redis_links_up: Cell<u64>,
    redis_links_down: Cell<u64>,
    dead_ttl: Cell<Duration>,
}

thread_local! {
    static COUNTS: Counts = const {
        Counts {
            enabled: Cell::new(false),
            counters: [const { Cell::new(0) }; COUNTER_COUNT],
            connections_open: Cell::new(0),
            redis_links_up: Cell::new(0),
            redis_links_down: Cell::new(0),
            dead_ttl: Cell::new(Duration::ZERO),
        }
    };
    static DETAIL: RefCell<Detail> = RefCell::new(Detail::default());
}

/// What needs more than a cell: histograms and the per-frontend table.
#[derive(Default)]
struct Detail {
    latency: Histogram,
    backend_latency: Histogram,
    frontends: HashMap<String, FrontendEntry>,
    /// Every frontend past [`MAX_FRONTENDS`].
    others: FrontendEntry,
}

#[derive(Default)]
struct FrontendEntry {
    /// The frontend as last looked up: its backends' URLs.
    frontend: Option<Arc<Frontend>>,
    /// The dead set of its last lookup.
    dead: Vec<usize>,
    requests: u64,
    responses: [u64; 5],
    latency: Histogram,
    /// Indexed by the backend's position in the list.
    backends: Vec<BackendEntry>,
}

#[derive(Default, Clone, Copy)]
struct BackendEntry {
    requests: u64,
    errors: u64,
    latency: Histogram,
    /// Marked dead by this worker until then.
    dead_until: Option<Instant>,
    /// Why and when it was last marked.
    dead_mark: Option<(Why, SystemTime)>,
}

/// What marked a backend dead, kept without an allocation.
#[derive(Clone, Copy)]
enum Why {
    /// A failed attempt's reason.
    Failure(&'static str),
    /// An answer's status.
    Status(u16),
}

impl BackendEntry {
    fn mark_dead(&mut self, why: Why) {
        self.dead_until = Some(Instant::now() + COUNTS.with(|c| c.dead_ttl.get()));
        self.dead_mark = Some((why, SystemTime::now()));
    }
}

/// Turns recording on for this worker; `dead_ttl` is how long a backend it marks stays dead.
pub(crate) fn enable(dead_ttl: Duration) {
    COUNTS.with(|c| {
        c.enabled.set(true);
        c.dead_ttl.set(dead_ttl);
    });
}

fn is_enabled() -> bool {
    COUNTS.with(|c| c.enabled.get())
}

/// Counts one.
pub(crate) fn count(counter: Counter) {
    add(counter, 1);
}

/// Counts `n`.
pub(crate) fn add(counter: Counter, n: u64) {
    COUNTS.with(|c| {
        if c.enabled.get() {
            let cell = &c.counters[counter as usize];
            cell.set(cell.get().wrapping_add(n));
        }
    });
}

/// A response of `status` reached (or is reaching) a client.
pub(crate) fn response(status: u16) {
    let counter = match class_of(status) {
        0 => Counter::Responses1xx,
        1 => Counter::Responses2xx,
        2 => Counter::Responses3xx,
        3 => Counter::Responses4xx,
        _ => Counter::Responses5xx,
    };
    count(counter);
}

/// An open client connection, counted while this lives.
pub(crate) struct OpenConnection(());

/// Counts a client connection as open until the returned guard drops.
pub(crate) fn connection_opened() -> OpenConnection {
    COUNTS.with(|c| c.connections_open.set(c.connections_open.get() + 1));
    OpenConnection(())
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        COUNTS.with(|c| {
            c.connections_open
                .set(c.connections_open.get().saturating_sub(1))
        });
    }
}

/// A Redis connection's reachability changed from `was` (`None`: not known yet, or the
/// connection is new) to `now` (`None`: the connection is gone). Counted like open connections,
/// whether or not recording is enabled, so the gauge is right from the first attempt.
pub(crate) fn redis_reach(was: Option<bool>, now: Option<bool>) {
    COUNTS.with(|c| {
        let cell = |up: bool| {
            if up {
                &c.redis_links_up
            } else {
                &c.redis_links_down
            }
        };
        if let Some(up) = was {
            cell(up).set(cell(up).get().saturating_sub(1));
        }
        if let Some(up) = now {
            cell(up).set(cell(up).get() + 1);
        }
    });
}

/// An attempt on backend `index` of `frontend` failed; `dead`: and marked it dead, for this
/// reason.
pub(crate) fn attempt_failed(frontend: &Arc<Frontend>, index: usize, dead: Option<&'static str>) {
    if !is_enabled() {
        return;
    }
    with_frontend(frontend, None, |entry| {
        if let Some(backend) = entry.backends.get_mut(index) {
            backend.requests += 1;
            backend.errors += 1;
            if let Some(reason) = dead {
                backend.mark_dead(Why::Failure(reason));
            }
        }
    });
}

/// Backend `index` of `frontend` answered `status` (counted as a response) after `backend_latency`, `latency` after the
/// request arrived; `dead`: the answer marks it dead (a 5xx by Hipache's rules).
pub(crate) fn answered(
    frontend: &Arc<Frontend>,
    dead_set: &[usize],
    index: usize,
    status: u16,
    dead: bool,
    latency: Duration,
    backend_latency: Duration,
) {
    if !is_enabled() {
        return;
    }
    response(status);
    DETAIL.with(|d| {
        let mut d = d.borrow_mut();
        d.latency.record(latency);
        d.backend_latency.record(backend_latency);
    });
    with_frontend(frontend, Some(dead_set), |entry| {
        entry.requests += 1;
        entry.responses[class_of(status)] += 1;
        entry.latency.record(latency);
        if let Some(backend) = entry.backends.get_mut(index) {
            backend.requests += 1;
            backend.errors += u64::from(dead);
            backend.latency.record(backend_latency);
            if dead {
                backend.mark_dead(Why::Status(status));
            }
        }
    });
}

/// No backend answered: the client gets `status` (an error page), or nothing (`None`) when
/// it went away.
pub(crate) fn failed(frontend: &Arc<Frontend>, dead_set: &[usize], status: Option<u16>) {
    if !is_enabled() {
        return;
    }
    with_frontend(frontend, Some(dead_set), |entry| {
        entry.requests += 1;
        if let Some(status) = status {
            entry.responses[class_of(status)] += 1;
        }
    });
}

fn with_frontend(
    frontend: &Arc<Frontend>,
    dead_set: Option<&[usize]>,
    update: impl FnOnce(&mut FrontendEntry),
) {
    DETAIL.with(|d| {
        let mut d = d.borrow_mut();
        let Detail {
            frontends, others, ..
        } = &mut *d;
        // One hash on the request path: the insert below runs once per frontend.
        if let Some(entry) = frontends.get_mut(frontend.key.as_str()) {
            return update(refreshed(entry, frontend, dead_set));
        }
        if frontends.len() >= MAX_FRONTENDS {
            return update(others);
        }
        let entry = frontends.entry(frontend.key.clone()).or_default();
        update(refreshed(entry, frontend, dead_set));
    });
}

/// `entry` with the backends and dead set of the frontend as this request saw it.
fn refreshed<'a>(
    entry: &'a mut FrontendEntry,
    frontend: &Arc<Frontend>,
    dead_set: Option<&[usize]>,
) -> &'a mut FrontendEntry {
    // Answers built from one cached list share its backends: a pointer says "unchanged".
    let changed = entry.frontend.as_ref().is_none_or(|seen| {
        !Arc::ptr_eq(seen, frontend) && !Arc::ptr_eq(&seen.backends, &frontend.backends)
    });
    if changed {
        entry.frontend = Some(frontend.clone());
        entry
            .backends
            .resize(frontend.backend_count, BackendEntry::default());
    }
    if let Some(dead_set) = dead_set {
        if entry.dead != dead_set {
            entry.dead = dead_set.to_vec();
        }
    }
    entry
}

/// Everything this worker counted; `tunnels_open` is read by the caller from its own count.
pub(crate) fn snapshot(tunnels_open: u64) -> Snapshot {
    let now = Instant::now();
    let mut snapshot = COUNTS.with(|c| Snapshot {
        counters: std::array::from_fn(|i| c.counters[i].get()),
        connections_open: c.connections_open.get(),
        tunnels_open,
        redis_links_up: c.redis_links_up.get(),
        redis_links_down: c.redis_links_down.get(),
        ..Snapshot::default()
    });
    DETAIL.with(|d| {
        let d = d.borrow();
        snapshot.latency = d.latency;
        snapshot.backend_latency = d.backend_latency;
        snapshot.frontends = d
            .frontends
            .iter()
            .map(|(key, entry)| entry.stats(key, now))
            .collect();
        if d.others.requests > 0 {
            snapshot.frontends.push(d.others.stats("", now));
        }
    });
    snapshot
}

impl FrontendEntry {
    fn stats(&self, key: &str, now: Instant) -> FrontendStats {
        let backends = self
            .frontend
            .iter()
            .flat_map(|frontend| frontend.backends.iter())
            .filter_map(|backend| {
                let counts = self.backends.get(backend.index)?;
                let marked = counts.dead_until.is_some_and(|until| until > now);
                let dead_mark = counts
                    .dead_mark
                    .filter(|_| marked)
                    .map(|(why, since)| DeadMark {
                        reason: match why {
                            Why::Failure(reason) => reason.to_owned(),
                            Why::Status(status) => status.to_string(),
                        },
                        since_unix_ms: since
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    });
                Some(BackendStats {
                    index: backend.index,
                    url: backend.url.to_string(),
                    requests: counts.requests,
                    errors: counts.errors,
                    dead: marked || self.dead.contains(&backend.index),
                    latency: counts.latency,
                    dead_mark,
                })
            })
            .collect();
        FrontendStats {
            key: key.to_owned(),
            id: self
                .frontend
                .as_ref()
                .map_or_else(String::new, |f| f.id.to_string()),
            requests: self.requests,
            responses: self.responses,
            latency: self.latency,
            backends,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frontend(key: &str) -> Arc<Frontend> {
        let list = [key.to_owned(), "http://127.0.0.1:1".to_owned()];
        Arc::new(Frontend::from_list(key, &list, |_, _| {}).unwrap())
    }

    // Each test runs on its own thread, so each has its own (thread-local) counters.
    #[test]
    fn nothing_is_counted_until_enabled() {
        count(Counter::Requests);
        answered(
            &frontend("a.test"),
            &[],
            0,
            200,
            false,
            Duration::ZERO,
            Duration::ZERO,
        );
        let before = snapshot(0);
        assert_eq!(before.counter(Counter::Requests), 0);
        assert!(before.frontends.is_empty());
        enable(Duration::from_secs(30));
        count(Counter::Requests);
        answered(
            &frontend("a.test"),
            &[],
            0,
            200,
            false,
            Duration::ZERO,
            Duration::ZERO,
        );
        let after = snapshot(0);
        assert_eq!(after.counter(Counter::Requests), 1);
        assert_eq!(after.counter(Counter::Responses2xx), 1);
        assert_eq!(after.frontends[0].backends[0].requests, 1);
    }

    #[test]
    fn a_backend_answer_is_timed_and_a_5xx_mark_names_its_status() {
        enable(Duration::from_secs(30));
        let f = frontend("a.test");
        answered(
            &f,
            &[],
            0,
            200,
            false,
            Duration::ZERO,
            Duration::from_millis(3),
        );
        answered(
            &f,
            &[],
            0,
            503,
            true,
            Duration::ZERO,
            Duration::from_millis(7),
        );
        let s = snapshot(0);
        let backend = &s.frontends[0].backends[0];
        assert_eq!(backend.latency.count(), 2);
        assert_eq!(backend.latency.sum_micros, 10_000);
        assert_eq!(backend.dead_mark.as_ref().unwrap().reason, "503");
    }

    #[test]
    fn a_dead_set_from_the_route_source_is_dead_without_a_mark() {
        enable(Duration::from_secs(30));
        let f = frontend("a.test");
        failed(&f, &[0], Some(502));
        let backend = &snapshot(0).frontends[0].backends[0];
        assert!(backend.dead);
        assert!(backend.dead_mark.is_none());
    }

    #[test]
    fn frontends_past_the_cap_are_summed_into_one_entry() {
        enable(Duration::from_secs(30));
        for i in 0..MAX_FRONTENDS + 5 {
            let f = frontend(&format!("h{i}.test"));
            answered(&f, &[], 0, 200, false, Duration::ZERO, Duration::ZERO);
        }
        let s = snapshot(0);
        assert_eq!(s.frontends.len(), MAX_FRONTENDS + 1);
        let others = s.frontends.iter().find(|f| f.key.is_empty()).unwrap();
        assert_eq!(others.requests, 5);
    }

    #[test]
    fn a_backend_marked_dead_shows_dead_until_its_ttl() {
        enable(Duration::from_secs(30));
        let f = frontend("a.test");
        attempt_failed(&f, 0, Some("connection refused"));
        failed(&f, &[], Some(502));
        let s = snapshot(0);
        let backend = &s.frontends[0].backends[0];
        assert!(backend.dead);
        let mark = backend.dead_mark.as_ref().unwrap();
        assert_eq!(mark.reason, "connection refused");
        assert!(mark.since_unix_ms > 0);
        assert_eq!((backend.requests, backend.errors), (1, 1));
        assert_eq!(s.frontends[0].errors(), 1);
    }
}
