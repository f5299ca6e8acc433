//! The access log: one Hipache-format line per proxied request, appended, reopened on SIGUSR1.

use std::time::Duration;

use crate::support::raw_http::Connection;
use crate::support::{wait_until, Backend, Config, Hipache, RedisServer, Request};

/// The fields of one line:
/// `::ffff:127.0.0.1 - - [24/Nov/2026:02:30:12 +0000] "GET /p HTTP/1.1" 200 12 "ref" "ua" "id" 0.012 0.011`
#[derive(Debug)]
struct Line {
    client: String,
    time: String,
    request: String,
    status: u16,
    bytes: u64,
    referer: String,
    user_agent: String,
    frontend: String,
    total_secs: f64,
    backend_secs: f64,
}

fn parse(line: &str) -> Line {
    let fail = || -> ! { panic!("access log line does not match Hipache's format: {line:?}") };
    let (client, rest) = line.split_once(" - - [").unwrap_or_else(|| fail());
    let (time, rest) = rest.split_once("] \"").unwrap_or_else(|| fail());
    let (request, rest) = rest.split_once("\" ").unwrap_or_else(|| fail());
    let (status, rest) = rest.split_once(' ').unwrap_or_else(|| fail());
    let (bytes, rest) = rest.split_once(" \"").unwrap_or_else(|| fail());
    let (referer, rest) = rest.split_once("\" \"").unwrap_or_else(|| fail());
    let (user_agent, rest) = rest.split_once("\" \"").unwrap_or_else(|| fail());
    let (frontend, rest) = rest.split_once("\" ").unwrap_or_else(|| fail());
    let (total, backend) = rest.split_once(' ').unwrap_or_else(|| fail());
    let is_js_number = |s: &str| {
        !s.is_empty()
            && s.parse::<f64>().is_ok_and(|v| v >= 0.0)
            && !s.ends_with('.')
            && (!s.contains('.') || !s.ends_with('0'))
    };
    assert!(
        is_js_number(total) && is_js_number(backend),
        "times in {line:?}"
    );
    assert_time_format(time, line);
    Line {
        client: client.to_owned(),
        time: time.to_owned(),
        request: request.to_owned(),
        status: status.parse().unwrap_or_else(|_| fail()),
        bytes: bytes.parse().unwrap_or_else(|_| fail()),
        referer: referer.to_owned(),
        user_agent: user_agent.to_owned(),
        frontend: frontend.to_owned(),
        total_secs: total.parse().unwrap_or_else(|_| fail()),
        backend_secs: backend.parse().unwrap_or_else(|_| fail()),
    }
}

/// `24/Nov/2026:02:30:12 +0000`.
fn assert_time_format(time: &str, line: &str) {
    let b = time.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    let ok = b.len() == 26
        && digits(0..2)
        && b[2] == b'/'
        && b[3..6].iter().all(u8::is_ascii_alphabetic)
        && b[6] == b'/'
        && digits(7..11)
        && b[11] == b':'
        && digits(12..14)
        && digits(15..17)
        && digits(18..20)
        && time.ends_with(" +0000");
    assert!(ok, "time {time:?} in {line:?}");
}

fn proxy_to(redis: &RedisServer, host: &str, id: &str, backend: &Backend) -> Hipache {
    redis.frontend(host, id, &[&backend.url()]);
    Hipache::start(Config::redis(redis))
}

#[test]
fn proxied_request_is_logged_with_hipache_fields() {
    let redis = RedisServer::start();
    let backend = Backend::named("twelve bytes");
    let hipache = proxy_to(&redis, "log.local", "log-app", &backend);

    let request = Request::get("log.local", "/path?q=1")
        .header("Referer", "http://ref.example/")
        .header("User-Agent", "it-test/1.0");
    assert_eq!(hipache.send(&request).status, 200);

    let lines = hipache.wait_access_log_lines(1);
    let line = parse(&lines[0]);
    assert_eq!(line.client, "::ffff:127.0.0.1");
    assert_eq!(line.request, "GET /path?q=1 HTTP/1.1");
    assert_eq!((line.status, line.bytes), (200, 12));
    assert_eq!(line.referer, "http://ref.example/");
    assert_eq!(line.user_agent, "it-test/1.0");
    assert_eq!(line.frontend, "log-app");
    assert!(line.total_secs >= line.backend_secs, "{line:?}");
    assert!(!line.time.is_empty());
}

#[test]
fn absent_referer_and_user_agent_are_logged_as_empty_strings() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let hipache = proxy_to(&redis, "log.local", "log-app", &backend);

    assert_eq!(hipache.get("log.local", "/").status, 200);

    let line = parse(&hipache.wait_access_log_lines(1)[0]);
    assert_eq!((line.referer.as_str(), line.user_agent.as_str()), ("", ""));
}

#[test]
fn bytes_are_those_of_each_response_on_a_keep_alive_connection() {
    let redis = RedisServer::start();
    let backend = Backend::named("seven b");
    let hipache = proxy_to(&redis, "log.local", "log-app", &backend);

    let mut connection = Connection::open(hipache.addr()).expect("connect to hipache");
    for _ in 0..2 {
        assert_eq!(connection.send(&Request::get("log.local", "/")).status, 200);
    }

    let lines = hipache.wait_access_log_lines(2);
    let bytes: Vec<u64> = lines.iter().map(|l| parse(l).bytes).collect();
    assert_eq!(bytes, [7, 7]);
}

