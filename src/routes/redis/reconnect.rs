//! The one reconnect loop of the Redis source, run by the command link ([`super::link`]) and the
//! tracking connection ([`super::tracking`]): connect, serve until the connection is lost, probe
//! again, back off only when the outage lasts. It also owns what the operator hears about a
//! server's reachability: one warning when it cannot be reached (at start or after an outage
//! begins) and one line when it answers again, naming the server, never once per retry.
//!
//! Promptness: a route change written right after Redis comes back must reach the next request,
//! and while a connection is down the source serves its last known answers. So the first
//! [`PROMPT_WINDOW`] of an outage is probed every [`PROBE_INTERVAL`] (a refused connect costs
//! microseconds), and only a longer outage backs off, to at most [`MAX_BACKOFF`]. A session may also
//! be kicked by a request that found it down (see [`super::link`]): the attempt then comes at
//! once, so the first request after a restart already reads the new server.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{sleep, sleep_until, Instant};
use tracing::{debug, info, warn};

use crate::metrics::{self, names::Counter};
use crate::routes::lock;

/// Delay between connection attempts during the first [`PROMPT_WINDOW`] of an outage.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// How long an outage is probed every [`PROBE_INTERVAL`] before backing off.
pub(crate) const PROMPT_WINDOW: Duration = Duration::from_secs(10);
/// Longest delay between attempts, however long the outage.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Shortest delay between attempts, however many requests kick: a bound on the connect rate
/// against a server that refuses, paid only by requests that would otherwise serve stale routes.
const MIN_INTERVAL: Duration = Duration::from_millis(5);

/// How one connection attempt went.
pub(crate) enum Attempt<C> {
    Connected(C),
    /// The server answered but will not serve this use (e.g. too old for tracking). Not an
    /// outage: the session logs why, and the next attempt waits `retry_after`.
    Refused {
        retry_after: Duration,
    },
    /// The server could not be reached or did not complete the handshake.
    Failed(String),
}

/// Why [`Session::serve`] returned.
pub(crate) enum Ended {
    /// The connection broke: reconnect at once.
    Lost,
    /// Every handle on the session's state is gone: stop.
    Gone,
}

/// One kind of connection the loop keeps up (two today: the command link and tracking).
pub(crate) trait Session {
    type Conn;
    fn connect(&mut self) -> impl Future<Output = Attempt<Self::Conn>> + Send;
    /// Uses `conn` until it breaks or nobody needs it any more.
    fn serve(&mut self, conn: Self::Conn) -> impl Future<Output = Ended> + Send;
    /// True once every handle is dropped, so the loop ends instead of retrying forever.
    fn is_gone(&self) -> bool;
    /// Resolves when a user asks for an attempt before the backoff is over.
    fn kicked(&self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
}

/// Keeps `session` connected until it is gone, reporting reachability to `health`.
pub(crate) async fn keep<S: Session>(mut session: S, health: Health) {
    let mut backoff = Backoff::default();
    // This session's connection broke: its next one is a reconnect. A first connection is not,
    // even when a sibling session to the same server connected first, or an attempt at start
    // failed.
    let mut lost = false;
    loop {
        let delay = match session.connect().await {
            Attempt::Connected(conn) => {
                health.reached(lost);
                backoff.reset();
                match session.serve(conn).await {
                    Ended::Gone => return,
                    Ended::Lost => {
                        lost = true;
                        continue;
                    }
                }
            }
            Attempt::Refused { retry_after } => retry_after,
            Attempt::Failed(why) => {
                health.failed(&why);
                backoff.next(Instant::now())
            }
        };
        if session.is_gone() {
            return;
        }
        let failed_at = Instant::now();
        tokio::select! {
            () = sleep(delay) => {}
            () = session.kicked() => sleep_until(failed_at + MIN_INTERVAL).await,
        }
        if session.is_gone() {
            return;
        }
    }
}

/// The delays between failed attempts (pure): every [`PROBE_INTERVAL`] for the first
/// [`PROMPT_WINDOW`] of an outage, then doubling up to [`MAX_BACKOFF`].
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    outage_since: Option<Instant>,
    last: Duration,
}

