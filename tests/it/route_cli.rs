//! The route CLI (`hipache frontend ...`, `hipache backend ...`) against a running proxy, for both
//! drivers: what it writes is Hipache's layout, and the proxy serves it without a restart.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;

use crate::freshness::wait_for_tracking;
use crate::support::hipache::{command_to_exit, run_to_exit, BINARY};
use crate::support::{wait_until, Backend, Config, Hipache, RedisServer};

/// `hipache --config <config> <args...>`, to its exit.
pub(crate) fn cli(config: &Path, args: &[&str]) -> Output {
    let mut full = vec!["--config", config.to_str().expect("utf-8 config path")];
    full.extend_from_slice(args);
    run_to_exit(&full)
}

/// Runs the CLI and expects success; returns stdout.
pub(crate) fn ok(config: &Path, args: &[&str]) -> String {
    let output = cli(config, args);
    assert!(
        output.status.success(),
        "hipache {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 stdout")
}

/// Runs the CLI and expects exit status 1; returns stderr.
pub(crate) fn refused(config: &Path, args: &[&str]) -> String {
    let output = cli(config, args);
    assert_eq!(
        output.status.code(),
        Some(1),
        "hipache {args:?}: {output:?}"
    );
    assert!(output.stdout.is_empty(), "{output:?}");
    String::from_utf8(output.stderr).expect("utf-8 stderr")
}

fn list(redis: &RedisServer, key: &str) -> Vec<String> {
    redis.query(&["LRANGE", key, "0", "-1"])
}

#[test]
fn frontend_added_with_the_cli_is_served_on_the_next_request() {
    let (redis, b1) = (RedisServer::start(), Backend::named("b1"));
    let config = Config::redis(&redis);
    let path = config.write();
    let hipache = Hipache::start(config);
    wait_for_tracking(&hipache, 1);
    // The proxy has now cached "no frontend" for the host.
    hipache
        .get("app.local", "/")
        .assert_error_page(400, "No Application Configured");

    ok(&path, &["frontend", "add", "App.Local", "app", &b1.url()]);

    assert_eq!(hipache.get("app.local", "/").text(), "b1");
    assert_eq!(list(&redis, "frontend:app.local"), ["app", &b1.url()]);
}

#[test]
fn backend_rm_keeps_each_dead_mark_on_its_backend() {
    let redis = RedisServer::start();
    let (b1, b2, b3) = (
        Backend::named("b1"),
        Backend::named("b2"),
        Backend::named("b3"),
    );
    let config = Config::redis(&redis);
    let path = config.write();
    let hipache = Hipache::start(config);
    wait_for_tracking(&hipache, 1);
    ok(
        &path,
        &[
            "frontend",
            "add",
            "app.local",
            "app",
            &b1.url(),
            &b2.url(),
            &b3.url(),
        ],
    );
    // A health checker found b3 (index 2) dead.
    redis.sadd("dead:app.local", "2");
    let _: i64 = redis.query(&["EXPIRE", "dead:app.local", "100"]);

    ok(&path, &["backend", "rm", "app.local", &b1.url()]);

    // b3 is now index 1, and still dead, for the time it had left.
    assert_eq!(
        list(&redis, "frontend:app.local"),
        ["app", &b2.url(), &b3.url()]
    );
    assert_eq!(redis.smembers("dead:app.local"), ["1"]);
    assert!((1..=100).contains(&redis.ttl("dead:app.local")));
    for _ in 0..20 {
        assert_eq!(hipache.get("app.local", "/").text(), "b2");
    }

    ok(&path, &["backend", "add", "app.local", &b1.url()]);
    assert_eq!(
        list(&redis, "frontend:app.local"),
        ["app", &b2.url(), &b3.url(), &b1.url()]
    );
    assert_eq!(redis.smembers("dead:app.local"), ["1"]);
    wait_until(Duration::from_secs(5), "b1 to serve again", || {
        hipache.get("app.local", "/").text() == "b1"
    });
}

