//! Hipache's own files load with its defaults: the README sample of hipache-raft, the config files of
//! Hipache 0.4, an empty object, and the typed values of `server.*`, `user` and `--dry`.

use super::*;

const SEED_README: &str = r#"{ "server": { "debug": true, "accessLog": "/hipache/access.log", "port": 80, "address": ["0.0.0.0"], "workers": 2, "maxSockets": 100, "deadBackendTTL": 30, "tcpTimeout": 60, "retryOnError": 1, "deadBackendOn500": true, "httpKeepAlive": false }, "driver": "redis://:", "logging": { "web": { "port": 5000, "host": "127.0.0.1" }, "udp": { "port": 5001, "host": "127.0.0.1" }, "session": "hipache" }, "metrics": { "port": 8125, "host": "127.0.0.1", "session": "hipache" } }"#;

#[test]
fn seed_readme_sample_loads() {
    let loaded = parse(SEED_README);
    let c = &loaded.config;
    assert!(c.server.debug);
    assert_eq!(c.server.workers, 2);
    assert_eq!(c.server.tcp_timeout, Duration::from_secs(60));
    assert_eq!(c.server.retry_on_error, 1);
    assert_eq!(
        c.server.access_log,
        Some(PathBuf::from("/hipache/access.log"))
    );
    assert_eq!(c.http, vec![addr("0.0.0.0:80")]);
    assert!(
        c.https.is_empty(),
        "server.address binds https only with an https section"
    );
    let Driver::Redis { read, write } = &c.driver else {
        panic!("{:?}", c.driver)
    };
    assert_eq!(
        (read.host.as_str(), read.port, read.password.as_deref()),
        ("127.0.0.1", 6379, None)
    );
    assert_eq!(read, write);
    let logging = c.logging.as_ref().unwrap();
    assert_eq!(
        logging.web,
        Some(Endpoint {
            host: "127.0.0.1".into(),
            port: 5000
        })
    );
    assert_eq!(
        logging.udp,
        Some(Endpoint {
            host: "127.0.0.1".into(),
            port: 5001
        })
    );
    assert_eq!(logging.session, "hipache");
    let metrics = c.metrics.as_ref().unwrap();
    assert_eq!(
        (metrics.endpoint.port, metrics.session.as_str()),
        (8125, "hipache")
    );
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
}

#[test]
fn hipache_config_json_loads() {
    let c = parse(
        r#"{ "server": { "accessLog": "/var/log/hipache/hipache.log", "workers": 10, "maxSockets": 100,
             "deadBackendTTL": 30, "tcpTimeout": 30, "retryOnError": 3, "deadBackendOn500": true,
             "httpKeepAlive": false, "staticDir": null },
             "http": { "port": 80, "bind": [ "0.0.0.0" ] }, "driver": "redis://redis" }"#,
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.config.http, vec![addr("0.0.0.0:80")]);
    assert_eq!(c.config.server.static_dir, None);
    let Driver::Redis { read, .. } = &c.config.driver else {
        panic!()
    };
    assert_eq!(read.host, "redis");
}

#[test]
fn hipache_config_test_json_loads() {
    let c = parse(
        r#"{ "server": { "debug": true, "accessLog": "/tmp/proxy2_test_access.log", "workers": 2,
             "maxSockets": 100, "deadBackendTTL": 30, "tcpTimeout": 5, "retryOnError": 0,
             "deadBackendOn500": true, "httpKeepAlive": false }, "http": { "port": 1080 } }"#,
    )
    .config;
    assert_eq!(c.http, vec![addr("127.0.0.1:1080")]);
    assert_eq!(c.server.retry_on_error, 0);
    assert_eq!(c.server.tcp_timeout, Duration::from_secs(5));
}

#[test]
fn empty_object_gets_hipache_defaults() {
    let loaded = parse("{}");
    assert!(loaded.warnings.is_empty());
    let c = loaded.config;
    let s = &c.server;
    assert!(!s.debug && !s.http_keep_alive && s.dead_backend_on_500);
    assert_eq!((s.workers, s.max_sockets, s.retry_on_error), (10, 100, 3));
    assert_eq!(s.tcp_timeout, Duration::from_secs(30));
    assert_eq!(s.dead_backend_ttl, Duration::from_secs(30));
    assert_eq!(
        s.access_log,
        Some(PathBuf::from("/var/log/hipache/access.log"))
    );
    assert_eq!((s.static_dir.clone(), s.lru_cache.clone()), (None, None));
    assert_eq!(c.http, vec![addr("127.0.0.1:80")]);
    assert!(c.https.is_empty());
    assert_eq!(
        c.driver,
        Driver::Redis {
            read: RedisUrl::parse("redis:").unwrap(),
            write: RedisUrl::parse("redis:").unwrap()
        }
    );
    assert_eq!(
        (c.user.as_str(), c.group.as_str()),
        ("www-data", "www-data")
    );
    assert_eq!((c.logging, c.metrics), (None, None));
    assert_eq!(c.source, PathBuf::from("config/config.json"));
}

#[test]
fn access_log_null_or_empty_means_none() {
    assert_eq!(
        parse(r#"{"server": {"accessLog": null}}"#)
            .config
            .server
            .access_log,
        None
    );
    assert_eq!(
        parse(r#"{"server": {"accessLog": ""}}"#)
            .config
            .server
            .access_log,
        None
    );
}

#[test]
fn lru_cache_is_typed() {
    let c = parse(r#"{"server": {"lruCache": {"size": 500, "ttl": 5}}}"#).config;
    assert_eq!(
        c.server.lru_cache,
        Some(LruCache {
            size: 500,
            ttl: Duration::from_secs(5)
        })
    );
    let limits = |text| parse(text).config.server.cache_limits();
    assert_eq!(
        limits(r#"{"server": {"lruCache": {"size": 500, "ttl": 5}}}"#),
        CacheLimits {
            hosts: 500,
            max_age: Some(Duration::from_secs(5))
        }
    );
    let default = CacheLimits {
        hosts: 1_000_000,
        max_age: None,
    };
    assert_eq!(limits("{}"), default);
    assert_eq!(limits(r#"{"server": {"lruCache": null}}"#), default);
    assert_eq!(
        limits(r#"{"server": {"lruCache": {"ttl": 5}}}"#).hosts,
        1_000_000
    );
}

#[test]
fn user_may_be_a_name_or_uid() {
    let c = parse(r#"{"user": "root", "group": 0}"#).config;
    assert_eq!((c.user.as_str(), c.group.as_str()), ("root", "0"));
}

#[test]
fn censored_hides_secrets() {
    let here = file!();
    let text = format!(
        r#"{{"driver": "redis://:hunter2@10.0.0.1:6379", "https": {{"bind": "::1", "key": "{here}", "cert": "{here}", "passphrase": "topsecret"}}}}"#
    );
    let shown = parse(&text).config.censored().to_string();
    assert!(
        !shown.contains("hunter2") && !shown.contains("topsecret"),
        "{shown}"
    );
    assert!(
        shown.contains("<redacted>") && shown.contains("server.workers = 10"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("https.bind[0].key = {here}")),
        "{shown}"
    );
}