#[test]
fn requests_that_reach_no_backend_are_not_logged() {
    let redis = RedisServer::start();
    let (b1, b2) = (Backend::named("b1"), Backend::named("b2"));
    redis.frontend("dead.local", "dead", &[&b1.url(), &b2.url()]);
    redis.sadd("dead:dead.local", "0");
    redis.sadd("dead:dead.local", "1");
    let live = Backend::named("live");
    let hipache = proxy_to(&redis, "live.local", "live", &live);

    assert_eq!(hipache.get("nobody.local", "/").status, 400);
    assert_eq!(hipache.get("dead.local", "/").status, 502);
    assert_eq!(hipache.get("live.local", "/marker").status, 200);

    let lines = hipache.wait_access_log_lines(1);
    assert_eq!(
        lines.len(),
        1,
        "only the proxied request is logged: {lines:?}"
    );
    assert_eq!(parse(&lines[0]).request, "GET /marker HTTP/1.1");
}

#[test]
fn failed_attempts_ending_in_502_are_logged() {
    let redis = RedisServer::start();
    let refusing = Backend::builder().refusing().start();
    redis.frontend("refused.local", "refused", &[&refusing.url()]);
    let hipache = Hipache::start(Config::redis(&redis).with(serde_json::json!({
        "server": {"retryOnError": 0}
    })));

    assert_eq!(hipache.get("refused.local", "/").status, 502);

    let line = parse(&hipache.wait_access_log_lines(1)[0]);
    assert_eq!((line.status, line.frontend.as_str()), (502, "refused"));
}

#[test]
fn sigusr1_reopens_the_access_log() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let hipache = proxy_to(&redis, "log.local", "log-app", &backend);
    assert_eq!(hipache.get("log.local", "/before").status, 200);
    hipache.wait_access_log_lines(1);

    let rotated = hipache.access_log().with_extension("log.1");
    std::fs::rename(hipache.access_log(), &rotated).expect("rotate the access log");
    hipache.signal(libc::SIGUSR1);

    wait_until(
        Duration::from_secs(5),
        "a line in the reopened access.log",
        || {
            assert_eq!(hipache.get("log.local", "/after").status, 200);
            hipache
                .access_log_lines()
                .iter()
                .any(|l| l.contains("GET /after HTTP/1.1"))
        },
    );
    let old = std::fs::read_to_string(&rotated).expect("rotated log");
    assert!(old.contains("GET /before HTTP/1.1"), "rotated file: {old}");
}

#[test]
fn a_frontend_id_or_header_with_a_newline_or_quote_cannot_forge_a_line() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let forged = "::ffff:6.6.6.6 - - [24/Nov/2026:02:30:12 +0000] \"GET /forged HTTP/1.1\" 200 0";
    redis.frontend("log.local", &format!("app\n{forged}"), &[&backend.url()]);
    // Production shape: a root master with unprivileged workers, which write the log.
    let hipache = Hipache::start(Config::redis(&redis).with(serde_json::json!({
        "user": "nobody",
        "group": "nogroup"
    })));

    let request = Request::get("log.local", "/real").header("User-Agent", "ua\" \"quoted");
    assert_eq!(hipache.send(&request).status, 200);

    let lines = hipache.wait_access_log_lines(1);
    assert_eq!(lines.len(), 1, "one request, one line: {lines:?}");
    let line = parse(&lines[0]);
    assert_eq!(line.request, "GET /real HTTP/1.1");
    assert_eq!(line.user_agent, "ua\\x22 \\x22quoted");
    assert_eq!(
        line.frontend,
        "app\\x0A::ffff:6.6.6.6 - - [24/Nov/2026:02:30:12 +0000] \\x22GET /forged HTTP/1.1\\x22 200 0"
    );
}

#[test]
fn a_frontend_id_with_a_newline_cannot_forge_a_process_log_line() {
    let redis = RedisServer::start();
    let refusing = Backend::builder().refusing().start();
    redis.frontend(
        "dead.local",
        "app\nFORGED ERROR hipache: root",
        &[&refusing.url()],
    );
    let hipache = Hipache::start(Config::redis(&redis));

    assert_eq!(hipache.get("dead.local", "/").status, 502);

    wait_until(
        Duration::from_secs(5),
        "the backend-is-dead warning",
        || {
            hipache
                .log_lines()
                .iter()
                .any(|l| l.contains("backend is dead"))
        },
    );
    let lines = hipache.log_lines();
    assert!(lines.iter().all(|l| !l.starts_with("FORGED")), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("frontend=app\\x0AFORGED ERROR hipache: root")),
        "{lines:#?}"
    );
}

/// `RUST_LOG_FORMAT=json`: every line the master and its workers write to stderr is one JSON
/// object with the time, the level and the message.
#[test]
fn the_process_log_is_json_lines_when_asked() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    redis.frontend("json.test", "site", &[&backend.url()]);
    let hipache = Hipache::start_after_shell(
        Config::redis(&redis).with(serde_json::json!({"server": {"workers": 2}})),
        "export RUST_LOG_FORMAT=json",
    );
    assert_eq!(hipache.get("json.test", "/").status, 200);
    // A reload makes both generations of workers and the master write.
    hipache.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(10), "the reload to be logged", || {
        hipache
            .log_lines()
            .iter()
            .any(|l| l.contains("reload done"))
    });
    let lines = hipache.log_lines();
    assert!(lines.len() > 5, "{lines:?}");
    for line in &lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        for key in ["timestamp", "level", "message"] {
            assert!(object.get(key).is_some(), "{key} in {line}");
        }
    }
}
