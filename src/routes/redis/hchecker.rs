//! Detecting an active health checker (hchecker) through its `hchecker_ping` heartbeat.
//!
//! While the heartbeat is at most 30 s old, the checker owns the `dead:` sets and the proxy stops
//! writing them (passive checks off); it still publishes on the `dead` channel. The key is read
//! on the read server (in a cluster, on the node owning it), without the driver prefix, at start and every 30 s, like Hipache.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{debug, info};

use super::servers::Servers;

/// The heartbeat key (never prefixed, as in Hipache).
pub(crate) const PING_KEY: &str = "hchecker_ping";
/// How often the key is read, and how old a heartbeat may be while the checker counts as alive.
const POLL_INTERVAL: Duration = Duration::from_secs(30);
const FRESH_SECS: f64 = 30.0;

/// Hipache's rule, `passive = (now - reply) > 30`: passive checks stay on without a heartbeat
/// or with a stale one. Deviation: a value that is not a number also keeps them on (in Hipache
/// the `NaN` comparison would turn them off), since garbage is no sign of a live checker.
pub(crate) fn passive_checks_on(heartbeat: Option<&str>, now_secs: u64) -> bool {
    match heartbeat.and_then(|text| text.trim().parse::<f64>().ok()) {
        Some(beat) if beat.is_finite() => now_secs as f64 - beat > FRESH_SECS,
        _ => true,
    }
}

/// Shared flag, true while the proxy writes dead sets itself.
#[derive(Clone)]
pub(crate) struct PassiveChecks {
    on: Arc<AtomicBool>,
}

impl PassiveChecks {
    /// Starts polling `hchecker_ping` on the read server (or its node in a cluster); passive
    /// checks are on until told otherwise.
    pub(crate) fn watch(servers: Servers) -> Self {
        let on = Arc::new(AtomicBool::new(true));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(poll(servers, Arc::downgrade(&on)));
        }
        Self { on }
    }

    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }
}

/// Reads the heartbeat until every handle is gone. A failed read keeps the current state
/// (Hipache would turn passive checks off on an error reply, by the same `NaN` accident).
async fn poll(servers: Servers, on: Weak<AtomicBool>) {
    loop {
        let reply = servers.get(PING_KEY).await;
        let Some(on) = on.upgrade() else { return };
        match reply {
            Ok(heartbeat) => {
                let passive = passive_checks_on(heartbeat.as_deref(), unix_now_secs());
                if on.swap(passive, Ordering::Relaxed) != passive {
                    if passive {
                        info!("enabling passive checks (active hchecker stopped)");
                    } else {
                        info!("disabling passive checks (active hchecker detected)");
                    }
                }
            }
            Err(e) => debug!(error = %e, "hchecker_ping read failed"),
        }
        drop(on);
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The clock `hchecker_ping` is written and read in: seconds since the Unix epoch.
pub(crate) fn unix_now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_checks_follow_heartbeat_age() {
        let now = 1_700_000_000;
        assert!(passive_checks_on(None, now));
        assert!(!passive_checks_on(Some("1700000000"), now));
        assert!(
            !passive_checks_on(Some("1699999970"), now),
            "exactly 30 s old is still fresh"
        );
        assert!(passive_checks_on(Some("1699999969"), now));
        assert!(!passive_checks_on(Some(" 1699999990.5 "), now));
        assert!(
            !passive_checks_on(Some("1700000100"), now),
            "a clock ahead counts as fresh"
        );
        assert!(passive_checks_on(Some("soon"), now));
        assert!(passive_checks_on(Some(""), now));
    }
}
