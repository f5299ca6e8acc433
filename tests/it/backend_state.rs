//! `hipache backend drain|disable|enable`: a backend taken out of rotation without removing it,
//! seen by a running proxy from the next request on (Redis tracking), in the production shape (a
//! root master, workers as `nobody`); and `frontend ls|show --json`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::route_cli::{ok, refused};
use crate::support::raw_http::Response;
use crate::support::{wait_until, Backend, Config, Hipache, RedisServer, Request};

const HOST: &str = "state.test";

/// A root master with unprivileged workers, one worker so that "the next request" is one
/// worker's, and the frontend [b1, b2].
fn proxy(redis: &RedisServer, backends: [&Backend; 2], server: Value) -> (Hipache, PathBuf) {
    let urls = backends.map(Backend::url);
    redis.frontend(HOST, "app", &[&urls[0], &urls[1]]);
    let mut server = server;
    server["workers"] = json!(1);
    let config = Config::redis(redis).with(json!({
        "user": "nobody",
        "group": "nogroup",
        "server": server,
    }));
    let path = config.write();
    let hipache = Hipache::start(config);
    hipache.wait_for_tracking(redis);
    (hipache, path)
}

/// Sends requests until each backend answered one (bounded).
fn wait_for_both(hipache: &Hipache, backends: [&Backend; 2]) {
    wait_until(Duration::from_secs(10), "both backends to serve", || {
        hipache.get(HOST, "/").status == 200 && backends.iter().all(|b| b.request_count() > 0)
    });
}

fn show_json(path: &Path) -> Value {
    let printed = ok(path, &["frontend", "show", HOST, "--json"]);
    assert_eq!(printed.lines().count(), 1, "one document: {printed}");
    let parsed: Value = serde_json::from_str(&printed).expect("show --json is JSON");
    jq_parses(&printed);
    parsed
}

/// `jq .` accepts `printed` (scripts/test installs jq).
fn jq_parses(printed: &str) {
    let mut jq = Command::new("jq")
        .arg(".")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("jq cannot run ({e}); install it: apt-get install -y jq"));
    let mut stdin = jq.stdin.take().expect("jq stdin");
    stdin.write_all(printed.as_bytes()).expect("write to jq");
    drop(stdin);
    let output = jq.wait_with_output().expect("jq runs");
    assert!(output.status.success(), "jq refused {printed}: {output:?}");
}

fn states(shown: &Value) -> Vec<&str> {
    let backends = shown["backends"].as_array().expect("backends");
    backends
        .iter()
        .map(|b| b["state"].as_str().expect("state"))
        .collect()
}

#[test]
fn a_disabled_backend_gets_no_request_from_the_next_one_on_until_enabled() {
    let redis = RedisServer::start();
    let (b1, b2) = (Backend::named("b1"), Backend::named("b2"));
    let (hipache, path) = proxy(&redis, [&b1, &b2], json!({}));
    wait_for_both(&hipache, [&b1, &b2]);

    let printed = ok(&path, &["backend", "disable", HOST, &b2.url()]);

    let written = b2.normalised_url();
    assert_eq!(
        printed,
        format!("set {written} to disable in state:{HOST}\n")
    );
    let stored: Vec<String> = redis.query(&["HGETALL", &format!("state:{HOST}")]);
    assert_eq!(stored, [written.as_str(), "disable"]);
    let seen = b2.request_count();
    for _ in 0..40 {
        assert_eq!(hipache.get(HOST, "/").text(), "b1");
    }
    assert_eq!(b2.request_count(), seen, "a disabled backend got a request");
    let shown = show_json(&path);
    assert_eq!(shown["host"], HOST);
    assert_eq!(shown["id"], "app");
    assert_eq!(states(&shown), ["enabled", "disabled"]);
    assert_eq!(shown["backends"][1]["url"], b2.url());
    assert_eq!(shown["backends"][1]["index"], 1);
    assert_eq!(shown["backends"][1]["dead"], false);
    let text = ok(&path, &["frontend", "show", HOST]);
    assert!(text.contains("live, disabled"), "{text}");

    // Nothing is written for an unknown host or URL.
    let error = refused(&path, &["backend", "disable", "other.test", &b1.url()]);
    assert!(error.contains("other.test: no such frontend"), "{error}");
    let error = refused(&path, &["backend", "drain", HOST, "http://127.0.0.1:1"]);
    assert!(
        error.contains("is not a backend of this frontend"),
        "{error}"
    );
    let stored: Vec<String> = redis.query(&["HGETALL", &format!("state:{HOST}")]);
    assert_eq!(stored, [written.as_str(), "disable"]);

    let printed = ok(&path, &["backend", "enable", HOST, &b2.url()]);
    assert_eq!(
        printed,
        format!("removed {written} from state:{HOST} (enabled)\n")
    );
    assert_eq!(redis.query::<i64>(&["EXISTS", &format!("state:{HOST}")]), 0);
    wait_until(Duration::from_secs(10), "b2 to serve again", || {
        hipache.get(HOST, "/").text() == "b2"
    });
}

