//! Limits a connection lives under: the open file limit (raised at start, accept failures at it
//! logged once). One `tcpTimeout` for the idle wait and the head together, and
//! `server.maxConnections` (no answer beyond it until a place frees), are tested in process
//! under a paused clock (`worker::tests`), where "no answer" is decided once every task is idle
//! rather than after a wall-clock second.

use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::support::raw_backend::Wire;
use crate::support::wait::pause;
use crate::support::{wait_until, Config, Hipache, RedisServer};

/// The soft and hard `Max open files` of `pid`, from /proc.
fn open_file_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_one_and_logged() {
    let redis = RedisServer::start();
    let hipache = Hipache::start_under_ulimit(Config::redis(&redis), "-S -n 256");

    let worker = hipache.worker_pids()[0];
    let (soft, hard) = open_file_limits(worker);
    assert!(
        hard > 256,
        "this test needs a hard limit above 256, not {hard}"
    );
    assert_eq!(soft, hard);
    // The log is the behaviour here: the operator sees the limit the proxy runs under.
    let log = hipache.log_lines().join("\n");
    assert!(log.contains(&format!("open_files={hard}")), "{log}");
}

#[test]
fn accept_errors_at_the_open_file_limit_are_logged_once_per_episode() {
    let redis = RedisServer::start();
    // One worker, soft and hard limit 64: nothing to raise, a few dozen connections exhaust it.
    let config = Config::redis(&redis).with(json!({"server": {"workers": 1}}));
    let hipache = Hipache::start_under_ulimit(config, "-n 64");
    let flood: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(hipache.addr()).unwrap())
        .collect();
    // The log is the behaviour here: one line per episode, not one per failed accept.
    let count = |hipache: &Hipache, what: &str| {
        let lines = hipache.log_lines();
        lines.iter().filter(|l| l.contains(what)).count()
    };
    wait_until(Duration::from_secs(10), "accepting to fail", || {
        count(&hipache, "accept failing") > 0
    });
    // The episode goes on while the flood is held; failed accepts are retried every 50 ms, so
    // it folds about ten of them. Nothing tells from outside how many failed before the episode
    // ends, hence a hold rather than a wait on a condition; its count is read from the log after.
    pause(Duration::from_millis(500));
    drop(flood);
    wait_until(Duration::from_secs(10), "accepting to work again", || {
        count(&hipache, "accepting again") > 0
    });
    let mut wire = Wire::open(hipache.addr());
    wire.write(b"GET / HTTP/1.1\r\nHost: __ping__\r\n\r\n");
    assert_eq!(wire.answer().text(), "ok");

    // Each episode is one line at its start and one at its end with the count of failures,
    // however long it lasted: never a line per failed accept. Once the flood is gone every
    // episode ends, so the two counts meet (they never would with a line per failure).
    wait_until(Duration::from_secs(10), "every episode to end", || {
        count(&hipache, "accept failing") == count(&hipache, "accepting again")
    });
    let lines = hipache.log_lines();
    let failed: Vec<u64> = lines
        .iter()
        .filter(|l| l.contains("accepting again"))
        .filter_map(|l| {
            l.split("failed=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        failed.iter().sum::<u64>() > failed.len() as u64,
        "the retries of an episode folded into its lines: {}",
        lines.join("\n")
    );
}
