//! Unit tests for `Config::parse`: both generations of Hipache files, defaults, warnings and the
//! messages of rejected files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Loaded {
    Config::parse(text, Path::new("config/config.json")).unwrap()
}

fn error(text: &str) -> String {
    Config::parse(text, Path::new("config/config.json"))
        .unwrap_err()
        .to_string()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

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
    // Hipache parsed an empty file as `{}`.
    assert_eq!(parse("  \n").config.server.workers, 10);
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
fn old_config_keys_load_with_warning() {
    let loaded = parse(r#"{"server": {"port": 8080, "address": ["127.0.0.1", "::1"]}}"#);
    assert_eq!(
        loaded.config.http,
        vec![addr("127.0.0.1:8080"), addr("[::1]:8080")]
    );
    assert!(loaded.config.https.is_empty());
    let w = loaded.warnings.join("\n");
    assert!(
        w.contains("server.port is deprecated; use http.port"),
        "{w}"
    );
    assert!(w.contains("server.address is deprecated"), "{w}");
}

#[test]
fn new_keys_win_over_old_ones() {
    let c = parse(
        r#"{"server": {"port": 8080, "address": "10.0.0.1"}, "http": {"port": 9090, "bind": "127.0.0.1"}}"#,
    );
    assert_eq!(c.config.http, vec![addr("127.0.0.1:9090")]);
}

#[test]
fn old_server_https_binds_server_address() {
    let key = file!();
    let text = format!(
        r#"{{"server": {{"port": 80, "address": ["127.0.0.1"],
              "https": {{"port": 8443, "key": "{key}", "cert": "{key}", "passphrase": "pw"}}}}}}"#
    );
    let loaded = parse(&text);
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("server.https is deprecated")),
        "{:?}",
        loaded.warnings
    );
    let https = &loaded.config.https;
    assert_eq!(https.len(), 1);
    assert_eq!(https[0].address, addr("127.0.0.1:8443"));
    assert_eq!(https[0].key, PathBuf::from(key));
    assert_eq!(https[0].passphrase.as_deref(), Some("pw"));
}

#[test]
fn redis_host_keys_build_the_driver() {
    let loaded = parse(
        r#"{"redisHost": "10.0.0.1", "redisPort": 6380, "redisPassword": "s3cret", "redisDatabase": 2,
            "redisMasterHost": "10.0.0.2", "redisMasterPort": "6381"}"#,
    );
    let Driver::Redis { read, write } = &loaded.config.driver else {
        panic!()
    };
    assert_eq!(
        (read.host.as_str(), read.port, read.database),
        ("10.0.0.1", 6380, 2)
    );
    assert_eq!(read.password.as_deref(), Some("s3cret"));
    assert_eq!(
        (write.host.as_str(), write.port, write.password.as_deref()),
        ("10.0.0.2", 6381, None)
    );
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.contains("redisHost") && w.contains("deprecated")));
}

#[test]
fn redis_host_keys_are_ignored_when_driver_is_set() {
    let loaded = parse(r#"{"redisHost": "10.0.0.1", "driver": "redis://10.0.0.9"}"#);
    let Driver::Redis { read, .. } = &loaded.config.driver else {
        panic!()
    };
    assert_eq!(read.host, "10.0.0.9");
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.contains("redisHost ignored")));
}

#[test]
fn unknown_key_warns_not_fails() {
    let loaded = parse(
        r#"{"server": {"fooBar": 1}, "http": {"bind": [{"address": "::1", "extra": true}]}, "top": {}}"#,
    );
    let w = loaded.warnings.join("\n");
    assert!(w.contains("unknown key server.fooBar ignored"), "{w}");
    assert!(w.contains("unknown key top ignored"), "{w}");
    assert!(w.contains("unknown key http.bind[0].extra ignored"), "{w}");
}

