//! Bounded waits: every wait has a deadline and says what it waited for.

use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(20);

/// Polls `probe` until it returns `Some`, or panics after `timeout` naming `what`.
pub(crate) fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        pause(POLL);
    }
}

/// Polls `condition` until it holds, or panics after `timeout` naming `what`.
pub(crate) fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    wait_for(timeout, what, || condition().then_some(()));
}

/// The one blocking sleep of the harness: the poll interval of a bounded wait, never a verdict.
#[expect(
    clippy::disallowed_methods,
    reason = "synchronous poll interval of a bounded wait in the test harness"
)]
pub(crate) fn pause(interval: Duration) {
    std::thread::sleep(interval);
}
