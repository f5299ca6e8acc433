//! A new worker does not begin cold when a sibling is warm: the master hands it the hosts a warm
//! worker has cached, and it looks them up in the background while it serves. Seen from Redis
//! (`MONITOR`): the replacement of a killed worker, and each worker of a SIGHUP generation, looks
//! every warm host up once on its own, and then answers those hosts without a lookup.
//! In the production shape: a root master, workers as `nobody`.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::support::redis::Monitor;
use crate::support::{procfs, wait_until, Backend, Config, Hipache, RedisServer};

const HOSTS: [&str; 6] = [
    "a.warm.test",
    "b.warm.test",
    "c.warm.test",
    "d.warm.test",
    "e.warm.test",
    "f.warm.test",
];

/// `(client address, host)` of each lookup among monitor `lines`: each reads its host's dead set
/// with one `SMEMBERS`.
fn lookups(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter(|line| line.contains("\"SMEMBERS\""))
        .filter_map(|line| {
            let client = line.split_once(" [")?.1.split_once(']')?.0;
            let address = client.split_once(' ')?.1.to_owned();
            let host = HOSTS
                .iter()
                .find(|host| line.contains(&format!("\"dead:{host}\"")))?;
            Some((address, (*host).to_owned()))
        })
        .collect()
}

fn proxy(redis: &RedisServer, backend: &Backend, workers: usize) -> Hipache {
    for host in HOSTS {
        redis.frontend(host, host, &[&backend.url()]);
    }
    let hipache = Hipache::start(Config::redis(redis).with(json!({
        "user": "nobody",
        "group": "nogroup",
        "server": { "workers": workers },
    })));
    wait_for_tracking_everywhere(&hipache, redis);
    hipache
}

/// Every worker holds a connection Redis tracks keys for.
fn wait_for_tracking_everywhere(hipache: &Hipache, redis: &RedisServer) {
    wait_until(
        Duration::from_secs(10),
        "every worker tracking keys",
        || {
            let tracking = redis.tracking_client_ports();
            let workers = hipache.worker_pids();
            !workers.is_empty()
                && workers.into_iter().all(|pid| {
                    procfs::connected_ports_of(pid)
                        .iter()
                        .any(|port| tracking.contains(port))
                })
        },
    );
}

/// Each host once, on a new connection (so on any worker).
fn request_all(hipache: &Hipache) {
    for host in HOSTS {
        let response = hipache.get(host, "/");
        assert_eq!(response.status, 200, "{host}: {}", response.text());
    }
}

/// Requests every host until `clients` different Redis clients (the workers' links) looked each
/// up: every worker has them cached.
fn warm(hipache: &Hipache, redis: &RedisServer, monitor: &Monitor, clients: usize) {
    for round in 0.. {
        request_all(hipache);
        let seen = lookups(&monitor.until_marker(redis, &format!("warm-{round}")));
        let warm = HOSTS.iter().all(|host| {
            let by: HashSet<&String> = seen
                .iter()
                .filter(|(_, h)| h == host)
                .map(|(a, _)| a)
                .collect();
            by.len() >= clients
        });
        if warm {
            return;
        }
        assert!(
            round < 200,
            "workers never all looked the hosts up: {seen:?}"
        );
    }
}

/// Waits (bounded) until a Redis client not among `known` looked up every host: a new worker
/// preloaded them. Returns its address.
fn wait_for_preload(redis: &RedisServer, monitor: &Monitor, known: &HashSet<String>) -> String {
    let mut attempt = 0;
    let mut found = None;
    wait_until(
        Duration::from_secs(20),
        "a new worker looking every warm host up",
        || {
            attempt += 1;
            let seen = lookups(&monitor.until_marker(redis, &format!("preload-{attempt}")));
            let new: HashSet<&String> = seen
                .iter()
                .map(|(a, _)| a)
                .filter(|a| !known.contains(*a))
                .collect();
            found = new
                .into_iter()
                .find(|address| {
                    HOSTS
                        .iter()
                        .all(|host| seen.iter().any(|(a, h)| a == *address && h == host))
                })
                .cloned();
            found.is_some()
        },
    );
    found.expect("found above")
}

/// Requests every host `rounds` times and returns the lookups Redis saw meanwhile.
fn lookups_while_serving(
    hipache: &Hipache,
    redis: &RedisServer,
    monitor: &Monitor,
    rounds: usize,
) -> Vec<(String, String)> {
    let before = monitor.until_marker(redis, "serving-start").len();
    for _ in 0..rounds {
        request_all(hipache);
    }
    let lines = monitor.until_marker(redis, "serving-end");
    lookups(&lines[before..])
}

fn addresses(monitor: &Monitor, redis: &RedisServer, marker: &str) -> HashSet<String> {
    lookups(&monitor.until_marker(redis, marker))
        .into_iter()
        .map(|(address, _)| address)
        .collect()
}

#[test]
fn a_killed_workers_replacement_answers_warm_hosts_without_a_lookup() {
    let redis = RedisServer::start();
    let backend = Backend::named("one");
    let hipache = proxy(&redis, &backend, 2);
    let monitor = redis.monitor();
    warm(&hipache, &redis, &monitor, 2);
    // Each original worker in turn: every worker left serving is then a replacement, so every
    // request below reaches one.
    for (n, pid) in hipache.worker_pids().into_iter().enumerate() {
        let known = addresses(&monitor, &redis, &format!("before-kill-{n}"));
        hipache.replace_worker(pid);
        wait_for_preload(&redis, &monitor, &known);
    }
    wait_for_tracking_everywhere(&hipache, &redis);
    let seen = lookups_while_serving(&hipache, &redis, &monitor, 4);
    assert_eq!(seen, [], "replacements looked warm hosts up again");
    assert!(backend.request_count() >= 4 * HOSTS.len());
}

#[test]
fn a_reloaded_generation_answers_warm_hosts_without_a_lookup() {
    let redis = RedisServer::start();
    let backend = Backend::named("one");
    let hipache = proxy(&redis, &backend, 1);
    let monitor = redis.monitor();
    warm(&hipache, &redis, &monitor, 1);
    let known = addresses(&monitor, &redis, "before-reload");
    hipache.reload();
    wait_for_preload(&redis, &monitor, &known);
    // The old worker drained: only the new generation accepts.
    wait_until(Duration::from_secs(10), "the old generation gone", || {
        hipache.worker_pids().len() == 1
    });
    let seen = lookups_while_serving(&hipache, &redis, &monitor, 3);
    assert_eq!(seen, [], "the new generation looked warm hosts up again");
}