fn cookie_of(response: &Response) -> String {
    let set = response.header("set-cookie").expect("a Set-Cookie field");
    set.split(';').next().expect("a pair").to_owned()
}

#[test]
fn a_draining_backend_keeps_its_sticky_clients_and_takes_no_new_one() {
    let redis = RedisServer::start();
    let (b1, b2) = (Backend::named("b1"), Backend::named("b2"));
    let (hipache, path) = proxy(&redis, [&b1, &b2], json!({ "stickySessions": true }));
    let first = hipache.get(HOST, "/");
    let (chosen, cookie) = (first.text(), cookie_of(&first));
    let (drained, other, other_name) = match chosen.as_str() {
        "b1" => (&b1, &b2, "b2"),
        _ => (&b2, &b1, "b1"),
    };

    ok(&path, &["backend", "drain", HOST, &drained.url()]);

    let sticky = Request::get(HOST, "/").header("Cookie", &cookie);
    for _ in 0..20 {
        // New clients go to the other backend, from the next request on.
        assert_eq!(hipache.get(HOST, "/").text(), other_name);
        assert_eq!(
            hipache.send(&sticky).text(),
            chosen,
            "a sticky client was moved"
        );
    }
    assert_eq!(states(&show_json(&path)), {
        let mut expected = ["enabled", "enabled"];
        expected[usize::from(chosen == "b2")] = "draining";
        expected
    });

    // Every backend out of rotation for new clients: the all-dead answer; the sticky one stays.
    ok(&path, &["backend", "disable", HOST, &other.url()]);
    hipache
        .get(HOST, "/")
        .assert_error_page(502, "Application Not Responding");
    assert_eq!(hipache.send(&sticky).text(), chosen);

    ok(&path, &["backend", "enable", HOST, &drained.url()]);
    ok(&path, &["backend", "enable", HOST, &other.url()]);
    wait_until(Duration::from_secs(10), "new clients on both again", || {
        hipache.get(HOST, "/").text() == chosen
    });
}

#[test]
fn ls_json_is_one_document_of_every_frontend() {
    let redis = RedisServer::start();
    redis.frontend(
        "a.test",
        "app\u{1b}[2J\"quoted\"",
        &["http://127.0.0.1:8080"],
    );
    redis.frontend(
        "b.test",
        "other",
        &["http://127.0.0.1:8081", "http://127.0.0.1:8082"],
    );
    let config = Config::redis(&redis);
    let path = config.write();

    let printed = ok(&path, &["frontend", "ls", "--json"]);

    assert_eq!(printed.lines().count(), 1, "one document: {printed}");
    jq_parses(&printed);
    let parsed: Value = serde_json::from_str(&printed).expect("ls --json is JSON");
    assert_eq!(
        parsed,
        json!([
            {"host": "a.test", "id": "app\u{1b}[2J\"quoted\"", "backends": 1},
            {"host": "b.test", "id": "other", "backends": 2},
        ])
    );
}
