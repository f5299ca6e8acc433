//! The built-in active health checker (`healthCheck`), one per node: a task of the master, not
//! of the workers, in the role Hipache left to `hchecker`.
//!
//! Each interval it lists the frontends in Redis (`store`), probes every backend of each with
//! `GET <path>` and `Host: <frontend>` (`probe`), and counts the results per backend (`tally`):
//! a backend failing `unhealthy` probes in a row is marked dead exactly as the proxy marks one,
//! and its mark is removed after `healthy` good probes. A round fits its interval: each probe
//! gets at most the interval ([`Plan`]), and the probes start spread over what is left of it, at
//! most [`MAX_CONCURRENT_PROBES`] at once, so even a fleet of hanging backends is probed within
//! the interval; a fleet too large for that stretches the round, and the marks then live longer
//! by as much, so a mark always outlives the round that renews it. Meanwhile it keeps `hchecker_ping` fresh, so the
//! workers stop writing dead sets themselves, as they do for Hipache's own checker. It owns no
//! request and never touches the workers: they see its marks through Redis.

mod probe;
mod store;
mod tally;

use std::cell::{Cell, OnceCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{sleep_until, Instant};
use tracing::{info, warn};

use crate::config::{BackendTrust, Config, Driver, HealthCheck, RedisUrl};
use crate::escape::Escaped;
use crate::routes::redis::unix_now_secs;
use crate::tls::backend_trust as tls_client;
use probe::ProbeFailure;
use store::{Server, Target};
use tally::{Tally, Verdict};

/// Probes in flight at once, whatever the number of backends: enough for a thousand hanging
/// backends probed within one interval, bounded so that the master's open files are too.
const MAX_CONCURRENT_PROBES: usize = 1024;
/// How often `hchecker_ping` is written: well inside the 30 s the workers allow it.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// The running checker; dropping it stops it.
pub(crate) struct Checker {
    settings: Settings,
    task: JoinHandle<()>,
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the checker needs from the configuration.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    check: HealthCheck,
    read: RedisUrl,
    write: RedisUrl,
    /// How long a mark lives: `deadBackendTTL`, or longer when the interval is, so that a
    /// backend still failing is not revived between two probes.
    ttl: Duration,
    /// How `https://` backends are trusted: as by the workers.
    backend_trust: BackendTrust,
}

impl Settings {
    fn from_config(config: &Config) -> Option<Self> {
        let check = config.health_check.clone()?;
        // `build` refuses `healthCheck` with the file driver.
        let Driver::Redis { read, write } = &config.driver else {
            return None;
        };
        // As in the workers (and Hipache), the read URL's prefix is used on both servers.
        let mut write = write.clone();
        write.prefix.clone_from(&read.prefix);
        let ttl = config
            .server
            .dead_backend_ttl
            .max(check.interval * 2 + check.timeout);
        Some(Self {
            check,
            read: read.clone(),
            write,
            ttl,
            backend_trust: config.server.backend_trust.clone(),
        })
    }
}

/// Starts, restarts or stops the checker so that it follows `config`. Must run inside a
/// tokio `LocalSet` (the master's).
pub(crate) fn follow(current: &mut Option<Checker>, config: &Config) {
    let settings = Settings::from_config(config);
    if current.as_ref().map(|c| &c.settings) == settings.as_ref() {
        return;
    }
    *current = settings.map(|settings| {
        info!(
            path = %settings.check.path,
            interval_secs = settings.check.interval.as_secs(),
            "health checker started"
        );
        Checker {
            task: tokio::task::spawn_local(run(settings.clone())),
            settings,
        }
    });
}

async fn run(settings: Settings) {
    let working = Cell::new(false);
    tokio::join!(
        heartbeat(Server::new(settings.write.clone()), &working),
        check(&settings, &working)
    );
}

/// Writes the heartbeat while the checker is checking, so that workers only step aside for a
/// checker that actually sees Redis.
async fn heartbeat(mut server: Server, working: &Cell<bool>) {
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    loop {
        tick.tick().await;
        if working.get() {
            server.heartbeat(unix_now_secs()).await;
        }
    }
}

/// How one round of `targets` probes is run (pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    /// Each probe's timeout: the configured one, but never past the interval.
    timeout: Duration,
    /// Between two probe starts: the probes start over the interval less one timeout, so the
    /// last one is over by the end of the interval.
    spacing: Duration,
    /// How long the round takes at most: the interval, unless more probes hang than
    /// [`MAX_CONCURRENT_PROBES`] can hold within it.
    span: Duration,
    /// How long a mark written in this round lives: past this round and the next one's probe
    /// of the same backend.
    ttl: Duration,
}

impl Plan {
    fn new(targets: usize, check: &HealthCheck, ttl: Duration) -> Self {
        let timeout = check.timeout.min(check.interval);
        let window = check.interval - timeout;
        let spacing = window / u32::try_from(targets.max(1)).unwrap_or(u32::MAX);
        // Waves of probes that all hang until their timeout, if the cap is what holds them.
        let waves = targets.div_ceil(MAX_CONCURRENT_PROBES);
        let held = timeout * u32::try_from(waves).unwrap_or(u32::MAX);
        let span = check.interval.max(held);
        Self {
            timeout,
            spacing,
            span,
            ttl: ttl.max(span * 2 + timeout),
        }
    }
}

