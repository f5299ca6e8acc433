//! The `acme` section: off when absent, its defaults, and the setups it refuses at load.

use super::*;
use crate::config::acme::{Challenge, LETS_ENCRYPT};

/// An https listener serving Redis certificates, for `acme` to build on.
fn https() -> String {
    let here = file!();
    format!(
        r#""https": {{"bind": "::1", "key": "{here}", "cert": "{here}", "redisCertificates": true}}"#
    )
}

#[test]
fn acme_is_off_without_its_section_and_defaults_to_http_01_on_demand() {
    assert_eq!(parse(&format!("{{{}}}", https())).config.acme, None);
    let acme = parse(&format!(r#"{{{}, "acme": {{}}}}"#, https()))
        .config
        .acme
        .unwrap();
    assert_eq!(acme.directory, LETS_ENCRYPT);
    assert_eq!(acme.challenge, Challenge::Http01);
    assert!(acme.on_demand);
    assert_eq!(acme.renew_before, Duration::from_secs(30 * 86_400));
    assert_eq!((acme.email, acme.directory_ca), (None, None));
}

#[test]
fn acme_keys_are_read() {
    let text = format!(
        r#"{{{}, "acme": {{"directory": "https://acme.test/dir", "email": "ops@example.test",
            "challenge": "tls-alpn-01", "onDemand": false, "renewBefore": 10}}}}"#,
        https()
    );
    let acme = parse(&text).config.acme.unwrap();
    assert_eq!(acme.directory, "https://acme.test/dir");
    assert_eq!(acme.email.as_deref(), Some("ops@example.test"));
    assert_eq!(acme.challenge, Challenge::TlsAlpn01);
    assert!(!acme.on_demand);
    assert_eq!(acme.renew_before, Duration::from_secs(10 * 86_400));
}

#[test]
fn acme_needs_the_redis_driver_and_redis_certificates() {
    let file = error(&format!(
        r#"{{{}, "driver": "file:routes.json", "acme": {{}}}}"#,
        https()
    ));
    assert!(
        file.starts_with("config/config.json: acme: needs the Redis driver"),
        "{file}"
    );
    let without = error(r#"{"acme": {}}"#);
    assert!(
        without.starts_with("config/config.json: acme: needs https.redisCertificates"),
        "{without}"
    );
}

#[test]
fn bad_acme_values_name_their_key() {
    let bad = |acme: &str| error(&format!(r#"{{{}, "acme": {acme}}}"#, https()));
    assert!(bad(r#"{"challenge": "dns-01"}"#).contains("acme.challenge: \"dns-01\""));
    assert!(bad(r#"{"directory": "ftp://x"}"#).contains("acme.directory: not an http(s) URL"));
    assert!(bad(r#"{"renewBefore": 0}"#).contains("acme.renewBefore: must be at least 1"));
    assert!(bad(r#"{"directoryCa": "/nonexistent/ca.pem"}"#)
        .contains("acme.directoryCa: cannot read /nonexistent/ca.pem"));
}
