//! Our additions, each off by default: `healthCheck`, `server.forceSecure`,
//! `server.stickySessions`, `server.stickySecret`, `server.backendCa` and
//! `server.backendTlsVerify`, `server.accessLogFormat`.

use super::*;

#[test]
fn additions_are_off_in_a_hipache_file() {
    let c = parse(r#"{"server": {"workers": 2}}"#).config;
    assert_eq!(c.health_check, None);
    assert!(!c.server.force_secure && !c.server.sticky_sessions);
    assert_eq!(c.server.sticky_secret, None);
}

#[test]
fn health_check_takes_defaults_and_checks_its_values() {
    let c = parse(r#"{"healthCheck": {}}"#).config;
    let check = c.health_check.unwrap();
    assert_eq!(check.path, "/");
    assert_eq!(check.interval, Duration::from_secs(10));
    assert_eq!(check.timeout, Duration::from_secs(3));
    assert_eq!((check.unhealthy, check.healthy), (2, 2));
    let c = parse(
        r#"{"healthCheck": {"path": "/up?x=1", "interval": 5, "timeout": 1, "unhealthy": 3, "healthy": 1}}"#,
    )
    .config;
    let check = c.health_check.unwrap();
    assert_eq!(
        (check.path.as_str(), check.unhealthy, check.healthy),
        ("/up?x=1", 3, 1)
    );

    let e = error(r#"{"healthCheck": {"interval": 0}}"#);
    assert!(
        e.contains("healthCheck.interval") && e.contains("at least 1"),
        "{e}"
    );
    let e = error(r#"{"healthCheck": {"path": "up"}}"#);
    assert!(e.contains("healthCheck.path"), "{e}");
    let e = error(r#"{"healthCheck": {"path": "/a b"}}"#);
    assert!(e.contains("healthCheck.path"), "{e}");
    let e = error(r#"{"healthCheck": {"healthy": "two"}}"#);
    assert!(e.contains("healthCheck.healthy"), "{e}");
    let e = error(r#"{"driver": "redis-cluster://127.0.0.1:7000", "healthCheck": {}}"#);
    assert!(
        e.contains("healthCheck") && e.contains("redis-cluster"),
        "{e}"
    );
    let e = error(r#"{"driver": "file:routes.json", "healthCheck": {}}"#);
    assert!(
        e.contains("config/config.json") && e.contains("redis driver"),
        "{e}"
    );
}

#[test]
fn force_secure_without_https_is_ignored_with_a_warning() {
    let loaded = parse(r#"{"server": {"forceSecure": true}}"#);
    assert!(!loaded.config.server.force_secure);
    let w = loaded.warnings.join("\n");
    assert!(
        w.contains("server.forceSecure ignored: no https listener"),
        "{w}"
    );
}

#[test]
fn sticky_secret_is_never_printed() {
    let c = parse(r#"{"server": {"stickySessions": true, "stickySecret": "hunter2"}}"#).config;
    assert!(c.server.sticky_sessions);
    let shown = c.censored().to_string();
    assert!(
        shown.contains("server.stickySecret = <redacted>"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn backend_tls_defaults_to_system_roots_and_verification() {
    let c = parse(r#"{"server": {}}"#).config;
    assert_eq!(c.server.backend_trust.ca, None);
    assert!(c.server.backend_trust.ca_certs.is_empty());
    assert!(c.server.backend_trust.verify);
    let shown = c.censored().to_string();
    assert!(shown.contains("server.backendCa = (none"), "{shown}");
    assert!(shown.contains("server.backendTlsVerify = true"), "{shown}");
}

#[test]
fn backend_ca_is_read_and_parsed_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let pem = rcgen::generate_simple_self_signed(vec!["ca.test".to_owned()])
        .unwrap()
        .cert
        .pem();
    std::fs::write(&ca, pem).unwrap();
    let c = parse(&format!(
        r#"{{"server": {{"backendCa": "{}"}}}}"#,
        ca.display()
    ))
    .config;
    assert_eq!(c.server.backend_trust.ca.as_deref(), Some(ca.as_path()));
    assert_eq!(c.server.backend_trust.ca_certs.len(), 1);
    let shown = c.censored().to_string();
    assert!(
        shown.contains(&format!(
            "server.backendCa = {} (1 certificates)",
            ca.display()
        )),
        "{shown}"
    );

    let e = error(r#"{"server": {"backendCa": "nope.pem"}}"#);
    assert_eq!(
        e,
        "config/config.json: server.backendCa: cannot read nope.pem"
    );
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no pem here\n").unwrap();
    let e = error(&format!(
        r#"{{"server": {{"backendCa": "{}"}}}}"#,
        empty.display()
    ));
    assert!(
        e.starts_with("config/config.json: server.backendCa: ") && e.contains("no certificate"),
        "{e}"
    );
}

#[test]
fn backend_tls_verify_off_is_warned_about() {
    let loaded = parse(r#"{"server": {"backendTlsVerify": false}}"#);
    assert!(!loaded.config.server.backend_trust.verify);
    let w = loaded.warnings.join("\n");
    assert!(
        w.contains(
            "server.backendTlsVerify is false: certificates of https backends are not verified"
        ),
        "{w}"
    );
    assert!(loaded
        .config
        .censored()
        .to_string()
        .contains("server.backendTlsVerify = false"));
}

#[test]
fn access_log_format_is_hipache_json_or_an_error_naming_the_key() {
    use crate::config::AccessLogFormat;
    let format = |json: &str| parse(json).config.server.access_log_format;
    assert_eq!(format(r#"{"server": {}}"#), AccessLogFormat::Hipache);
    assert_eq!(
        format(r#"{"server": {"accessLogFormat": "hipache"}}"#),
        AccessLogFormat::Hipache
    );
    assert_eq!(
        format(r#"{"server": {"accessLogFormat": "json"}}"#),
        AccessLogFormat::Json
    );
    assert_eq!(
        error(r#"{"server": {"accessLogFormat": "JSON"}}"#),
        "config/config.json: server.accessLogFormat: must be \"hipache\" or \"json\""
    );
}
