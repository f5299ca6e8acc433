//! The `metrics` section (statsd): every [`FLUSH_INTERVAL`], the master sums the workers'
//! snapshots and sends what changed to statsd through cadence, every name behind the session
//! and a dot. Counters go as deltas (`|c`), open connections and tunnels as gauges (`|g`), and
//! latencies as timers (`|ms`): one line per histogram bucket that moved, at the bucket's upper
//! bound, with the sample rate `@1/n` standing for its `n` requests, so statsd's counts and
//! percentiles come out right at bucket resolution.
//!
//! Lines go through cadence's queuing sink (a bounded queue drained by its own thread into a
//! non-blocking UDP socket): the master never waits for statsd, and a line the queue or the
//! socket cannot take is dropped and counted (`statsd.dropped`, sent with the next flush).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cadence::prelude::*;
use cadence::{QueuingMetricSink, StatsdClient, UdpMetricSink};

use super::collect::Collector;
use super::frontends::{by_id, Labelled};
use crate::config::Metrics;
use crate::metrics::names::{self, COUNTERS};
use crate::metrics::{Histogram, Snapshot, BOUNDS_MICROS};

/// How often deltas are sent.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Lines the queue holds before dropping.
const QUEUE_LINES: usize = 16 * 1024;
/// Frontends sent under their own name; the rest as `frontend.other`.
const FRONTEND_NAMES: usize = 50;

/// Why statsd cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum StatsdError {
    /// `metrics.host` has no address.
    #[error("metrics: cannot resolve {host}:{port}")]
    Resolve {
        /// `metrics.host`.
        host: String,
        /// `metrics.port`.
        port: u16,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// No socket to send from.
    #[error("metrics: cannot open a udp socket")]
    Socket(#[source] std::io::Error),
}

/// A statsd client on the master's side, with what it last sent.
pub(crate) struct Statsd {
    client: StatsdClient,
    dropped: Arc<AtomicU64>,
    sent_dropped: u64,
    previous: Snapshot,
}

impl Statsd {
    pub(crate) fn new(config: &Metrics) -> Result<Self, StatsdError> {
        let (host, port) = (config.endpoint.host.as_str(), config.endpoint.port);
        let resolve = |source| StatsdError::Resolve {
            host: host.to_owned(),
            port,
            source,
        };
        let target = crate::config::first_address(host, port).map_err(resolve)?;
        let local: SocketAddr = match target {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).map_err(StatsdError::Socket)?;
        socket.set_nonblocking(true).map_err(StatsdError::Socket)?;
        let udp = UdpMetricSink::from(target, socket)
            .map_err(|e| StatsdError::Socket(std::io::Error::other(e)))?;
        let dropped = Arc::new(AtomicU64::new(0));
        let in_queue = dropped.clone();
        let sink = QueuingMetricSink::builder()
            .with_capacity(QUEUE_LINES)
            .with_error_handler(move |_| {
                in_queue.fetch_add(1, Ordering::Relaxed);
            })
            .build(udp);
        let client = StatsdClient::from_sink(&config.session, sink);
        Ok(Self {
            client,
            dropped,
            sent_dropped: 0,
            previous: Snapshot::default(),
        })
    }

    /// Sends a flush every [`FLUSH_INTERVAL`], forever.
    pub(crate) async fn run(mut self, collector: Rc<Collector>) {
        let mut tick = tokio::time::interval(FLUSH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let totals = collector.totals().await;
            self.flush(&totals.snapshot);
        }
    }

    /// Sends what changed since the previous flush.
    fn flush(&mut self, now: &Snapshot) {
        let before = std::mem::replace(&mut self.previous, now.clone());
        for (i, name) in COUNTERS.iter().enumerate() {
            let delta = now.counters[i].saturating_sub(before.counters[i]);
            if delta > 0 {
                self.count(name.statsd, delta);
            }
        }
        self.gauge(names::CONNECTIONS_OPEN, now.connections_open);
        self.gauge(names::TUNNELS_OPEN, now.tunnels_open);
        self.timer(names::LATENCY, &now.latency.since(&before.latency));
        self.timer(
            names::BACKEND_LATENCY,
            &now.backend_latency.since(&before.backend_latency),
        );
        let earlier = by_id(&before.frontends, usize::MAX);
        for Labelled { label, stats, .. } in by_id(&now.frontends, FRONTEND_NAMES) {
            let then = earlier.iter().find(|l| l.label == label);
            let requests =
                stats.requests - then.map_or(0, |l| l.stats.requests.min(stats.requests));
            let latency = match then {
                Some(then) => stats.latency.since(&then.stats.latency),
                None => stats.latency,
            };
            if requests == 0 {
                continue;
            }
            let prefix = format!("{}{}.", names::FRONTEND_PREFIX, safe_segment(&label));
            self.count(&format!("{prefix}{}", names::FRONTEND_REQUESTS), requests);
            self.timer(&format!("{prefix}{}", names::FRONTEND_LATENCY), &latency);
        }
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > self.sent_dropped {
            let delta = dropped - self.sent_dropped;
            self.sent_dropped = dropped;
            self.count(names::STATSD_DROPPED, delta);
        }
    }

    fn count(&self, key: &str, delta: u64) {
        let delta = i64::try_from(delta).unwrap_or(i64::MAX);
        self.sent(self.client.count_with_tags(key, delta).try_send().is_ok());
    }

    fn gauge(&self, key: &str, value: u64) {
        self.sent(self.client.gauge_with_tags(key, value).try_send().is_ok());
    }

    fn timer(&self, key: &str, delta: &Histogram) {
        for (i, count) in delta.buckets.iter().enumerate() {
            if *count == 0 {
                continue;
            }
            // Whole milliseconds (cadence's timers), rounded up: the bucket's "at most". The
            // unbounded bucket is sent at the last bound: "at least this slow".
            let bound = BOUNDS_MICROS[i.min(BOUNDS_MICROS.len() - 1)].div_ceil(1000);
            let line = self.client.time_with_tags(key, bound);
            let line = if *count > 1 {
                line.with_sampling_rate(1.0 / *count as f64)
            } else {
                line
            };
            self.sent(line.try_send().is_ok());
        }
    }

    fn sent(&self, ok: bool) {
        if !ok {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A frontend identifier as one segment of a statsd name: dots (and what the line format
/// uses: `:`, `|`, `@`, `#`, whitespace) become `_`.
pub(crate) fn safe_segment(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| match c {
            '.' | ':' | '|' | '@' | '#' | '/' => '_',
            c if c.is_whitespace() || c.is_control() => '_',
            c => c,
        })
        .collect();
    if safe.is_empty() {
        "_".to_owned()
    } else {
        safe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontend_ids_become_one_safe_segment() {
        assert_eq!(safe_segment("www.example.com"), "www_example_com");
        assert_eq!(safe_segment("a:b|c@d e"), "a_b_c_d_e");
        assert_eq!(safe_segment(""), "_");
    }
}