#[test]
fn wrong_type_names_the_file_and_key_path() {
    assert_eq!(
        error(r#"{"server": {"workers": "ten"}}"#),
        r#"config/config.json: server.workers: invalid type: string "ten", expected u32"#
    );
    assert!(error(r#"{"server": {"debug": "yes"}}"#)
        .starts_with("config/config.json: server.debug: invalid type"));
    assert!(error(r#"{"server": {"tcpTimeout": 2.5}}"#)
        .contains("server.tcpTimeout: invalid type: floating point"));
    let nested = error(r#"{"http": {"bind": ["::1", {"address": "::1", "port": "x"}]}}"#);
    assert!(
        nested.contains("http.bind[1].port: invalid type"),
        "{nested}"
    );
    assert_eq!(
        error("[]"),
        "config/config.json: the top level must be a JSON object"
    );
    assert_eq!(
        error(r#"{"server": 3}"#),
        "config/config.json: server: invalid type: integer `3`, expected an object"
    );
}

#[test]
fn invalid_values_are_errors() {
    assert_eq!(
        error(r#"{"server": {"workers": 0}}"#),
        "config/config.json: server.workers: must be at least 1"
    );
    assert!(
        error(r#"{"http": {"port": 70000}}"#).contains("http.port: invalid value: integer `70000`")
    );
    assert!(error(r#"{"metrics": {"host": "x"}}"#).contains("metrics.port: missing"));
}

#[test]
fn invalid_json_names_the_file_with_line_and_column() {
    let e = Config::parse("{\n  \"server\": {}\n", Path::new("config/config.json")).unwrap_err();
    let ConfigError::Syntax { line, column, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!((*line, *column), (3, 0));
    assert!(
        e.to_string()
            .starts_with("config/config.json: invalid JSON: EOF while parsing an object at line 3"),
        "{e}"
    );
    let trailing = error("{} x");
    assert!(
        trailing.contains("trailing characters at line 1 column 4"),
        "{trailing}"
    );
}

#[test]
fn load_names_the_missing_file() {
    let e = Config::load(Path::new("/nonexistent/hipache.json")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/nonexistent/hipache.json: cannot read the config file"
    );
}

#[test]
fn https_bind_without_key_is_an_error() {
    let cert = file!();
    let e = error(&format!(
        r#"{{"https": {{"bind": ["::1"], "cert": "{cert}"}}}}"#
    ));
    assert!(
        e.starts_with("config/config.json: https.bind[0]: needs a key and a cert"),
        "{e}"
    );
}

#[test]
fn unreadable_tls_file_names_key_and_path() {
    let here = file!();
    let e = error(&format!(
        r#"{{"https": {{"bind": "::1", "key": "{here}", "cert": "nope.pem"}}}}"#
    ));
    assert_eq!(e, "config/config.json: https.cert: cannot read nope.pem");
    let e = error(&format!(
        r#"{{"https": {{"bind": "::1", "key": "{here}", "cert": "{here}", "ca": "ca.pem"}}}}"#
    ));
    assert_eq!(e, "config/config.json: https.ca[0]: cannot read ca.pem");
}

#[test]
fn https_bind_objects_override_and_inherit() {
    let here = file!();
    let other = "src/config/mod.rs";
    let text = format!(
        r#"{{"https": {{"port": 8443, "key": "{here}", "cert": "{here}", "passphrase": "global", "ca": "{here}",
              "bind": ["127.0.0.1", {{"address": "::1", "port": 9443, "key": "{other}"}},
                       {{"address": "[::1]", "port": 9444, "key": "{other}", "passphrase": "own"}}]}}}}"#
    );
    let https = parse(&text).config.https;
    assert_eq!(https.len(), 3);
    assert_eq!(
        (https[0].address, https[0].passphrase.as_deref()),
        (addr("127.0.0.1:8443"), Some("global"))
    );
    assert_eq!(https[0].ca, vec![PathBuf::from(here)]);
    // A bind with its own key does not inherit the global key's passphrase.
    assert_eq!(
        (https[1].address, https[1].passphrase.as_deref()),
        (addr("[::1]:9443"), None)
    );
    assert_eq!(
        (https[1].key.clone(), https[1].cert.clone()),
        (PathBuf::from(other), PathBuf::from(here))
    );
    assert_eq!(https[2].passphrase.as_deref(), Some("own"));
}

#[test]
fn file_driver_resolves_relative_to_config_folder() {
    let c = parse(r#"{"driver": "file:routes_demo.json"}"#).config;
    assert_eq!(
        c.driver,
        Driver::File(PathBuf::from("config/routes_demo.json"))
    );
    let c = parse(r#"{"driver": ["file:///etc/hipache/routes.json"]}"#).config;
    assert_eq!(
        c.driver,
        Driver::File(PathBuf::from("/etc/hipache/routes.json"))
    );
    let c = Config::parse(r#"{"driver": "file:r.json"}"#, Path::new("hipache.json"))
        .unwrap()
        .config;
    assert_eq!(c.driver, Driver::File(PathBuf::from("r.json")));
}

#[test]
fn driver_arrays_and_unsupported_drivers() {
    let c = parse(r#"{"driver": ["redis://slave:1", "redis://master:2"]}"#).config;
    let Driver::Redis { read, write } = c.driver else {
        panic!()
    };
    assert_eq!(
        (read.host.as_str(), write.host.as_str()),
        ("slave", "master")
    );
    assert!(error(r#"{"driver": []}"#).contains("driver: expected 1 or 2 URLs, got 0"));
    assert!(error(r#"{"driver": ["redis:", "redis:", "redis:"]}"#).contains("got 3"));
    let e = error(r#"{"driver": "etcd://127.0.0.1:4001"}"#);
    assert!(
        e.starts_with("config/config.json: driver: unsupported driver") && e.contains("redis://"),
        "{e}"
    );
    assert!(error(r#"{"driver": "redis://h:notaport"}"#).contains("driver: "));
}

#[test]
fn bind_as_string_object_or_list() {
    let one = |text: &str| parse(text).config.http;
    assert_eq!(
        one(r#"{"http": {"port": 81, "bind": "127.0.0.1"}}"#),
        vec![addr("127.0.0.1:81")]
    );
    assert_eq!(
        one(r#"{"http": {"port": 81, "bind": {"address": "127.0.0.1", "port": 0}}}"#),
        vec![addr("127.0.0.1:0")]
    );
    assert_eq!(
        one(r#"{"http": {"port": 0, "bind": ["127.0.0.1", {"address": "0.0.0.0", "port": 82}]}}"#),
        vec![addr("127.0.0.1:0"), addr("0.0.0.0:82")]
    );
}

#[test]
fn ipv6_binds_with_or_without_brackets() {
    let c = parse(r#"{"http": {"port": 8080, "bind": ["::", "[::1]", "fe80::1"]}}"#).config;
    assert_eq!(
        c.http,
        vec![
            addr("[::]:8080"),
            addr("[::1]:8080"),
            addr("[fe80::1]:8080")
        ]
    );
}

#[test]
fn host_names_resolve_to_every_address() {
    let c = parse(r#"{"http": {"port": 8080, "bind": "localhost"}}"#).config;
    assert!(
        !c.http.is_empty()
            && c.http
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8080),
        "{:?}",
        c.http
    );
    assert!(error(r#"{"http": {"bind": "no-such-host.invalid"}}"#)
        .contains("http.bind[0]: cannot resolve"));
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

#[test]
fn user_may_be_a_name_or_uid() {
    let c = parse(r#"{"user": "root", "group": 0}"#).config;
    assert_eq!((c.user.as_str(), c.group.as_str()), ("root", "0"));
}

#[test]
fn node_tls_knobs_load_with_a_warning() {
    let loaded = parse(r#"{"https": {"ciphers": "HIGH", "honorCipherOrder": true}}"#);
    assert!(loaded.config.https.is_empty());
    let w = loaded.warnings.join("\n");
    assert!(
        w.contains("https.ciphers ignored") && w.contains("https.honorCipherOrder ignored"),
        "{w}"
    );
    assert!(!w.contains("secureProtocol"), "{w}");
}

#[test]
fn https_cert_dir_is_read_and_must_be_a_folder() {
    let here = file!();
    let text = format!(
        r#"{{"https": {{"bind": "127.0.0.1", "key": "{here}", "cert": "{here}", "certDir": "src/config"}}}}"#
    );
    let loaded = parse(&text);
    assert_eq!(loaded.config.cert_dir, Some(PathBuf::from("src/config")));
    assert!(loaded
        .config
        .censored()
        .to_string()
        .contains("https.certDir = src/config"));

    let e = error(&format!(
        r#"{{"https": {{"bind": "127.0.0.1", "key": "{here}", "cert": "{here}", "certDir": "no/such/dir"}}}}"#
    ));
    assert_eq!(
        e,
        "config/config.json: https.certDir: cannot read no/such/dir"
    );
}

#[test]
fn https_cert_dir_without_binds_is_ignored_with_warning() {
    let loaded = parse(r#"{"https": {"certDir": "src/config"}}"#);
    assert_eq!(loaded.config.cert_dir, None);
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w == "https.certDir ignored: https.bind is empty"));
}

#[test]
fn old_server_https_section_carries_cert_dir() {
    let here = file!();
    let text = format!(
        r#"{{"server": {{"address": "127.0.0.1", "port": 8080,
              "https": {{"port": 8443, "key": "{here}", "cert": "{here}", "certDir": "src"}}}}}}"#
    );
    assert_eq!(parse(&text).config.cert_dir, Some(PathBuf::from("src")));
}
