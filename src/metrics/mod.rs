//! Metrics: what each worker counts, and the names everything is shown under.
//!
//! Owns the recording (`recorder`: thread-local counters of the worker's one thread, written on
//! the request path with no lock and no system call), the fixed-bucket latency histograms, the
//! [`Snapshot`] a worker hands its master, and every metric name (`names`). It does not send
//! anything anywhere: the master collects snapshots and ships them (the admin module).
//!
//! Why the master collects, rather than each worker talking to statsd or a shared memory
//! segment: statsd gauges (open connections) cannot be summed by statsd when each worker sends
//! its own value; the status page wants per-frontend tables that do not fit a fixed shared
//! layout; and the request path should not even format a metric line. So a worker only adds to
//! its cells; the master asks each worker for a snapshot over a socket pair (when the admin page
//! is read, and once per statsd flush interval), sums them, keeps the last snapshot of workers
//! that exited so totals never go back, and sends statsd deltas from its own thread.

mod histogram;
pub(crate) mod names;
mod recorder;
mod snapshot;

pub(crate) use histogram::{Histogram, BOUNDS_MICROS};
pub(crate) use recorder::{
    add, answered, attempt_failed, connection_opened, count, enable, failed, redis_reach, response,
    snapshot,
};
#[cfg(test)]
pub(crate) use snapshot::DeadMark;
pub(crate) use snapshot::{BackendStats, CertificateExpiry, FrontendStats, Snapshot};