impl Backoff {
    /// The delay before the next attempt, after one failed at `now`.
    pub(crate) fn next(&mut self, now: Instant) -> Duration {
        let since = *self.outage_since.get_or_insert(now);
        if now.duration_since(since) < PROMPT_WINDOW {
            self.last = PROBE_INTERVAL;
        } else {
            self.last = (self.last * 2).clamp(PROBE_INTERVAL, MAX_BACKOFF);
        }
        self.last
    }

    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }
}

/// What a worker knows about one server's reachability, shared by every connection to it, so an
/// outage is told once however many connections notice it.
#[derive(Clone)]
pub(crate) struct Health {
    inner: Arc<HealthInner>,
}

struct HealthInner {
    server: String,
    reach: Mutex<Reach>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// No attempt finished yet.
    Unknown,
    Up,
    Down,
}

impl Reach {
    /// `None` while not known.
    fn up(self) -> Option<bool> {
        match self {
            Reach::Unknown => None,
            Reach::Up => Some(true),
            Reach::Down => Some(false),
        }
    }
}

impl Drop for HealthInner {
    /// A connection dropped (a cluster node gone, a reload) no longer counts.
    fn drop(&mut self) {
        let reach = *self
            .reach
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        metrics::redis_reach(reach.up(), None);
    }
}

impl Health {
    /// `server` names the server in every line (its URL, password censored).
    pub(crate) fn new(server: &impl fmt::Display) -> Self {
        Self {
            inner: Arc::new(HealthInner {
                server: server.to_string(),
                reach: Mutex::new(Reach::Unknown),
            }),
        }
    }

    /// A connection attempt succeeded; `after_loss` when it replaces a connection that broke
    /// (only those count in `hipache_redis_reconnects_total`).
    pub(crate) fn reached(&self, after_loss: bool) {
        let server = &self.inner.server;
        if after_loss {
            metrics::count(Counter::RedisReconnects);
        }
        let was = std::mem::replace(&mut *lock(&self.inner.reach), Reach::Up);
        metrics::redis_reach(was.up(), Some(true));
        match was {
            Reach::Unknown => info!(server = %server, "redis connected"),
            Reach::Down => info!(server = %server, "redis reachable again"),
            Reach::Up if after_loss => debug!(server = %server, "redis reconnected"),
            Reach::Up => {}
        }
    }

    /// A connection attempt failed because of `why`.
    pub(crate) fn failed(&self, why: &str) {
        let server = &self.inner.server;
        let was = std::mem::replace(&mut *lock(&self.inner.reach), Reach::Down);
        metrics::redis_reach(was.up(), Some(false));
        match was {
            Reach::Unknown => warn!(
                server = %server,
                error = why,
                "redis unreachable at start; lookups fail until it answers"
            ),
            Reach::Up => warn!(
                server = %server,
                error = why,
                "redis unreachable; serving last known routes"
            ),
            Reach::Down => debug!(server = %server, error = why, "redis still unreachable"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_is_probed_promptly_then_backs_off_and_resets() {
        let start = Instant::now();
        let mut backoff = Backoff::default();
        for ms in [0, 50, 100, 9_950] {
            let at = start + Duration::from_millis(ms);
            assert_eq!(backoff.next(at), PROBE_INTERVAL, "at {ms} ms");
        }
        let late = start + PROMPT_WINDOW;
        let delays: Vec<u128> = (0..6).map(|_| backoff.next(late).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1_000, 1_000]);
        backoff.reset();
        let later = late + Duration::from_secs(60);
        assert_eq!(backoff.next(later), PROBE_INTERVAL, "a new outage");
        assert_eq!(backoff.next(later + PROMPT_WINDOW / 2), PROBE_INTERVAL);
    }
}