/// The rounds: list, probe (spread and bounded), record, write what changed.
async fn check(settings: &Settings, working: &Cell<bool>) {
    let mut read = Server::new(settings.read.clone());
    let mut write = Server::new(settings.write.clone());
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_PROBES));
    let mut tallies: HashMap<(String, usize, String), Tally> = HashMap::new();
    let check = &settings.check;
    // Built at the first `https://` backend, as in the workers' pools.
    let tls = OnceCell::new();
    loop {
        let round = Instant::now();
        let Some(targets) = read.targets().await else {
            working.set(false);
            sleep_until(round + check.interval).await;
            continue;
        };
        if !working.replace(true) {
            write.heartbeat(unix_now_secs()).await;
        }
        let plan = Plan::new(targets.len(), check, settings.ttl);
        let mut probes = JoinSet::new();
        for (i, target) in targets.iter().enumerate() {
            let start = round + plan.spacing * u32::try_from(i).unwrap_or(u32::MAX);
            loop {
                tokio::select! {
                    () = sleep_until(start) => break,
                    Some(Ok((i, outcome))) = probes.join_next() => {
                        record(&mut tallies, &targets[i], outcome, check, plan.ttl, &mut write).await;
                    }
                }
            }
            let (permits, target) = (permits.clone(), target.clone());
            let (path, timeout) = (check.path.clone(), plan.timeout);
            let connector = target.backend.url.is_tls().then(|| {
                tls.get_or_init(|| tls_client::connector(&settings.backend_trust))
                    .clone()
            });
            probes.spawn(async move {
                // cannot fail: the semaphore is never closed
                let _permit = permits.acquire_owned().await;
                let url = &target.backend.url;
                let outcome = probe::probe(url, &target.host, &path, timeout, connector).await;
                (i, outcome)
            });
        }
        while let Some(done) = probes.join_next().await {
            if let Ok((i, outcome)) = done {
                record(
                    &mut tallies,
                    &targets[i],
                    outcome,
                    check,
                    plan.ttl,
                    &mut write,
                )
                .await;
            }
        }
        // Backends no longer listed are forgotten: a list edit starts them afresh.
        tallies.retain(|key, _| {
            targets.iter().any(|t| {
                (&t.host, t.backend.index, t.backend.url.as_str()) == (&key.0, key.1, &key.2)
            })
        });
        sleep_until(round + check.interval).await;
    }
}

async fn record(
    tallies: &mut HashMap<(String, usize, String), Tally>,
    target: &Target,
    outcome: Result<(), ProbeFailure>,
    check: &HealthCheck,
    ttl: Duration,
    write: &mut Server,
) {
    let key = (
        target.host.clone(),
        target.backend.index,
        target.backend.url.as_str().to_owned(),
    );
    let tally = tallies.entry(key.clone()).or_default();
    let verdict = tally.record(outcome.is_ok(), check.unhealthy, check.healthy);
    let (host, backend) = (&target.host, &target.backend.url);
    let written = match verdict {
        Verdict::Keep => true,
        Verdict::MarkDead => {
            // The last probe's failure: the one that tipped the count.
            let reason = outcome.err().map_or(String::new(), |why| why.to_string());
            warn!(host = %Escaped(host), backend = %Escaped(backend.as_str()), %reason, "backend failed its health checks; marked dead");
            write.mark_dead(target, ttl).await
        }
        Verdict::Renew => write.renew(target, ttl).await,
        Verdict::Clear { revived } => {
            if revived {
                info!(host = %Escaped(host), backend = %Escaped(backend.as_str()), "backend passed its health checks; mark removed");
            }
            write.clear(target).await
        }
    };
    if !written {
        // Not written: the next probe decides again rather than believing Redis agrees.
        tallies.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Option<Settings> {
        let loaded = Config::parse(text, std::path::Path::new("c.json")).unwrap();
        Settings::from_config(&loaded.config)
    }

    #[test]
    fn marks_outlive_two_intervals_and_writes_use_the_read_prefix() {
        assert!(settings("{}").is_none());
        let s = settings(
            r#"{"driver": ["redis://r:1#app:", "redis://w:2"], "server": {"deadBackendTTL": 30},
                "healthCheck": {"interval": 20, "timeout": 3}}"#,
        )
        .unwrap();
        assert_eq!(s.ttl, Duration::from_secs(43));
        assert_eq!(
            (s.read.prefix.as_str(), s.write.prefix.as_str()),
            ("app:", "app:")
        );
        assert_eq!(s.write.host, "w");
        let s = settings(r#"{"healthCheck": {"interval": 1, "timeout": 1}}"#).unwrap();
        assert_eq!(s.ttl, Duration::from_secs(30), "deadBackendTTL when longer");
    }

    fn check(interval: u64, timeout: u64) -> HealthCheck {
        let text =
            format!(r#"{{"healthCheck": {{"interval": {interval}, "timeout": {timeout}}}}}"#);
        settings(&text).unwrap().check
    }

    #[test]
    fn a_round_fits_its_interval_and_its_marks_outlive_it() {
        let secs = Duration::from_secs;
        // 1000 backends, 10 s, 3 s: starts over 7 s, every probe over by the end.
        let plan = Plan::new(1000, &check(10, 3), secs(30));
        assert_eq!(plan.timeout, secs(3));
        assert_eq!(plan.spacing, Duration::from_millis(7));
        assert_eq!((plan.span, plan.ttl), (secs(10), secs(30)));
        // A timeout longer than the interval is cut to it; the probes then start at once.
        let plan = Plan::new(1000, &check(1, 3), secs(5));
        assert_eq!((plan.timeout, plan.spacing), (secs(1), Duration::ZERO));
        assert_eq!((plan.span, plan.ttl), (secs(1), secs(5)));
        // More hanging backends than the cap holds in one interval: the marks live longer.
        let plan = Plan::new(MAX_CONCURRENT_PROBES * 3, &check(1, 1), secs(3));
        assert_eq!((plan.span, plan.ttl), (secs(3), secs(7)));
        assert_eq!(Plan::new(0, &check(10, 3), secs(30)).spacing, secs(7));
    }
}