#[test]
fn removing_a_dead_backend_does_not_hide_the_one_that_takes_its_index() {
    let redis = RedisServer::start();
    let refusing = Backend::builder().name("refusing").refusing().start();
    let (b2, b3) = (Backend::named("b2"), Backend::named("b3"));
    redis.frontend("app.local", "app", &[&refusing.url(), &b2.url(), &b3.url()]);
    let config = Config::redis(&redis);
    let path = config.write();
    let hipache = Hipache::start(config);
    // The proxy finds index 0 dead, in Redis and in its worker's own memory.
    wait_until(
        Duration::from_secs(5),
        "a request to try the refusing backend",
        || {
            hipache.get("app.local", "/");
            redis.smembers("dead:app.local") == ["0"]
        },
    );

    ok(&path, &["backend", "rm", "app.local", &refusing.url()]);

    // b2 now has index 0: the worker's mark was about the refusing backend, not about b2.
    assert!(redis.smembers("dead:app.local").is_empty());
    let served: Vec<String> = (0..30)
        .map(|_| hipache.get("app.local", "/").text())
        .collect();
    assert!(served.iter().any(|name| name == "b2"), "{served:?}");
    assert!(
        served.iter().all(|name| name == "b2" || name == "b3"),
        "{served:?}"
    );
}

#[test]
fn frontend_rm_removes_the_host_and_its_dead_marks() {
    let (redis, b1) = (RedisServer::start(), Backend::named("b1"));
    redis.frontend("app.local", "app", &[&b1.url()]);
    redis.sadd("dead:app.local", "0");
    let config = Config::redis(&redis);
    let path = config.write();
    let hipache = Hipache::start(config);
    wait_for_tracking(&hipache, 1);

    ok(&path, &["frontend", "rm", "app.local"]);

    hipache
        .get("app.local", "/")
        .assert_error_page(400, "No Application Configured");
    let exists: i64 = redis.query(&["EXISTS", "frontend:app.local", "dead:app.local"]);
    assert_eq!(exists, 0);
    let error = refused(&path, &["frontend", "rm", "app.local"]);
    assert_eq!(error, "hipache: app.local: no such frontend\n");
    let error = refused(&path, &["frontend", "show", "nowhere.local"]);
    assert_eq!(error, "hipache: nowhere.local: no such frontend\n");
}

#[test]
fn show_lists_backends_by_index_with_dead_marks_and_their_time_left() {
    let redis = RedisServer::start();
    let config = Config::redis(&redis);
    let path = config.write();
    redis.frontend(
        "app.local",
        "app",
        &["http://10.0.0.1:80", "http://10.0.0.2:80"],
    );
    redis.sadd("dead:app.local", "1");
    let _: i64 = redis.query(&["EXPIRE", "dead:app.local", "100"]);

    let shown = ok(&path, &["frontend", "show", "app.local"]);

    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines[0], "app.local  id app");
    assert_eq!(lines[1], "  0  http://10.0.0.1:80  live");
    assert!(
        lines[2].starts_with("  1  http://10.0.0.2:80  dead (") && lines[2].ends_with(" s left)"),
        "{shown}"
    );
    assert_eq!(lines.len(), 3, "{shown}");
}

#[test]
fn ls_walks_every_frontend_with_scan_not_keys() {
    let redis = RedisServer::start();
    let config = Config::redis(&redis);
    let path = config.write();
    // More keys than one SCAN step returns, so the cursor loop is exercised.
    let mut conn = redis.connection();
    let mut pipe = ::redis::pipe();
    for n in 0..2_500 {
        pipe.rpush(
            format!("frontend:h{n:04}.local"),
            &["id", "http://10.0.0.1"],
        )
        .ignore();
    }
    pipe.rpush("frontend:multi.local", &["m", "http://a", "http://b"])
        .ignore()
        .set("unrelated", "1")
        .ignore();
    let () = pipe.query(&mut conn).expect("fill redis");
    // KEYS would block the server on a large keyspace: forbid it to the CLI's user.
    let _: String = redis.query(&["ACL", "SETUSER", "default", "-keys"]);

    let listed = ok(&path, &["frontend", "ls"]);

    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2_501, "{listed}");
    assert_eq!(lines[0], "h0000.local  id  1 backend");
    assert_eq!(lines[2_500], "multi.local  m   2 backends");
}

