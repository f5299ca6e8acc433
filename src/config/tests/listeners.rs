//! `http` and `https` listeners: bind forms, address resolution, TLS files and their inheritance.

use super::*;

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
fn redis_certificates_are_off_by_default_and_need_the_redis_driver() {
    let here = file!();
    let https = format!(r#""https": {{"bind": "::1", "key": "{here}", "cert": "{here}""#);
    assert!(!parse(&format!("{{{https}}}}}")).config.redis_certificates);
    let on = format!(r#"{https}, "redisCertificates": true}}"#);
    assert!(parse(&format!("{{{on}}}")).config.redis_certificates);
    let file = parse(&format!(r#"{{{on}, "driver": "file:routes.json"}}"#));
    assert!(!file.config.redis_certificates);
    assert!(
        file.warnings
            .iter()
            .any(|w| w.starts_with("https.redisCertificates ignored: the driver is not Redis")),
        "{:?}",
        file.warnings
    );
    let no_https = parse(r#"{"https": {"redisCertificates": true}}"#);
    assert!(!no_https.config.redis_certificates);
}
