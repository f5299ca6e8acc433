//! `--dry` refuses what a start would refuse: an access log it cannot open, an unknown user or
//! group, a taken port, a certificate that does not load, a missing routes file. Each failure
//! exits 1 (as the start would) and names the file, the key and the cause.

use std::net::TcpListener;
use std::path::Path;
use std::process::Output;

use serde_json::{json, Value};

use crate::support::hipache::run_to_exit;
use crate::support::tls;

/// A config that passes every check: a free port, an access log in `dir`, a file driver.
fn valid(dir: &Path) -> Value {
    let routes = dir.join("routes.json");
    std::fs::write(
        &routes,
        r#"{"frontend:a.test": ["a", "http://127.0.0.1:1"]}"#,
    )
    .expect("write routes");
    json!({
        "server": {"accessLog": dir.join("access.log")},
        "http": {"port": 0, "bind": ["127.0.0.1"]},
        "driver": format!("file:{}", routes.display()),
        "user": "root",
    })
}

/// Runs `hipache --dry` on `config` merged over `valid`; returns the output and the file name.
fn dry(dir: &Path, changes: &Value) -> (Output, String) {
    let mut config = valid(dir);
    merge(&mut config, changes);
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).expect("write config");
    let path = path.display().to_string();
    (run_to_exit(&["--dry", "--config", &path]), path)
}

fn merge(base: &mut Value, changes: &Value) {
    match (base, changes) {
        (Value::Object(base), Value::Object(changes)) => {
            for (key, value) in changes {
                merge(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, changes) => *base = changes.clone(),
    }
}

/// Exit status 1 and a stderr naming the config file and each of `needles`.
fn assert_refused(output: &Output, file: &str, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(output.stdout.is_empty(), "no config printed on failure");
    for needle in std::iter::once(&file).chain(needles) {
        assert!(stderr.contains(needle), "{needle:?} in:\n{stderr}");
    }
}

#[test]
fn a_valid_config_passes_every_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, cert) = tls::cert(&["a.test"]).write(dir.path(), "a");
    let (output, _) = dry(
        dir.path(),
        &json!({"https": {"port": 0, "bind": "127.0.0.1", "key": key, "cert": cert}}),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stderr:\n{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("http.bind = 127.0.0.1:0"));
}

#[test]
fn access_log_that_cannot_be_opened_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("no-such-folder").join("access.log");
    let (output, file) = dry(dir.path(), &json!({"server": {"accessLog": log}}));
    let log = log.display().to_string();
    assert_refused(
        &output,
        &file,
        &["server.accessLog", &log, "No such file or directory"],
    );
}

#[test]
fn existing_access_log_is_opened_without_truncating_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    std::fs::write(&log, "earlier line\n").expect("write log");
    let (output, _) = dry(dir.path(), &json!({}));
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        std::fs::read_to_string(&log).expect("read log"),
        "earlier line\n"
    );
}

/// Started as root, workers become `user`: a name the system does not know stops the start.
/// Started as anyone else, hipache never switches, so neither the start nor `--dry` cares.
#[test]
fn unknown_user_or_group_is_refused_when_running_as_root() {
    let dir = tempfile::tempdir().expect("temp dir");
    let as_root = nix::unistd::Uid::effective().is_root();
    let (output, file) = dry(dir.path(), &json!({"user": "no-such-user-hipache"}));
    if as_root {
        assert_refused(&output, &file, &["\"no-such-user-hipache\"", "user"]);
    } else {
        assert!(output.status.success(), "{output:?}");
    }
    let (output, file) = dry(
        dir.path(),
        &json!({"user": "nobody", "group": "no-such-group-hipache"}),
    );
    if as_root {
        assert_refused(&output, &file, &["\"no-such-group-hipache\"", "group"]);
    } else {
        assert!(output.status.success(), "{output:?}");
    }
}

#[test]
fn taken_port_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port();
    let (output, file) = dry(dir.path(), &json!({"http": {"port": port}}));
    let address = format!("127.0.0.1:{port}");
    assert_refused(&output, &file, &["http.bind", &address, "in use"]);
    // A port nobody holds passes (a freed port could be taken again by a parallel test).
    let (output, _) = dry(dir.path(), &json!({"http": {"port": 0}}));
    assert!(output.status.success(), "a free port: {output:?}");
}

#[test]
fn taken_admin_port_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port();
    let web = json!({"logging": {"web": {"host": "127.0.0.1", "port": port}}});
    let (output, file) = dry(dir.path(), &web);
    let address = format!("127.0.0.1:{port}");
    assert_refused(&output, &file, &["logging.web", &address, "in use"]);
    let free = json!({"logging": {"web": {"host": "127.0.0.1", "port": 0}}});
    let (output, _) = dry(dir.path(), &free);
    assert!(output.status.success(), "a free port: {output:?}");
}

#[test]
fn certificate_that_does_not_load_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, _) = tls::cert(&["a.test"]).write(dir.path(), "a");
    let cert = dir.path().join("garbage.pem");
    std::fs::write(&cert, "not a certificate\n").expect("write cert");
    let (output, file) = dry(
        dir.path(),
        &json!({"https": {"port": 0, "bind": "127.0.0.1", "key": key, "cert": cert}}),
    );
    assert_refused(&output, &file, &[&cert.display().to_string()]);
}

#[test]
fn missing_routes_file_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let routes = dir.path().join("absent.json");
    let (output, file) = dry(
        dir.path(),
        &json!({"driver": format!("file:{}", routes.display())}),
    );
    let routes = routes.display().to_string();
    assert_refused(&output, &file, &["driver", &routes]);
}

/// The last line of stderr is the verdict, as `nginx -t` ends: a failure, a success, or a
/// success that says which Redis server does not answer (a start with Redis down still serves
/// once it answers, so it is said, not refused).
#[test]
fn dry_ends_with_a_one_line_verdict_that_says_whether_redis_answers() {
    let last_line = |output: &Output| {
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        stderr.lines().last().unwrap_or_default().to_owned()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = crate::support::RedisServer::start();
    let answering = json!({"driver": redis.url()});
    let (output, file) = dry(dir.path(), &answering);
    assert!(output.status.success());
    assert_eq!(
        last_line(&output),
        format!("hipache: configuration {file}: test is successful")
    );

    // Port 1: privileged, and no test listens there (a port released by this test could be
    // taken by another one's Redis meanwhile).
    let silent_url = "redis://127.0.0.1:1";
    let (output, file) = dry(dir.path(), &json!({"driver": silent_url}));
    assert!(output.status.success());
    let verdict = last_line(&output);
    assert!(
        verdict.starts_with(&format!(
            "hipache: configuration {file}: test is successful, but "
        )) && verdict.contains(silent_url)
            && verdict.contains("does not answer"),
        "{verdict}"
    );

    let (output, file) = dry(dir.path(), &json!({"user": "no-such-user-hipache"}));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        last_line(&output),
        format!("hipache: configuration {file}: test failed")
    );
}