#[test]
fn bad_urls_are_refused_naming_the_url_and_the_cause() {
    let redis = RedisServer::start();
    let config = Config::redis(&redis);
    let path = config.write();

    let error = refused(
        &path,
        &[
            "frontend",
            "add",
            "app.local",
            "app",
            "http://10.0.0.1",
            "10.0.0.2:80",
        ],
    );
    assert_eq!(
        error,
        "hipache: \"10.0.0.2:80\": invalid backend url: missing scheme (expected http://host:port)\n"
    );
    let error = refused(&path, &["backend", "add", "app.local", "http://h:99999"]);
    assert_eq!(
        error,
        "hipache: \"http://h:99999\": invalid backend url: invalid port\n"
    );
    let keys: Vec<String> = redis.query(&["KEYS", "*"]);
    assert!(keys.is_empty(), "{keys:?}");
}

#[test]
fn a_cluster_driver_is_refused_with_a_reason_and_nothing_is_written() {
    // A real node of this Redis would accept the edit's cross-key transaction; a cluster would
    // not, so the command must refuse before it talks to any node.
    let redis = RedisServer::start();
    let driver = redis.url().replacen("redis://", "redis-cluster://", 1);
    let config = Config::redis(&redis).with(serde_json::json!({ "driver": driver }));
    let path = config.write();

    let error = refused(
        &path,
        &["frontend", "add", "app.local", "app", "http://h:1"],
    );

    assert!(error.contains("redis-cluster"), "{error}");
    let keys: Vec<String> = redis.query(&["KEYS", "*"]);
    assert!(keys.is_empty(), "{keys:?}");
}

#[test]
fn edits_go_to_the_write_server_under_the_read_urls_prefix() {
    let (write, read) = (RedisServer::start(), RedisServer::start());
    let port = write.url().rsplit(':').next().expect("port").to_owned();
    let _: String = read.query(&["REPLICAOF", "127.0.0.1", &port]);
    wait_until(Duration::from_secs(10), "the replica to sync", || {
        read.query::<String>(&["INFO", "replication"])
            .contains("master_link_status:up")
    });
    let b1 = Backend::named("b1");
    let driver = json!([format!("{}#pfx:", read.url()), write.url()]);
    let config = Config::redis(&read).with(json!({ "driver": driver }));
    let path = config.write();
    let hipache = Hipache::start(config);

    // The read server is a read-only replica: a write sent there would fail.
    ok(&path, &["frontend", "add", "app.local", "app", &b1.url()]);

    assert_eq!(list(&write, "pfx:frontend:app.local"), ["app", &b1.url()]);
    wait_until(Duration::from_secs(10), "the proxy to serve b1", || {
        hipache.get("app.local", "/").text() == "b1"
    });
    assert!(ok(&path, &["frontend", "ls"]).starts_with("app.local  app  1 backend"));
}

