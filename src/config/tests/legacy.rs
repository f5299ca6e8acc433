//! The 0.2/0.3 keys (`server.port`, `server.address`, `server.https`, `redis*`): they load, warn,
//! lose to their new spelling, and errors about them name the key as written.

use super::*;

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
fn old_server_https_section_carries_cert_dir() {
    let here = file!();
    let text = format!(
        r#"{{"server": {{"address": "127.0.0.1", "port": 8080,
              "https": {{"port": 8443, "key": "{here}", "cert": "{here}", "certDir": "src"}}}}}}"#
    );
    assert_eq!(parse(&text).config.cert_dir, Some(PathBuf::from("src")));
}

#[test]
fn errors_about_moved_keys_name_them_as_written() {
    assert!(
        error(r#"{"server": {"address": ["127.0.0.1", "no-such-host.invalid"]}}"#)
            .starts_with("config/config.json: server.address[1]: cannot resolve"),
    );
    let e = error(r#"{"server": {"https": {"bind": "::1", "key": "absent.key", "cert": "x"}}}"#);
    assert_eq!(
        e,
        "config/config.json: server.https.key: cannot read absent.key"
    );
    // With an https section, server.address binds it too: its binds are server.address's.
    let e = error(r#"{"server": {"address": "::1", "https": {"port": 8443}}}"#);
    assert!(
        e.starts_with("config/config.json: server.address[0]: needs a key and a cert"),
        "{e}"
    );
    let e = error(r#"{"redisHost": "10.0.0.1", "redisPort": "x"}"#);
    assert!(
        e.starts_with("config/config.json: redisHost, redisPort: "),
        "{e}"
    );
}

#[test]
fn new_form_keys_keep_their_own_names() {
    // http.bind was written by the operator: server.address did not fill it.
    let e =
        error(r#"{"server": {"address": "127.0.0.1"}, "http": {"bind": "no-such-host.invalid"}}"#);
    assert!(
        e.starts_with("config/config.json: http.bind[0]: cannot resolve"),
        "{e}"
    );
}

#[test]
fn warnings_about_moved_keys_name_them_as_written() {
    let loaded = parse(r#"{"server": {"https": {"ciphers": "HIGH"}}}"#);
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.starts_with("server.https.ciphers ignored")),
        "{:?}",
        loaded.warnings
    );
}
