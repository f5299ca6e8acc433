//! The memory watchdog: a worker whose resident memory, beyond what its routes hold, reaches
//! `server.memoryLimit` retires.
//!
//! Hipache's answer to slow leaks, kept as a safety net: every `memoryCheckInterval` the worker
//! reads its RSS from `/proc/self/statm`; at or over the limit it stops accepting, drains and
//! exits with `exit::RETIRED`, and the master starts a fresh worker in its place.
//!
//! Two rules keep that net from turning into a loop of retirements, since a replacement starts
//! with what its predecessor would have been retired for:
//! - The routes' own bytes do not count: the route source's [`Footprint`] (the Redis source's
//!   host cache, bounded by `lruCache.size`; the file source's table) is left out of the RSS
//!   compared with the limit. A full cache is what the cache is for, not a leak.
//! - A worker already at or over the limit when it starts serving logs an error once and retires
//!   only once it has grown a [`margin`] beyond its start: a replacement would start just as big.

use std::time::Duration;

use crate::routes::Footprint;

/// Resident set size in bytes, or `None` where `/proc` cannot tell.
pub(crate) fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    Some(resident_pages * u64::try_from(page_size).ok()?)
}

/// How far a worker that started over the limit may grow before it retires: a quarter of the
/// limit, 8 MiB at least (what a few requests' buffers move a small limit by is no leak).
pub(crate) fn margin(limit: u64) -> u64 {
    (limit / 4).max(MIN_MARGIN)
}

const MIN_MARGIN: u64 = 8 << 20;

/// The memory checks of one worker (pure): what it compares, and from when it retires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watchdog {
    /// `server.memoryLimit`.
    limit: u64,
    /// Counted bytes at which it retires: the limit, or its size at start plus the margin when
    /// it started over the limit.
    retire_at: u64,
}

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Under its threshold.
    Fine,
    /// Retire: it grew to its threshold.
    Retire,
}

impl Watchdog {
    /// A worker whose counted memory (RSS minus its routes' footprint) was `counted` bytes when
    /// it started serving; also says whether it started over `limit`.
    pub(crate) fn start(limit: u64, counted: u64) -> (Self, bool) {
        let over = counted >= limit;
        let retire_at = match over {
            true => counted.saturating_add(margin(limit)),
            false => limit,
        };
        (Self { limit, retire_at }, over)
    }

    /// The verdict on `counted` bytes.
    pub(crate) fn check(&self, counted: u64) -> Verdict {
        match counted >= self.retire_at {
            true => Verdict::Retire,
            false => Verdict::Fine,
        }
    }

    /// The bytes it retires at.
    pub(crate) fn retire_at(&self) -> u64 {
        self.retire_at
    }
}

/// RSS minus what the routes hold: what the limit applies to (pure).
pub(crate) fn counted(rss: u64, routes: u64) -> u64 {
    rss.saturating_sub(routes)
}

/// What the check that retired a worker saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exceeded {
    pub(crate) rss_bytes: u64,
    pub(crate) routes_bytes: u64,
}

/// Resolves when the worker's RSS minus its routes' `footprint` reaches `limit` (or its start
/// size plus the margin, when it started over); checks every `interval`. The first read, when
/// polled first (the worker serving), is its start size.
pub(crate) async fn exceeded(limit: u64, interval: Duration, footprint: Footprint) -> Exceeded {
    let read = || {
        let rss = rss_bytes()?;
        let routes = footprint.bytes();
        Some((rss, routes))
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let (rss, routes) = read().unwrap_or_default();
    let (watchdog, over) = Watchdog::start(limit, counted(rss, routes));
    if over {
        tracing::error!(
            rss_bytes = rss,
            routes_bytes = routes,
            limit_bytes = limit,
            retire_at_bytes = watchdog.retire_at(),
            "worker over the memory limit from its start; kept until it grows past \
             retire_at_bytes (raise server.memoryLimit)"
        );
    }
    loop {
        tick.tick().await;
        let Some((rss, routes)) = read() else {
            continue;
        };
        // glibc's heap: what the C libraries linked in (aws-lc) allocate. mimalloc's share of
        // the RSS is the rest beside the routes: its release build counts no bytes in use.
        let malloc = super::trim::malloc_bytes();
        tracing::debug!(
            rss_bytes = rss,
            routes_bytes = routes,
            malloc_in_use_bytes = malloc.map(|m| m.in_use),
            malloc_free_bytes = malloc.map(|m| m.free),
            "memory checked"
        );
        if watchdog.check(counted(rss, routes)) == Verdict::Retire {
            return Exceeded {
                rss_bytes: rss,
                routes_bytes: routes,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn retires_at_or_over_the_limit() {
        let (watchdog, over) = Watchdog::start(200 * MIB, 20 * MIB);
        assert!(!over);
        assert_eq!(watchdog.check(199 * MIB), Verdict::Fine);
        assert_eq!(watchdog.check(200 * MIB), Verdict::Retire);
        assert_eq!(watchdog.check(300 * MIB), Verdict::Retire);
    }

    #[test]
    fn what_the_routes_hold_is_not_counted() {
        let (watchdog, _) = Watchdog::start(200 * MIB, 20 * MIB);
        // A worker at 240 MiB whose cache holds 95 MiB of it.
        assert_eq!(watchdog.check(counted(240 * MIB, 95 * MIB)), Verdict::Fine);
        assert_eq!(counted(MIB, 2 * MIB), 0);
    }

    #[test]
    fn a_worker_started_over_the_limit_retires_only_after_growing_a_margin() {
        let (watchdog, over) = Watchdog::start(200 * MIB, 290 * MIB);
        assert!(over);
        assert_eq!(watchdog.check(290 * MIB), Verdict::Fine);
        assert_eq!(watchdog.check(339 * MIB), Verdict::Fine);
        assert_eq!(watchdog.check(340 * MIB), Verdict::Retire);
        // Never less than 8 MiB.
        let (small, _) = Watchdog::start(MIB, 20 * MIB);
        assert_eq!(small.check(27 * MIB), Verdict::Fine);
        assert_eq!(small.check(28 * MIB), Verdict::Retire);
        // At the limit exactly is over it too.
        assert!(Watchdog::start(200 * MIB, 200 * MIB).1);
    }

    #[test]
    fn reads_its_own_rss() {
        let rss = rss_bytes().expect("linux /proc");
        assert!(rss > 1 << 20, "{rss}");
    }

    #[tokio::test(start_paused = true)]
    async fn fires_after_an_interval_when_it_grows_over_the_limit() {
        let rss = rss_bytes().expect("linux /proc");
        // Its routes hold all of its RSS at start, none of it a check later: it grew.
        let footprint = Footprint::default();
        footprint.set(usize::try_from(rss).expect("64-bit"));
        let limit = rss / 2;
        let check = tokio::spawn(exceeded(limit, Duration::from_secs(60), footprint.clone()));
        tokio::task::yield_now().await;
        footprint.set(0);
        let fired = tokio::time::timeout(Duration::from_secs(61), check).await;
        assert!(fired.is_ok());
    }
}
