//! Failing backends and a failing Redis: dead marking (set, TTL, PUBLISH), retries, 5xx rules,
//! timeouts, stale routes while Redis is down.

use serde_json::json;

use crate::support::{wait_until, Backend, Config, Hipache, RedisServer};

use std::time::Duration;

fn proxy_with(redis: &RedisServer, server: serde_json::Value) -> Hipache {
    Hipache::start(Config::redis(redis).with(json!({ "server": server })))
}

/// Sends requests until `dead:<host>` holds `index` (random picks; bounded), asserting each
/// answer's status on the way.
fn request_until_marked(
    hipache: &Hipache,
    redis: &RedisServer,
    host: &str,
    index: &str,
    status: u16,
) {
    for _ in 0..50 {
        let response = hipache.get(host, "/");
        assert_eq!(response.status, status, "body: {}", response.text());
        if redis
            .smembers(&format!("dead:{host}"))
            .contains(&index.to_owned())
        {
            return;
        }
    }
    panic!("backend {index} of {host} was never marked dead in 50 requests");
}

/// Waits until a mark that a later request is sure to make has reached Redis. The test proxy
/// has one worker, which writes its marks over one Redis connection in order: once this one
/// landed, any mark an earlier request made has landed too, so its absence is a verdict.
fn wait_for_a_later_mark(hipache: &Hipache, redis: &RedisServer) {
    let refusing: Vec<Backend> = (0..2)
        .map(|_| Backend::builder().name("witness").refusing().start())
        .collect();
    redis.frontend(
        "witness.local",
        "witness",
        &[&refusing[0].url(), &refusing[1].url()],
    );
    assert_eq!(hipache.get("witness.local", "/").status, 502);
    wait_until(Duration::from_secs(5), "the witness's dead mark", || {
        !redis.smembers("dead:witness.local").is_empty()
    });
}

#[test]
fn refused_backend_is_marked_dead_and_request_retried() {
    let redis = RedisServer::start();
    let refusing = Backend::builder().name("refusing").refusing().start();
    let live = Backend::named("live");
    redis.frontend("pub.local", "pub", &[&refusing.url(), &live.url()]);
    let subscription = redis.subscribe("dead");
    let hipache = Hipache::start(Config::redis(&redis));

    request_until_marked(&hipache, &redis, "pub.local", "0", 200);

    let expected = format!("pub.local;{};0;2", refusing.normalised_url());
    assert_eq!(subscription.wait_for(1)[0], expected);
    let ttl = redis.ttl("dead:pub.local");
    assert!(
        (1..=30).contains(&ttl),
        "dead:pub.local TTL {ttl} ≈ deadBackendTTL 30"
    );
    for _ in 0..5 {
        assert_eq!(hipache.get("pub.local", "/").text(), "live");
    }
}

#[test]
fn single_refused_backend_without_retries_answers_502_and_is_not_marked() {
    let redis = RedisServer::start();
    let refusing = Backend::builder().refusing().start();
    redis.frontend("solo.local", "solo", &[&refusing.url()]);
    let hipache = proxy_with(&redis, json!({"retryOnError": 0}));

    let response = hipache.get("solo.local", "/");

    response.assert_error_page(502, "Application Not Responding");
    assert!(
        redis.smembers("dead:solo.local").is_empty(),
        "one backend: never marked"
    );
}

#[test]
fn backend_500_reaches_the_client_and_marks_it_dead() {
    let redis = RedisServer::start();
    let failing = Backend::builder().name("failing").status(500).start();
    let live = Backend::named("live");
    redis.frontend("five.local", "five", &[&failing.url(), &live.url()]);
    redis.sadd("dead:five.local", "1");
    let hipache = proxy_with(&redis, json!({"retryOnError": 0}));

    let response = hipache.get("five.local", "/");

    assert_eq!(
        (response.status, response.text().as_str()),
        (500, "failing")
    );
    redis.wait_for_set("dead:five.local", &["0", "1"]);
}

