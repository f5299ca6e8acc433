//! Hipache's freshness promise with the lookup cache: a client that changed a route in Redis and
//! got the acknowledgement is routed by the new state on its very next request, and the cache
//! survives no Redis restart. Correctness tests, not timing tests: each iteration writes, then
//! requests at once, many times, so a lost race shows up as a request on the old backend.

use std::time::Duration;

use crate::support::{wait_until, Backend, Config, Hipache, RedisServer};

const HOST: &str = "fresh.test";
const KEY: &str = "frontend:fresh.test";
const ITERATIONS: usize = 1_000;

/// The proxy, once its worker logged that tracking is on (`count` times so far). For tests
/// that have no Redis at hand; with one, `Hipache::wait_for_tracking` asks Redis instead.
pub(crate) fn wait_for_tracking(hipache: &Hipache, count: usize) {
    wait_until(Duration::from_secs(10), "redis tracking enabled", || {
        let lines = hipache.log_lines();
        lines
            .iter()
            .filter(|l| l.contains("redis tracking enabled"))
            .count()
            >= count
    });
}

/// Lookups (each reads its host's dead set with one `SMEMBERS`) and transactions (`EXEC`) Redis
/// has run: one per proxy lookup that reached it, plus the test's own transactions.
fn transactions(redis: &RedisServer) -> u64 {
    let info: String = redis.query(&["INFO", "commandstats"]);
    let calls = |command: &str| -> u64 {
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    };
    calls("smembers") + calls("exec")
}

fn body(hipache: &Hipache) -> String {
    let response = hipache.get(HOST, "/");
    assert_eq!(response.status, 200, "{}", response.text());
    response.text()
}

/// Writes with `write(conn, backend)` alternating between two backends and checks that the
/// request right after each acknowledgement, and the (cached) one after it, reach the new one.
/// `own` is the number of transactions each write runs itself.
fn alternate(redis: &RedisServer, own: u64, write: impl Fn(&mut ::redis::Connection, &Backend)) {
    let backends = [Backend::named("one"), Backend::named("two")];
    redis.frontend(HOST, "fresh", &[&backends[0].url()]);
    let hipache = Hipache::start(Config::redis(redis));
    hipache.wait_for_tracking(redis);
    assert_eq!(body(&hipache), "one");
    let mut conn = redis.connection();
    let before = transactions(redis);
    for i in 0..ITERATIONS {
        let (name, backend) = [("two", &backends[1]), ("one", &backends[0])][i % 2];
        write(&mut conn, backend);
        assert_eq!(
            body(&hipache),
            name,
            "iteration {i}: first request after the write"
        );
        assert_eq!(body(&hipache), name, "iteration {i}: second request");
    }
    // One lookup per change reached Redis (plus the test's own transactions): the second request
    // of each iteration was served from the cache, so the cache was really on trial.
    let reached = transactions(redis) - before;
    assert!(
        reached <= (1 + own) * ITERATIONS as u64 + 20,
        "{reached} transactions for {ITERATIONS} changes: lookups were not cached"
    );
}

#[test]
fn lset_then_request_always_reaches_the_new_backend() {
    let redis = RedisServer::start();
    alternate(&redis, 0, |conn, backend| {
        ::redis::cmd("LSET")
            .arg(KEY)
            .arg(1)
            .arg(backend.url())
            .query::<()>(conn)
            .expect("LSET");
    });
}

#[test]
fn multi_del_rpush_then_request_always_reaches_the_new_backend() {
    let redis = RedisServer::start();
    alternate(&redis, 1, |conn, backend| {
        ::redis::pipe()
            .atomic()
            .del(KEY)
            .ignore()
            .rpush(KEY, &["fresh".to_owned(), backend.url()])
            .ignore()
            .query::<()>(conn)
            .expect("MULTI DEL RPUSH EXEC");
    });
}

#[test]
fn no_stale_route_after_a_redis_restart() {
    let mut redis = RedisServer::start();
    let backends = [Backend::named("one"), Backend::named("two")];
    redis.frontend(HOST, "fresh", &[&backends[0].url()]);
    let hipache = Hipache::start(Config::redis(&redis));
    hipache.wait_for_tracking(&redis);
    assert_eq!(body(&hipache), "one");
    assert_eq!(body(&hipache), "one");

    redis.stop();
    redis.restart();
    redis.frontend(HOST, "fresh", &[&backends[1].url()]);
    // Until the proxy reconnects it may serve its last known answer (stale-if-error); from the
    // first answer of the new server on, never the old one again.
    wait_until(
        Duration::from_secs(10),
        "an answer from the restarted redis",
        || body(&hipache) == "two",
    );
    for _ in 0..50 {
        assert_eq!(body(&hipache), "two");
    }
    // The restarted server knows no client of before: tracking there is the reconnection's.
    hipache.wait_for_tracking(&redis);
    let mut conn = redis.connection();
    for i in 0..100 {
        let (name, backend) = [("one", &backends[0]), ("two", &backends[1])][i % 2];
        ::redis::cmd("LSET")
            .arg(KEY)
            .arg(1)
            .arg(backend.url())
            .query::<()>(&mut conn)
            .expect("LSET");
        assert_eq!(body(&hipache), name, "iteration {i} after the restart");
        assert_eq!(
            body(&hipache),
            name,
            "iteration {i} after the restart, cached"
        );
    }
}
