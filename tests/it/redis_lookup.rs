//! What a cache miss costs Redis: one pipeline of plain reads (a `LRANGE` per candidate,
//! `SMEMBERS`, `HGETALL`, a `PTTL` per key), sent back to back on one connection without MULTI,
//! EXEC or a script; the driver's `#prefix` reaches every key it reads; and a write to a key that
//! only the lookup reads still reaches the cache (tracking is by prefix, not by what was read).

use serde_json::json;

use crate::support::redis::Monitor;
use crate::support::{Backend, Config, Hipache, RedisServer};

/// The client in a MONITOR line (`<time> [<db> <client>] "COMMAND" ...`).
fn client_of(line: &str) -> Option<&str> {
    let (_, rest) = line.split_once('[')?;
    let (place, _) = rest.split_once(']')?;
    place.split_whitespace().nth(1)
}

/// The commands of a MONITOR line without time and client: `"LRANGE" "k" "0" "-1"`.
fn command_of(line: &str) -> &str {
    line.split_once("] ").map_or(line, |(_, command)| command)
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

/// One miss, watched: what Redis ran, from the first command naming `first_key` on, as the
/// commands (without time and client) of every client, in the order Redis ran them; checked to
/// all come from the client that sent that first command and to hold no transaction.
fn one_miss(redis: &RedisServer, hipache: &Hipache, host: &str, first_key: &str) -> Vec<String> {
    let monitor: Monitor = redis.monitor();
    body_of(hipache, host);
    let lines = monitor.until_marker(redis, &format!("after-{host}"));
    let quoted = format!("\"{first_key}\"");
    let at = lines
        .iter()
        .position(|line| line.contains(&quoted))
        .unwrap_or_else(|| panic!("{first_key} never read: {lines:#?}"));
    let lookup_client = client_of(&lines[at]);
    for line in &lines {
        for word in ["\"MULTI\"", "\"EXEC\"", "\"EVALSHA\"", "\"EVAL\""] {
            assert!(!line.contains(word), "{word} sent for the miss: {line}");
        }
    }
    let ours = lines[at..]
        .iter()
        .filter(|line| client_of(line) == lookup_client)
        .count();
    lines[at..at + ours]
        .iter()
        .map(|line| command_of(line).to_owned())
        .collect()
}

/// The commands of one miss of `host` with these frontend keys, in order.
fn expected(frontend_keys: &[&str], prefix: &str, host: &str) -> Vec<String> {
    let dead = format!("{prefix}dead:{host}");
    let state = format!("{prefix}state:{host}");
    let mut commands: Vec<String> = frontend_keys
        .iter()
        .map(|key| format!("\"LRANGE\" \"{key}\" \"0\" \"-1\""))
        .collect();
    commands.push(format!("\"SMEMBERS\" \"{dead}\""));
    commands.push(format!("\"HGETALL\" \"{state}\""));
    let keys = frontend_keys.iter().copied().chain([&*dead, &*state]);
    commands.extend(keys.map(|key| format!("\"PTTL\" \"{key}\"")));
    commands
}

#[test]
fn a_miss_is_one_pipeline_of_plain_reads_back_to_back() {
    let redis = RedisServer::start();
    let backend = Backend::named("one");
    redis.frontend("a.miss.test", "a", &[&backend.url()]);
    let hipache = Hipache::start(Config::redis(&redis));
    hipache.wait_for_tracking(&redis);
    let frontends = [
        "frontend:a.miss.test",
        "frontend:*.miss.test",
        "frontend:*.test",
        "frontend:*",
    ];
    let sent = one_miss(&redis, &hipache, "a.miss.test", frontends[0]);
    // Back to back: no other command, of any client, runs between the miss's first and last.
    assert_eq!(sent, expected(&frontends, "", "a.miss.test"));
    assert_eq!(body_of(&hipache, "a.miss.test"), "one");
}

#[test]
fn the_lookup_reads_every_key_under_the_drivers_prefix() {
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
    let frontends = [
        "pfx:frontend:p.test",
        "pfx:frontend:*.test",
        "pfx:frontend:*",
    ];
    let sent = one_miss(&redis, &hipache, "p.test", frontends[0]);
    assert_eq!(sent, expected(&frontends, "pfx:", "p.test"));
    for _ in 0..6 {
        assert_eq!(body_of(&hipache, "p.test"), "right");
    }
    assert_eq!(dead.request_count() + wrong.request_count(), 0);
}

#[test]
fn a_write_to_a_key_only_the_lookup_reads_reaches_the_cache() {
    let redis = RedisServer::start();
    let (one, two) = (Backend::named("one"), Backend::named("two"));
    redis.frontend("s.test", "s", &[&one.url(), &two.url()]);
    let _: i64 = redis.query(&["HSET", "state:s.test", &two.url(), "disable"]);
    let hipache = Hipache::start(Config::redis(&redis));
    hipache.wait_for_tracking(&redis);
    for _ in 0..4 {
        assert_eq!(body_of(&hipache, "s.test"), "one");
    }
    let runs = calls(&redis, "hgetall");
    // `state:<host>` is read by no command of ours but the lookup.
    let _: i64 = redis.query(&["HSET", "state:s.test", &one.url(), "disable"]);
    let _: i64 = redis.query(&["HDEL", "state:s.test", &two.url()]);
    for _ in 0..4 {
        assert_eq!(body_of(&hipache, "s.test"), "two");
    }
    assert!(
        calls(&redis, "hgetall") > runs,
        "the new state was not read by a lookup"
    );
}
