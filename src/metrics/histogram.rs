//! Latency histograms with fixed buckets, so that workers' histograms add up bucket by bucket
//! and a recording is one comparison walk and two additions, no allocation.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Upper bounds of the buckets, in microseconds: Prometheus's default buckets with finer ones
/// below 5 ms, where a proxy's own latency lives; one more bucket counts everything above.
pub(crate) const BOUNDS_MICROS: [u64; 14] = [
    500, 1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];
/// Buckets, the unbounded one included.
pub(crate) const BUCKETS: usize = BOUNDS_MICROS.len() + 1;

/// Counts per bucket and the sum of what was recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Histogram {
    /// Recordings per bucket, not cumulative.
    pub(crate) buckets: [u64; BUCKETS],
    pub(crate) sum_micros: u64,
}

impl Histogram {
    pub(crate) fn record(&mut self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_MICROS
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(BOUNDS_MICROS.len());
        self.buckets[bucket] += 1;
        self.sum_micros = self.sum_micros.saturating_add(micros);
    }

    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    pub(crate) fn add(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum_micros = self.sum_micros.saturating_add(other.sum_micros);
    }

    /// What was recorded since `before` (an earlier state of the same histogram).
    pub(crate) fn since(&self, before: &Histogram) -> Histogram {
        let mut delta = Histogram::default();
        for (i, bucket) in delta.buckets.iter_mut().enumerate() {
            *bucket = self.buckets[i].saturating_sub(before.buckets[i]);
        }
        delta.sum_micros = self.sum_micros.saturating_sub(before.sum_micros);
        delta
    }

    /// Mean in milliseconds, 0 when empty.
    pub(crate) fn mean_ms(&self) -> f64 {
        match self.count() {
            0 => 0.0,
            n => self.sum_micros as f64 / n as f64 / 1000.0,
        }
    }

    /// The upper bound (ms) of the bucket holding the `q` quantile: an estimate at bucket
    /// resolution; `None` when empty or in the unbounded bucket.
    pub(crate) fn quantile_bound_ms(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = (q * count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            seen += bucket;
            if seen >= rank {
                return BOUNDS_MICROS.get(i).map(|b| *b as f64 / 1000.0);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_land_in_their_bucket_and_add_up() {
        let mut h = Histogram::default();
        h.record(Duration::from_millis(3));
        h.record(Duration::from_millis(5));
        h.record(Duration::from_millis(7));
        h.record(Duration::from_secs(60));
        assert_eq!(h.buckets[3], 2);
        assert_eq!(h.buckets[4], 1);
        assert_eq!(h.buckets[BUCKETS - 1], 1);
        assert_eq!(h.sum_micros, 60_015_000);
        let before = h;
        h.add(&before);
        assert_eq!(h.count(), 8);
        assert_eq!(h.since(&before), before);
        assert_eq!(before.quantile_bound_ms(0.5), Some(5.0));
        assert_eq!(before.quantile_bound_ms(1.0), None);
    }
}
