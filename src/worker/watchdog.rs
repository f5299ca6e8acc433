//! The memory watchdog: a worker whose resident memory reaches `server.memoryLimit` retires.
//!
//! Hipache's answer to slow leaks, kept as a safety net: every `memoryCheckInterval` the worker
//! reads its RSS from `/proc/self/statm`; at or over the limit it stops accepting, drains and
//! exits with `exit::RETIRED`, and the master starts a fresh worker in its place.

use std::time::Duration;

/// Resident set size in bytes, or `None` where `/proc` cannot tell.
pub(crate) fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    Some(resident_pages * u64::try_from(page_size).ok()?)
}

/// Whether a worker using `rss` bytes must retire under `limit` (pure).
pub(crate) fn should_retire(rss: u64, limit: u64) -> bool {
    rss >= limit
}

/// Resolves with the RSS that crossed `limit`; checks every `interval`.
pub(crate) async fn exceeded(limit: u64, interval: Duration) -> u64 {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: skip it, a worker that just started has nothing to report.
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Some(rss) = rss_bytes() {
            if should_retire(rss, limit) {
                return rss;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retires_at_or_over_the_limit() {
        assert!(!should_retire(199 << 20, 200 << 20));
        assert!(should_retire(200 << 20, 200 << 20));
        assert!(should_retire(300 << 20, 200 << 20));
    }

    #[test]
    fn reads_its_own_rss() {
        let rss = rss_bytes().expect("linux /proc");
        assert!(rss > 1 << 20, "{rss}");
    }

    #[tokio::test(start_paused = true)]
    async fn fires_after_an_interval_when_over_the_limit() {
        let fired = tokio::time::timeout(
            Duration::from_secs(61),
            exceeded(1, Duration::from_secs(60)),
        );
        assert!(fired.await.is_ok());
    }
}