#[test]
fn the_file_driver_is_edited_in_place_and_served_without_restart() {
    let (b1, b2) = (Backend::named("b1"), Backend::named("b2"));
    let dir = tempfile::tempdir().expect("routes dir");
    let routes = dir.path().join("routes.json");
    let other = json!({"frontend:other.local": ["other", b2.url()], "hchecker_ping": 1});
    std::fs::write(&routes, other.to_string()).expect("routes file");
    let config = Config::file(&routes);
    let path = config.write();
    let hipache = Hipache::start(config);

    ok(&path, &["frontend", "add", "app.local", "app", &b1.url()]);

    wait_until(Duration::from_secs(5), "app.local to be served", || {
        hipache.get("app.local", "/").text() == "b1"
    });
    assert_eq!(hipache.get("other.local", "/").text(), "b2");
    let text = std::fs::read_to_string(&routes).expect("routes file");
    let expected = format!(
        "{{\n    \"frontend:app.local\": [\"app\", \"{b1}\"],\n    \
         \"frontend:other.local\": [\"other\", \"{b2}\"],\n    \"hchecker_ping\": 1\n}}\n",
        b1 = b1.url(),
        b2 = b2.url()
    );
    assert_eq!(text, expected);

    ok(&path, &["backend", "add", "app.local", &b2.url()]);
    ok(&path, &["backend", "rm", "app.local", &b1.url()]);
    wait_until(Duration::from_secs(5), "app.local to move to b2", || {
        hipache.get("app.local", "/").text() == "b2"
    });
    let error = refused(&path, &["backend", "add", "app.local", "b1.local"]);
    assert!(
        error.contains("\"b1.local\": invalid backend url: missing scheme"),
        "{error}"
    );
    ok(&path, &["frontend", "rm", "app.local"]);
    wait_until(Duration::from_secs(5), "app.local to be gone", || {
        hipache.get("app.local", "/").status == 400
    });
    assert_eq!(
        ok(&path, &["frontend", "ls"]),
        "other.local  other  1 backend\n"
    );
}

#[test]
fn settings_flavor_picks_the_config_the_daemon_would() {
    let dir = tempfile::tempdir().expect("work dir");
    std::fs::create_dir(dir.path().join("config")).expect("config dir");
    let config = json!({"driver": "file:routes_cli.json"});
    std::fs::write(
        dir.path().join("config/config_cli.json"),
        config.to_string(),
    )
    .expect("config");
    let run = |args: &[&str]| {
        let mut command = Command::new(BINARY);
        command
            .args(args)
            .current_dir(dir.path())
            .env("SETTINGS_FLAVOR", "cli");
        command_to_exit(command)
    };

    let added = run(&["frontend", "add", "app.local", "app", "http://10.0.0.1"]);

    assert!(added.status.success(), "{added:?}");
    let routes =
        std::fs::read_to_string(dir.path().join("config/routes_cli.json")).expect("routes");
    assert!(
        routes.contains("\"frontend:app.local\": [\"app\", \"http://10.0.0.1\"]"),
        "{routes}"
    );
    let mixed = run(&["--dry", "frontend", "ls"]);
    assert_eq!(mixed.status.code(), Some(2), "{mixed:?}");
}

