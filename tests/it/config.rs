//! The command line and the config file: `--dry`, broken configs, old keys, SIGTERM.

use serde_json::json;

use std::process::Command;

use crate::support::hipache::{command_to_exit, run_to_exit, BINARY};
use crate::support::{Config, Hipache, RedisServer};

fn write(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("config.json");
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

#[test]
fn dry_run_prints_the_effective_config_and_exits_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(
        &dir,
        r#"{"server": {"workers": 7, "tcpTimeout": 12, "accessLog": null}, "http": {"port": 0, "bind": ["127.0.0.1"]}, "driver": "redis://127.0.0.1:1"}"#,
    );

    let output = run_to_exit(&["--dry", "--config", &path]);

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "status {:?}", output.status);
    // Whole lines: the values given, and a default beside them.
    for expected in [
        "server.workers = 7",
        "server.tcpTimeout = 12s",
        "server.deadBackendTTL = 30s",
        "driver = redis://127.0.0.1:1/0",
    ] {
        assert!(
            stdout.lines().any(|line| line == expected),
            "{expected:?} in --dry output:\n{stdout}"
        );
    }
}

#[test]
fn invalid_json_fails_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(&dir, r#"{"server": {"workers": 1,}"#);

    let output = run_to_exit(&["--dry", "--config", &path]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a broken config must fail");
    assert!(stderr.contains(&path), "the file is named in:\n{stderr}");
}

#[test]
fn wrong_value_type_fails_naming_the_key_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(&dir, r#"{"server": {"workers": "ten"}}"#);

    let output = run_to_exit(&["--dry", "--config", &path]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a wrong type must fail");
    assert!(stderr.contains(&path), "the file is named in:\n{stderr}");
    assert!(
        stderr.contains("server.workers"),
        "the key is named in:\n{stderr}"
    );
}

#[test]
fn a_duration_given_as_text_fails_naming_the_value_and_the_unit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(&dir, r#"{"server": {"tcpTimeout": "30s"}}"#);

    let output = run_to_exit(&["--dry", "--config", &path]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{path}: server.tcpTimeout: invalid type: string \"30s\", expected a whole number of seconds"
        )),
        "{stderr}"
    );
}

#[test]
fn missing_config_file_fails_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.json").display().to_string();

    let output = run_to_exit(&["--dry", "--config", &path]);

    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains(&path));
}

#[test]
fn unreadable_config_file_says_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().display().to_string();

    let output = run_to_exit(&["--dry", "--config", &path]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{path}: cannot read the config file: Is a directory"
        )),
        "the OS reason in:\n{stderr}"
    );
}

#[test]
fn missing_default_file_says_where_settings_flavor_looked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(BINARY);
    command
        .arg("--dry")
        .current_dir(dir.path())
        .env("SETTINGS_FLAVOR", "nosuchflavor");

    let output = command_to_exit(command);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for expected in [
        "No such file or directory",
        "SETTINGS_FLAVOR=nosuchflavor selects config/config_nosuchflavor.json",
        "looked for in: config/config_nosuchflavor.json, ",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in:\n{stderr}");
    }
}

#[test]
fn empty_config_file_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(&dir, "\n");

    let output = run_to_exit(&["--dry", "--config", &path]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{path}: the file is empty")),
        "{stderr}"
    );
}

#[test]
fn unknown_key_warning_names_the_file_and_suggests_a_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(
        &dir,
        r#"{"server": {"wokers": 2, "accessLog": null}, "http": {"port": 0}}"#,
    );

    let output = run_to_exit(&["--dry", "--config", &path]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let expected =
        format!("{path}: unknown key server.wokers ignored; did you mean server.workers?");
    assert!(stderr.contains(&expected), "{expected:?} in:\n{stderr}");
}

#[test]
fn old_form_key_is_named_as_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(
        &dir,
        r#"{"server": {"port": 0, "address": ["127.0.0.1", "no-such-host.invalid"]}}"#,
    );

    let output = run_to_exit(&["--dry", "--config", &path]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{path}: server.address[1]: cannot resolve")),
        "{stderr}"
    );
}

#[test]
fn unknown_keys_do_not_prevent_starting() {
    let redis = RedisServer::start();
    let config = Config::redis(&redis).with(json!({"server": {"notAHipacheKey": 1}, "extra": {}}));

    let hipache = Hipache::start(config);

    assert_eq!(hipache.get("__ping__", "/").text(), "ok");
}

#[test]
fn old_form_server_port_and_address_still_start_the_proxy() {
    let redis = RedisServer::start();
    let config = Config::redis(&redis).with(json!({
        "http": null,
        "server": {"port": 0, "address": ["127.0.0.1"]}
    }));

    let hipache = Hipache::start(config);

    assert_eq!(hipache.get("__ping__", "/").text(), "ok");
}

#[test]
fn sigterm_exits_with_status_0() {
    let redis = RedisServer::start();
    let mut hipache = Hipache::start(Config::redis(&redis));

    let status = hipache.stop();

    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status:?}"
    );
}