#[test]
fn backend_500_is_not_marked_when_dead_backend_on_500_is_off() {
    let redis = RedisServer::start();
    let failing = Backend::builder().name("failing").status(500).start();
    let live = Backend::named("live");
    redis.frontend("five.local", "five", &[&failing.url(), &live.url()]);
    redis.sadd("dead:five.local", "1");
    let hipache = proxy_with(
        &redis,
        json!({"retryOnError": 0, "deadBackendOn500": false}),
    );

    assert_eq!(hipache.get("five.local", "/").status, 500);

    wait_for_a_later_mark(&hipache, &redis);
    assert_eq!(redis.smembers("dead:five.local"), ["1"]);
}

#[test]
fn backend_503_with_retry_after_is_not_marked() {
    let redis = RedisServer::start();
    let busy = Backend::builder()
        .name("busy")
        .status(503)
        .retry_after()
        .start();
    let live = Backend::named("live");
    redis.frontend("busy.local", "busy", &[&busy.url(), &live.url()]);
    redis.sadd("dead:busy.local", "1");
    let hipache = proxy_with(&redis, json!({"retryOnError": 0}));

    let response = hipache.get("busy.local", "/");

    assert_eq!(response.status, 503);
    assert_eq!(response.header("retry-after"), Some("30"));
    wait_for_a_later_mark(&hipache, &redis);
    assert_eq!(redis.smembers("dead:busy.local"), ["1"]);
}

#[test]
fn backend_503_without_retry_after_is_marked() {
    let redis = RedisServer::start();
    let broken = Backend::builder().name("broken").status(503).start();
    let live = Backend::named("live");
    redis.frontend("busy.local", "busy", &[&broken.url(), &live.url()]);
    redis.sadd("dead:busy.local", "1");
    let hipache = proxy_with(&redis, json!({"retryOnError": 0}));

    assert_eq!(hipache.get("busy.local", "/").status, 503);

    redis.wait_for_set("dead:busy.local", &["0", "1"]);
}

#[test]
fn silent_backend_times_out_with_504_and_is_marked_dead() {
    let redis = RedisServer::start();
    let hanging = Backend::builder().name("hanging").hanging().start();
    let live = Backend::named("live");
    redis.frontend("slow.local", "slow", &[&hanging.url(), &live.url()]);
    redis.sadd("dead:slow.local", "1");
    let hipache = proxy_with(&redis, json!({"retryOnError": 0, "tcpTimeout": 1}));

    let response = hipache.get("slow.local", "/");

    response.assert_error_page(504, "Application Not Responding");
    assert!(
        hanging.connections() >= 1,
        "the request reached the silent backend"
    );
    redis.wait_for_set("dead:slow.local", &["0", "1"]);
}

#[test]
fn silent_backend_is_marked_and_request_retried_on_a_live_one() {
    let redis = RedisServer::start();
    let hanging = Backend::builder().name("hanging").hanging().start();
    let live = Backend::named("live");
    redis.frontend("slow.local", "slow", &[&hanging.url(), &live.url()]);
    let hipache = proxy_with(&redis, json!({"tcpTimeout": 1}));

    request_until_marked(&hipache, &redis, "slow.local", "0", 200);

    assert!(hanging.connections() >= 1);
    assert_eq!(hipache.get("slow.local", "/").text(), "live");
}

#[test]
fn routes_stay_served_while_redis_is_down_and_new_ones_work_once_it_is_back() {
    let mut redis = RedisServer::start();
    let (old, new) = (Backend::named("old"), Backend::named("new"));
    redis.frontend("old.local", "old", &[&old.url()]);
    let hipache = Hipache::start(Config::redis(&redis));
    assert_eq!(hipache.get("old.local", "/").text(), "old");

    redis.stop();

    let stale = hipache.get("old.local", "/");
    assert_eq!((stale.status, stale.text().as_str()), (200, "old"));
    let unknown = hipache.get("unknown.local", "/");
    assert!(
        unknown.status == 502 || unknown.status == 503,
        "unknown host while Redis is down: {}",
        unknown.status
    );

    redis.restart();
    redis.frontend("new.local", "new", &[&new.url()]);
    wait_until(
        Duration::from_secs(15),
        "new.local to be routed after Redis came back",
        || hipache.get("new.local", "/").text() == "new",
    );
}
