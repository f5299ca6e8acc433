//! How long to wait before restarting a worker that crashed (pure).
//!
//! A worker that dies soon after starting is likely to die again: restarting it in a tight loop
//! burns CPU and floods the log. The delay doubles with each quick crash of the same slot, up to a
//! ceiling, and starts over once a worker of that slot has lived long enough.

use std::time::Duration;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(10);
/// A worker that lived this long is considered healthy: its slot's next crash restarts at once.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    quick_crashes: u32,
}

impl Backoff {
    /// Records a crash after `lived`, and returns how long to wait before the restart.
    pub(crate) fn after_crash(&mut self, lived: Duration) -> Duration {
        if lived >= HEALTHY_AFTER {
            self.quick_crashes = 0;
            return Duration::ZERO;
        }
        let delay = FIRST_DELAY
            .saturating_mul(1 << self.quick_crashes.min(16))
            .min(MAX_DELAY);
        self.quick_crashes = self.quick_crashes.saturating_add(1);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_crashes_back_off_exponentially_up_to_a_ceiling() {
        let mut backoff = Backoff::default();
        let quick = Duration::from_millis(50);
        let delays: Vec<_> = (0..10)
            .map(|_| backoff.after_crash(quick).as_millis())
            .collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
    }

    #[test]
    fn a_healthy_run_resets_the_delay() {
        let mut backoff = Backoff::default();
        backoff.after_crash(Duration::ZERO);
        backoff.after_crash(Duration::ZERO);
        assert_eq!(backoff.after_crash(Duration::from_secs(60)), Duration::ZERO);
        assert_eq!(
            backoff.after_crash(Duration::ZERO),
            Duration::from_millis(100)
        );
    }
}
