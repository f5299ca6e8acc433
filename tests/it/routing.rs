//! Which frontend a request reaches: `__ping__`, Host normalisation, dead sets. Candidate order
//! (wildcard precedence) is a pure decision, tested in `host_keys`; `hipache_suite::wildcard_priority`
//! proves the binary routes by it.

use crate::support::{raw_http, Backend, Config, Hipache, RedisServer, Request};

fn proxy(redis: &RedisServer) -> Hipache {
    Hipache::start(Config::redis(redis))
}

#[test]
fn ping_host_answers_ok_without_redis() {
    let mut redis = RedisServer::start();
    let hipache = proxy(&redis);
    redis.stop();

    let response = hipache.get("__ping__", "/");

    assert_eq!((response.status, response.text().as_str()), (200, "ok"));
}

#[test]
fn unknown_frontend_answers_400_no_application_configured() {
    let redis = RedisServer::start();
    let hipache = proxy(&redis);

    let response = hipache.get("nobody.example.com", "/");

    response.assert_error_page(400, "No Application Configured");
}

#[test]
fn request_without_host_answers_400() {
    let redis = RedisServer::start();
    let hipache = proxy(&redis);

    let answer = raw_http::send(hipache.addr(), b"GET / HTTP/1.0\r\n\r\n");

    let status_line = answer.lines().next().unwrap_or_default();
    assert!(
        status_line.starts_with("HTTP/1.") && status_line.contains(" 400"),
        "expected a 400 status line, got {answer:?}"
    );
}

#[test]
fn malformed_requests_get_400_and_the_proxy_keeps_serving() {
    let redis = RedisServer::start();
    let hipache = proxy(&redis);
    let malformed: [&[u8]; 5] = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: \xff\xfe\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: a\r\n\r\n",
    ];
    for bytes in malformed {
        let answer = raw_http::send(hipache.addr(), bytes);
        let status_line = answer.lines().next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(
            (400..500).contains(&status),
            "{:?} got {answer:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert_eq!(hipache.get("__ping__", "/").text(), "ok");
}

#[test]
fn host_is_matched_case_insensitively_without_its_port() {
    let redis = RedisServer::start();
    let backend = Backend::named("www");
    redis.frontend("www.example.com", "www", &[&backend.url()]);
    let hipache = proxy(&redis);

    for host in [
        "WWW.Example.COM:8080",
        "www.example.com:80",
        "Www.Example.Com",
    ] {
        let response = hipache.get(host, "/");
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "www"),
            "Host: {host}"
        );
    }
    let seen = backend.requests();
    assert_eq!(
        seen[0].header("host"),
        Some("WWW.Example.COM:8080"),
        "Host is passed unchanged"
    );
}

#[test]
fn bad_backend_urls_in_a_list_are_skipped() {
    let redis = RedisServer::start();
    let good = Backend::named("good");
    redis.frontend("mixed.local", "mixed", &["::not a url::", &good.url()]);
    let hipache = proxy(&redis);

    for _ in 0..10 {
        let response = hipache.get("mixed.local", "/");
        assert_eq!((response.status, response.text().as_str()), (200, "good"));
    }
}

#[test]
fn backends_in_the_dead_set_are_skipped() {
    let redis = RedisServer::start();
    let (b1, b2) = (Backend::named("b1"), Backend::named("b2"));
    redis.frontend("pair.local", "pair", &[&b1.url(), &b2.url()]);
    redis.sadd("dead:pair.local", "0");
    let hipache = proxy(&redis);

    for _ in 0..10 {
        assert_eq!(hipache.get("pair.local", "/").text(), "b2");
    }
    assert_eq!(b1.request_count(), 0);
}

#[test]
fn every_backend_dead_answers_502_application_not_responding() {
    let redis = RedisServer::start();
    let (b1, b2) = (Backend::named("b1"), Backend::named("b2"));
    redis.frontend("down.local", "down", &[&b1.url(), &b2.url()]);
    redis.sadd("dead:down.local", "0");
    redis.sadd("dead:down.local", "1");
    let hipache = proxy(&redis);

    let response = hipache.send(&Request::get("down.local", "/"));

    response.assert_error_page(502, "Application Not Responding");
    assert_eq!(b1.request_count() + b2.request_count(), 0);
}