#[test]
fn input_the_proxy_could_not_use_is_refused_naming_the_argument_and_nothing_is_written() {
    let redis = RedisServer::start();
    let config = Config::redis(&redis);
    let path = config.write();
    let long_host = "a".repeat(10_000);
    let cases: [(&[&str], &str); 8] = [
        (
            &["frontend", "add", &long_host, "app", "http://10.0.0.1:80"],
            "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa... \
             (10000 bytes)\": invalid host: longer than 253 bytes",
        ),
        (
            &["frontend", "add", "app.local", "app\r\nforged", "http://10.0.0.1:80"],
            "\"app\\x0D\\x0Aforged\": invalid frontend id: it must not hold control characters",
        ),
        (
            &["frontend", "add", "app.local", "app", "http://exa mple.com:80"],
            "\"http://exa mple.com:80\": invalid backend url: invalid host: ' ' is not allowed",
        ),
        (
            &["frontend", "add", "app.local", "app", "http://127.0.0.1:80 http://127.0.0.1:81"],
            "\"http://127.0.0.1:80 http://127.0.0.1:81\": invalid backend url: invalid host",
        ),
        (
            &["frontend", "add", "app.local", "app", "ftp://10.0.0.1:21"],
            "\"ftp://10.0.0.1:21\": invalid backend url: unsupported scheme \"ftp\"",
        ),
        (
            &["frontend", "add", "app.local", "app", "http://10.0.0.1:80/app"],
            "\"http://10.0.0.1:80/app\": invalid backend url: a path, query or fragment would be ignored",
        ),
        (
            &["frontend", "add", "Bad_Host..com", "app", "http://10.0.0.1:80"],
            "\"Bad_Host..com\": invalid host: empty label",
        ),
        (
            &["frontend", "add", "bücher.de", "app", "http://10.0.0.1:80"],
            "\"b\\xC3\\xBCcher.de\": invalid host: not ASCII (give the punycode form, xn--...)",
        ),
    ];
    for (args, expected) in cases {
        let error = refused(&path, args);
        assert!(
            error.starts_with(&format!("hipache: {expected}")),
            "{}: {error}",
            args[3]
        );
        assert_eq!(error.lines().count(), 1, "{error}");
        let keys: Vec<String> = redis.query(&["KEYS", "*"]);
        assert!(keys.is_empty(), "{args:?} wrote {keys:?}");
    }
}

#[test]
fn each_edit_prints_the_one_line_it_wrote() {
    let redis = RedisServer::start();
    let config = Config::redis(&redis);
    let path = config.write();
    let (a, b) = ("http://10.0.0.1:80", "http://10.0.0.2:80");

    assert_eq!(
        ok(&path, &["frontend", "add", "App.Local", "app", a]),
        format!("added frontend:app.local with id app and backends {a}\n")
    );
    assert_eq!(
        ok(&path, &["backend", "add", "app.local", b]),
        format!("added backend {b} to frontend:app.local\n")
    );
    assert_eq!(
        ok(&path, &["backend", "rm", "app.local", a]),
        format!("removed backend {a} from frontend:app.local\n")
    );
    assert_eq!(
        ok(
            &path,
            &["frontend", "add", "app.local", "v2", a, b, "--replace"]
        ),
        format!("wrote frontend:app.local with id v2 and backends {a} {b}\n")
    );
    assert_eq!(
        ok(&path, &["frontend", "rm", "app.local"]),
        "removed frontend:app.local and its dead marks\n"
    );
}

#[test]
fn ls_and_show_escape_what_redis_holds() {
    let redis = RedisServer::start();
    let config = Config::redis(&redis);
    let path = config.write();
    redis.frontend(
        "app.local",
        "app\x1b]0;owned\x07\r\n",
        &["http://10.0.0.1:80\x1b[2J"],
    );

    let listed = ok(&path, &["frontend", "ls"]);
    assert_eq!(
        listed,
        "app.local  app\\x1B]0;owned\\x07\\x0D\\x0A  1 backend\n"
    );
    let shown = ok(&path, &["frontend", "show", "app.local"]);
    assert!(
        shown.chars().all(|c| c == '\n' || !c.is_control()),
        "{shown:?}"
    );
    assert!(shown.contains("http://10.0.0.1:80\\x1B[2J"), "{shown:?}");
}

#[test]
fn a_frontend_the_cli_would_refuse_to_add_can_still_be_shown_and_removed() {
    let redis = RedisServer::start();
    let config = Config::redis(&redis);
    let path = config.write();
    redis.frontend("bad_host..com", "old", &["http://10.0.0.1:80"]);

    let shown = ok(&path, &["frontend", "show", "bad_host..com"]);
    assert!(shown.starts_with("bad_host..com  id old\n"), "{shown}");
    assert_eq!(
        ok(&path, &["frontend", "rm", "bad_host..com"]),
        "removed frontend:bad_host..com and its dead marks\n"
    );
    let keys: Vec<String> = redis.query(&["KEYS", "*"]);
    assert!(keys.is_empty(), "{keys:?}");
}
