//! The process lifecycle in the shape production runs: a root master whose workers run as
//! `nobody`. Workers never outlive their master, a port belongs to one instance, a reload that
//! moves a port leaves nothing listening on the old one, and a start refuses what its workers
//! could not set up.

use std::time::Duration;

use serde_json::json;

use crate::support::hipache::{Config, Hipache};
use crate::support::procfs::{is_running, listeners_on};
use crate::support::redis::RedisServer;
use crate::support::wait::wait_until;

/// Root master, two workers as `nobody`, routes from `redis`.
fn production(redis: &RedisServer) -> Config {
    Config::redis(redis).with(json!({
        "server": { "workers": 2 },
        "user": "nobody",
        "group": "nogroup"
    }))
}

fn on_port(config: Config, port: u16) -> Config {
    config.with(json!({ "http": { "port": port } }))
}

#[test]
fn workers_of_a_killed_master_exit_and_a_restarted_master_is_the_only_listener() {
    let redis = RedisServer::start();
    let first = Hipache::start(production(&redis));
    let port = first.port();
    wait_until(Duration::from_secs(10), "two workers", || {
        first.worker_pids().len() == 2
    });
    let workers = first.worker_pids();
    first.signal(libc::SIGKILL);
    wait_until(
        Duration::from_secs(2),
        "the killed master's workers to exit",
        || !workers.iter().any(|pid| is_running(*pid)),
    );
    let second = Hipache::start(on_port(production(&redis), port));
    let mut ours = second.worker_pids();
    ours.push(second.pid());
    let listeners = listeners_on(port);
    assert!(
        listeners.iter().all(|pid| ours.contains(pid)),
        "port {port} held by {listeners:?}, the new master and its workers are {ours:?}"
    );
}
