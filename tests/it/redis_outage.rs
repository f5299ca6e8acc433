//! Redis going away and coming back, seen from outside: what the operator reads in the process
//! log (one line per outage and per recovery, naming the server) and what the next request gets
//! once Redis accepts writes again.

use std::time::Duration;

use crate::support::{wait_for, wait_until, Backend, Config, Hipache, RedisServer};

const UNREACHABLE: &str = "redis unreachable";
const REACHABLE: &str = "redis reachable again";

/// Process log lines containing `message` and naming `redis`'s address. The log is the
/// behaviour under test in this file: each transition once, naming the address.
fn lines_about(hipache: &Hipache, redis: &RedisServer, message: &str) -> Vec<String> {
    let address = redis.address();
    hipache
        .log_lines()
        .into_iter()
        .filter(|line| line.contains(message) && line.contains(&address))
        .collect()
}

fn wait_for_lines(hipache: &Hipache, redis: &RedisServer, message: &str, count: usize) {
    wait_until(
        Duration::from_secs(10),
        &format!("{count} `{message}` line(s) naming {}", redis.address()),
        || lines_about(hipache, redis, message).len() >= count,
    );
}

/// Keeps the proxy busy during an outage: requests for a known host (served from the last known
/// routes) and an unknown one, spread over a few reconnection attempts.
fn requests_during_outage(hipache: &Hipache, known: &str) {
    for _ in 0..20 {
        assert_eq!(hipache.get(known, "/").text(), "one");
        let unknown = hipache.get("unknown.test", "/");
        assert!(matches!(unknown.status, 502 | 503), "{}", unknown.status);
        // Paces the client across reconnection attempts; no verdict waits on it.
        crate::support::pause(Duration::from_millis(20));
    }
}

#[test]
fn redis_unreachable_at_start_is_warned_with_its_address() {
    let mut redis = RedisServer::start();
    redis.stop();
    let hipache = Hipache::start(Config::redis(&redis));
    // No request needed: the warning comes from the connection attempts themselves.
    wait_for_lines(&hipache, &redis, UNREACHABLE, 1);
    let warning = &lines_about(&hipache, &redis, UNREACHABLE)[0];
    assert!(warning.contains("WARN"), "{warning}");

    redis.restart();
    wait_for_lines(&hipache, &redis, REACHABLE, 1);
    assert_eq!(lines_about(&hipache, &redis, UNREACHABLE).len(), 1);
}

#[test]
fn each_outage_and_recovery_is_logged_once_with_the_address() {
    let mut redis = RedisServer::start();
    let backend = Backend::named("one");
    redis.frontend("known.test", "known", &[&backend.url()]);
    let hipache = Hipache::start(Config::redis(&redis));
    assert_eq!(hipache.get("known.test", "/").text(), "one");

    for outage in 1..=2 {
        redis.stop();
        wait_for_lines(&hipache, &redis, UNREACHABLE, outage);
        requests_during_outage(&hipache, "known.test");
        redis.restart();
        redis.frontend("known.test", "known", &[&backend.url()]);
        wait_for_lines(&hipache, &redis, REACHABLE, outage);
        assert_eq!(hipache.get("known.test", "/").text(), "one");
    }
    assert_eq!(lines_about(&hipache, &redis, UNREACHABLE).len(), 2);
    assert_eq!(lines_about(&hipache, &redis, REACHABLE).len(), 2);
}

#[test]
fn a_change_written_as_soon_as_redis_is_back_is_served_next() {
    let mut redis = RedisServer::start();
    let backends = [Backend::named("one"), Backend::named("two")];
    redis.frontend("fresh.test", "fresh", &[&backends[0].url()]);
    let hipache = Hipache::start(Config::redis(&redis));
    hipache.wait_for_tracking(&redis);
    assert_eq!(hipache.get("fresh.test", "/").text(), "one");
    assert_eq!(hipache.get("fresh.test", "/").text(), "one");

    for round in 0..6 {
        redis.stop();
        // The proxy knows Redis is gone before it comes back; in half the rounds a request also
        // found it gone (and got the last known route), in the others the first request to
        // reach the command connection after the restart finds that connection dead.
        wait_for(Duration::from_secs(10), "the outage to be noticed", || {
            (lines_about(&hipache, &redis, UNREACHABLE).len() > round).then_some(())
        });
        if round % 2 == 0 {
            assert_eq!(hipache.get("fresh.test", "/").text(), "one");
        }
        redis.restart();
        let (name, backend) = [("two", &backends[1]), ("one", &backends[0])][round % 2];
        redis.frontend("fresh.test", "fresh", &[&backend.url()]);
        assert_eq!(
            hipache.get("fresh.test", "/").text(),
            name,
            "round {round}: first request after the change"
        );
        assert_eq!(hipache.get("fresh.test", "/").text(), name);
    }
}
