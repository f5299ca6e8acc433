//! What a cache miss costs Redis: one `EVALSHA` of the lookup script, whose reads run inside
//! Redis, and nothing else; a script Redis lost (`SCRIPT FLUSH`) is loaded again without a failed
//! request; the driver's `#prefix` reaches every key the script reads; and a write to a key that
//! only the script reads still reaches the cache (tracking is by prefix, not by what was read).

use serde_json::json;

use crate::support::redis::Monitor;
use crate::support::{Backend, Config, Hipache, RedisServer};

/// The commands clients sent (not those a script ran) that name `needle`.
fn sent_naming<'a>(lines: &'a [String], needle: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|line| !line.contains(" lua] ") && line.contains(needle))
        .map(String::as_str)
        .collect()
}

/// The calls of `command` in `INFO commandstats` (0 when never called).
fn calls(redis: &RedisServer, command: &str) -> u64 {
    let info: String = redis.query(&["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

fn body_of(hipache: &Hipache, host: &str) -> String {
    let response = hipache.get(host, "/");
    assert_eq!(response.status, 200, "{host}: {}", response.text());
    response.text()
}

/// One miss, watched: what clients sent Redis that names `host`.
fn one_miss(redis: &RedisServer, hipache: &Hipache, host: &str, marker: &str) -> Vec<String> {
    let monitor: Monitor = redis.monitor();
    let exec_before = calls(redis, "exec");
    body_of(hipache, host);
    let lines = monitor.until_marker(redis, marker);
    assert_eq!(
        calls(redis, "exec"),
        exec_before,
        "a transaction ran for the miss"
    );
    sent_naming(&lines, host)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_miss_is_one_evalsha_and_nothing_else() {
    let redis = RedisServer::start();
    let backend = Backend::named("one");
    redis.frontend("a.miss.test", "a", &[&backend.url()]);
    let hipache = Hipache::start(Config::redis(&redis));
    hipache.wait_for_tracking(&redis);
    let sent = one_miss(&redis, &hipache, "a.miss.test", "after-the-miss");
    assert_eq!(sent.len(), 1, "one command per miss, got {sent:#?}");
    assert!(sent[0].contains("\"EVALSHA\""), "{sent:?}");
    for key in [
        "frontend:a.miss.test",
        "frontend:*.miss.test",
        "frontend:*.test",
        "frontend:*",
        "dead:a.miss.test",
        "state:a.miss.test",
    ] {
        assert!(
            sent[0].contains(&format!("\"{key}\"")),
            "{key} not among the script's KEYS: {}",
            sent[0]
        );
    }
    assert_eq!(body_of(&hipache, "a.miss.test"), "one");
}

#[test]
fn a_flushed_script_is_loaded_again_and_the_miss_answered() {
    let redis = RedisServer::start();
    let (one, two) = (Backend::named("one"), Backend::named("two"));
    redis.frontend("before.test", "before", &[&one.url()]);
    redis.frontend("after.test", "after", &[&two.url()]);
    let hipache = Hipache::start(Config::redis(&redis));
    hipache.wait_for_tracking(&redis);
    assert_eq!(body_of(&hipache, "before.test"), "one");
    let (loads, runs) = (calls(&redis, "script|load"), calls(&redis, "evalsha"));
    let _: String = redis.query(&["SCRIPT", "FLUSH"]);
    assert_eq!(body_of(&hipache, "after.test"), "two");
    assert!(
        calls(&redis, "script|load") > loads,
        "the script was not loaded again"
    );
    assert!(
        calls(&redis, "evalsha") >= runs + 2,
        "no EVALSHA after the reload"
    );
}

#[test]
fn the_script_reads_every_key_under_the_drivers_prefix() {
    let redis = RedisServer::start();
    let (wrong, dead, right) = (
        Backend::named("wrong"),
        Backend::named("dead"),
        Backend::named("right"),
    );
    redis.frontend("p.test", "unprefixed", &[&wrong.url()]);
    redis.rpush(
        "pfx:frontend:p.test",
        &["prefixed", &dead.url(), &right.url(), &wrong.url()],
    );
    redis.sadd("pfx:dead:p.test", "0");
    let _: i64 = redis.query(&["HSET", "pfx:state:p.test", &wrong.url(), "disable"]);
    let driver = format!("{}/0#pfx:", redis.url());
    let hipache = Hipache::start(Config::redis(&redis).with(json!({ "driver": driver })));
    hipache.wait_for_tracking(&redis);
    let sent = one_miss(&redis, &hipache, "p.test", "after-the-prefixed-miss");
    assert_eq!(sent.len(), 1, "{sent:#?}");
    for key in ["pfx:frontend:p.test", "pfx:dead:p.test", "pfx:state:p.test"] {
        assert!(
            sent[0].contains(&format!("\"{key}\"")),
            "{key}: {}",
            sent[0]
        );
    }
    for _ in 0..6 {
        assert_eq!(body_of(&hipache, "p.test"), "right");
    }
    assert_eq!(dead.request_count() + wrong.request_count(), 0);
}

#[test]
fn a_write_to_a_key_only_the_script_reads_reaches_the_cache() {
    let redis = RedisServer::start();
    let (one, two) = (Backend::named("one"), Backend::named("two"));
    redis.frontend("s.test", "s", &[&one.url(), &two.url()]);
    let _: i64 = redis.query(&["HSET", "state:s.test", &two.url(), "disable"]);
    let hipache = Hipache::start(Config::redis(&redis));
    hipache.wait_for_tracking(&redis);
    for _ in 0..4 {
        assert_eq!(body_of(&hipache, "s.test"), "one");
    }
    let runs = calls(&redis, "evalsha");
    // `state:<host>` is read by no command of ours but the script.
    let _: i64 = redis.query(&["HSET", "state:s.test", &one.url(), "disable"]);
    let _: i64 = redis.query(&["HDEL", "state:s.test", &two.url()]);
    for _ in 0..4 {
        assert_eq!(body_of(&hipache, "s.test"), "two");
    }
    assert!(
        calls(&redis, "evalsha") > runs,
        "the new state was not read by the script"
    );
}
