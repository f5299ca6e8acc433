//! The built-in active health checker (`healthCheck`), one per node: a task of the master, not
//! of the workers, in the role Hipache left to `hchecker`.
//!
//! Each interval it lists the frontends in Redis (`store`), probes every backend of each with
//! `GET <path>` and `Host: <frontend>` (`probe`), spread evenly over the interval and at most
//! [`MAX_CONCURRENT_PROBES`] at once, and counts the results per backend (`tally`): a backend
//! failing `unhealthy` probes in a row is marked dead exactly as the proxy marks one, and its
//! mark is removed after `healthy` good probes. Meanwhile it keeps `hchecker_ping` fresh, so the
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
use crate::tls::backend as tls_client;
use probe::ProbeFailure;
use store::{Server, Target};
use tally::{Tally, Verdict};

/// Probes in flight at once, whatever the number of backends.
const MAX_CONCURRENT_PROBES: usize = 64;
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
        let spacing = check.interval / targets.len().max(1) as u32;
        let mut probes = JoinSet::new();
        for (i, target) in targets.iter().enumerate() {
            let start = round + spacing * i as u32;
            loop {
                tokio::select! {
                    () = sleep_until(start) => break,
                    Some(Ok((i, outcome))) = probes.join_next() => {
                        record(&mut tallies, &targets[i], outcome, settings, &mut write).await;
                    }
                }
            }
            let (permits, target) = (permits.clone(), target.clone());
            let (path, timeout) = (check.path.clone(), check.timeout);
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
                record(&mut tallies, &targets[i], outcome, settings, &mut write).await;
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
    settings: &Settings,
    write: &mut Server,
) {
    let key = (
        target.host.clone(),
        target.backend.index,
        target.backend.url.as_str().to_owned(),
    );
    let tally = tallies.entry(key.clone()).or_default();
    let check = &settings.check;
    let verdict = tally.record(outcome.is_ok(), check.unhealthy, check.healthy);
    let (host, backend) = (&target.host, &target.backend.url);
    let written = match verdict {
        Verdict::Keep => true,
        Verdict::MarkDead => {
            // The last probe's failure: the one that tipped the count.
            let reason = outcome.err().map_or(String::new(), |why| why.to_string());
            warn!(host = %Escaped(host), backend = %Escaped(backend.as_str()), %reason, "backend failed its health checks; marked dead");
            write.mark_dead(target, settings.ttl).await
        }
        Verdict::Renew => write.renew(target, settings.ttl).await,
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
}
