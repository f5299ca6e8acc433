//! Rejected files and unknown keys: every message names the file, the key path and the cause.

use super::*;

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
fn unknown_key_names_the_file_and_the_closest_known_key() {
    let loaded = parse(r#"{"server": {"acessLog": null, "wrkers": 2}, "workers": 2, "zzz": 1}"#);
    let w = &loaded.warnings;
    assert!(w.contains(
        &"config/config.json: unknown key server.acessLog ignored; did you mean server.accessLog?"
            .to_owned()
    ), "{w:?}");
    assert!(
        w.iter()
            .any(|w| w.ends_with("server.wrkers ignored; did you mean server.workers?")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|w| w.ends_with("key workers ignored; did you mean server.workers?")),
        "{w:?}"
    );
    assert!(
        w.contains(&"config/config.json: unknown key zzz ignored".to_owned()),
        "{w:?}"
    );
}

#[test]
fn empty_file_is_an_error() {
    for text in ["", "  \n"] {
        assert_eq!(
            error(text),
            "config/config.json: the file is empty (a configuration of defaults only is `{}`)"
        );
    }
}

#[test]
fn wrong_type_names_the_file_and_key_path() {
    assert_eq!(
        error(r#"{"server": {"workers": "ten"}}"#),
        r#"config/config.json: server.workers: invalid type: string "ten", expected a whole number"#
    );
    assert_eq!(
        error(r#"{"server": {"tcpTimeout": "30s"}}"#),
        r#"config/config.json: server.tcpTimeout: invalid type: string "30s", expected a whole number of seconds"#
    );
    assert_eq!(
        error(r#"{"healthCheck": {"timeout": -1}}"#),
        "config/config.json: healthCheck.timeout: invalid value: integer `-1`, expected a whole number of seconds"
    );
    assert_eq!(
        error(r#"{"server": {"memoryLimit": "1G"}}"#),
        r#"config/config.json: server.memoryLimit: invalid type: string "1G", expected a whole number of MiB"#
    );
    assert_eq!(
        error(r#"{"http": {"port": 70000}}"#),
        "config/config.json: http.port: invalid value: integer `70000`, expected a port number (0 to 65535)"
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
fn admin_page_on_a_proxied_address_is_refused() {
    let clash = error(
        r#"{"http": {"port": 8080, "bind": ["0.0.0.0"]}, "logging": {"web": {"host": "127.0.0.1", "port": 8080}}}"#,
    );
    assert_eq!(
        clash,
        "config/config.json: logging.web: 127.0.0.1:8080 is also a proxied listener \
         (0.0.0.0:8080); the admin page needs a port of its own"
    );
    let apart =
        r#"{"http": {"port": 8080}, "logging": {"web": {"host": "127.0.0.1", "port": 8081}}}"#;
    assert!(parse(apart).config.logging.is_some());
    let any_port = r#"{"http": {"port": 0}, "logging": {"web": {"port": 0}}}"#;
    assert!(parse(any_port).config.logging.is_some());
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
    // The OS reason is the error's source, which main prints after the message.
    let reason = std::error::Error::source(&e).map(ToString::to_string);
    assert!(reason.is_some_and(|r| r.contains("No such file")), "{e:?}");
}
