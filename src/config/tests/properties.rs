//! Property tests of the config loader, bounded for `cargo test`: documents built
//! from Hipache's keys (both generations and ours) holding values of every JSON type never make
//! it panic, and a refusal always names the file.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::Config as Runner;
use serde_json::{Map, Value};

use super::*;

fn runner() -> Runner {
    Runner {
        cases: 500,
        failure_persistence: None,
        ..Runner::default()
    }
}

/// Every key the loader knows, by section, and a few it does not.
const KEYS: &[&str] = &[
    "server.debug",
    "server.workers",
    "server.maxSockets",
    "server.tcpTimeout",
    "server.deadBackendTTL",
    "server.retryOnError",
    "server.accessLog",
    "server.accessLogFormat",
    "server.httpKeepAlive",
    "server.deadBackendOn500",
    "server.staticDir",
    "server.lruCache.size",
    "server.lruCache.ttl",
    "server.memoryLimit",
    "server.memoryCheckInterval",
    "server.gracefulWait",
    "server.forceSecure",
    "server.stickySessions",
    "server.stickySecret",
    "server.maxConnections",
    "server.port",
    "server.address",
    "server.https.port",
    "server.https.key",
    "server.https.cert",
    "http.port",
    "http.bind",
    "https.port",
    "https.bind",
    "https.key",
    "https.cert",
    "https.ca",
    "https.passphrase",
    "https.certDir",
    "driver",
    "user",
    "group",
    "logging.web.host",
    "logging.web.port",
    "logging.udp.host",
    "logging.udp.port",
    "logging.session",
    "metrics.host",
    "metrics.port",
    "metrics.session",
    "healthCheck.path",
    "healthCheck.interval",
    "healthCheck.timeout",
    "healthCheck.unhealthy",
    "healthCheck.healthy",
    "redisHost",
    "redisPort",
    "redisPassword",
    "redisDatabase",
    "redisMasterHost",
    "redisMasterPort",
    "unknownKey",
    "server.unknownKey",
];

/// Values of every JSON type. Strings are IP literals, driver URLs, paths and numbers, never a
/// name a bind address would send to DNS.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(65_536),
            Just(i64::MAX),
            any::<i64>()
        ]
        .prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "0.0.0.0",
            "::1",
            "[::1]",
            "127.0.0.1",
            "redis://:p@127.0.0.1:1/2#x",
            "redis-sentinel://127.0.0.1:1,127.0.0.1:2/m/3#p",
            "redis-cluster://127.0.0.1:1",
            "redis:",
            "file:routes.json",
            "/nonexistent/x.pem",
            "-5",
            "0",
        ])
        .prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(Value::Array),
            btree_map("[a-z]{1,6}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Sets `value` at the dotted `key` of `document`, making the objects on the way (a non-object
/// on the way is replaced: the last write wins, as in any document).
fn set(document: &mut Map<String, Value>, key: &str, value: Value) {
    let mut parts = key.split('.').peekable();
    let mut here = document;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            here.insert(part.to_owned(), value);
            return;
        }
        let next = here
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        let Value::Object(next) = next else {
            return;
        };
        here = next;
    }
}

#[test]
fn no_document_makes_the_loader_panic_and_refusals_name_the_file() {
    let entry = (prop::sample::select(KEYS.to_vec()), value());
    proptest!(runner(), |(entries in vec(entry, 0..8))| {
        let mut document = Map::new();
        for (key, value) in entries {
            set(&mut document, key, value);
        }
        let text = Value::Object(document).to_string();
        if let Err(error) = Config::parse(&text, Path::new("config/config.json")) {
            let message = error.to_string();
            prop_assert!(message.starts_with("config/config.json"), "{}", message);
        }
    });
}

#[test]
fn no_text_makes_the_loader_panic() {
    proptest!(runner(), |(text in prop_oneof![any::<String>(), "[{}\\[\\]\":,0-9a-z ]{0,40}"])| {
        if let Err(error) = Config::parse(&text, Path::new("config/config.json")) {
            let message = error.to_string();
            prop_assert!(message.starts_with("config/config.json"), "{}", message);
        }
    });
}
