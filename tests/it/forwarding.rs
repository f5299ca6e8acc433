//! What reaches the backend and what comes back: added headers, hop-by-hop headers, X-Debug,
//! streaming in both directions, keep-alive on both sides.

use crate::support::raw_http::Connection;
use crate::support::{Backend, Body, Config, Hipache, RedisServer, Request};
use serde_json::json;

const MIB: u64 = 1024 * 1024;

fn one_backend(redis: &RedisServer, host: &str, backend: &Backend) -> Hipache {
    redis.frontend(host, host, &[&backend.url()]);
    Hipache::start(Config::redis(redis))
}

#[test]
fn forwarding_headers_are_added_when_absent() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let hipache = one_backend(&redis, "fwd.local", &backend);

    assert_eq!(hipache.get("fwd.local", "/").status, 200);

    let seen = &backend.requests()[0];
    let port = hipache.port().to_string();
    for (name, value) in [
        ("x-forwarded-for", "::ffff:127.0.0.1"),
        ("x-real-ip", "::ffff:127.0.0.1"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-protocol", "http"),
        ("x-forwarded-port", port.as_str()),
        ("host", "fwd.local"),
    ] {
        assert_eq!(seen.header(name), Some(value), "{name} seen by the backend");
    }
}

#[test]
fn client_forwarding_headers_are_kept_as_sent() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let hipache = one_backend(&redis, "fwd.local", &backend);

    let request = Request::get("fwd.local", "/")
        .header("X-Forwarded-For", "203.0.113.7")
        .header("X-Forwarded-Proto", "https");
    assert_eq!(hipache.send(&request).status, 200);

    let seen = &backend.requests()[0];
    assert_eq!(seen.header("x-forwarded-for"), Some("203.0.113.7"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
}

#[test]
fn path_and_query_reach_the_backend_unchanged() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let hipache = one_backend(&redis, "path.local", &backend);

    assert_eq!(hipache.get("path.local", "/a/b%20c?x=1&y=%2F").status, 200);

    assert_eq!(backend.requests()[0].path, "/a/b%20c?x=1&y=%2F");
}

#[test]
fn hop_by_hop_headers_are_not_forwarded() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let hipache = one_backend(&redis, "hop.local", &backend);

    let request = Request::get("hop.local", "/")
        .header("Connection", "keep-alive, X-Secret-Hop")
        .header("Keep-Alive", "timeout=5")
        .header("Proxy-Connection", "keep-alive")
        .header("TE", "trailers")
        .header("Trailer", "X-Checksum")
        .header("Upgrade", "h2c")
        .header("X-Secret-Hop", "must not pass")
        .header("X-End-To-End", "passes");
    assert_eq!(hipache.send(&request).status, 200);

    let seen = &backend.requests()[0];
    for name in [
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "x-secret-hop",
    ] {
        assert_eq!(seen.header(name), None, "{name} must not reach the backend");
    }
    assert_eq!(seen.header("x-end-to-end"), Some("passes"));
}

#[test]
fn x_debug_reports_the_backend_and_frontend() {
    let redis = RedisServer::start();
    let (b1, b2) = (Backend::named("b1"), Backend::named("b2"));
    redis.frontend("*.debug.local", "debug-app", &[&b1.url(), &b2.url()]);
    redis.sadd("dead:app.debug.local", "0");
    let hipache = Hipache::start(Config::redis(&redis));

    let response = hipache.send(&Request::get("app.debug.local", "/").header("X-Debug", "1"));

    assert_eq!((response.status, response.text().as_str()), (200, "b2"));
    assert!(response.header("x-debug-version-hipache").is_some());
    assert_eq!(
        response.header("x-debug-backend-url"),
        Some(b2.normalised_url().as_str())
    );
    assert_eq!(response.header("x-debug-backend-id"), Some("1"));
    assert_eq!(response.header("x-debug-vhost"), Some("debug-app"));
    assert_eq!(
        response.header("x-debug-frontend-key"),
        Some("app.debug.local")
    );
    for name in ["x-debug-time-total", "x-debug-time-backend"] {
        let value = response.header(name).unwrap_or_default();
        assert!(
            value.parse::<u64>().is_ok(),
            "{name} is whole ms: {value:?}"
        );
    }
}

#[test]
fn x_debug_on_an_error_page_reports_the_error() {
    let redis = RedisServer::start();
    let hipache = Hipache::start(Config::redis(&redis));

    let response = hipache.send(&Request::get("nobody.local", "/").header("X-Debug", "1"));

    response.assert_error_page(400, "No Application Configured");
    assert!(response.header("x-debug-error").is_some(), "{response:?}");
    assert_eq!(response.header("x-debug-backend-url"), None);
}

#[test]
fn without_x_debug_no_debug_headers_are_added() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let hipache = one_backend(&redis, "quiet.local", &backend);

    let response = hipache.get("quiet.local", "/");

    assert_eq!(response.status, 200);
    let debug: Vec<_> = response
        .headers
        .iter()
        .filter(|(name, _)| name.starts_with("x-debug"))
        .collect();
    assert!(debug.is_empty(), "unexpected debug headers {debug:?}");
}

#[test]
fn large_upload_is_streamed_to_the_backend() {
    let redis = RedisServer::start();
    let backend = Backend::named("sink");
    let hipache = one_backend(&redis, "upload.local", &backend);

    let request = Request::new("POST", "upload.local", "/upload").body(Body::Streamed(64 * MIB));
    let response = hipache.send(&request);

    assert_eq!((response.status, response.text().as_str()), (200, "sink"));
    assert_eq!(backend.requests()[0].body_len, 64 * MIB);
}

#[test]
fn large_chunked_upload_is_streamed_to_the_backend() {
    let redis = RedisServer::start();
    let backend = Backend::named("sink");
    let hipache = one_backend(&redis, "upload.local", &backend);

    let chunks = (0..64).map(|_| vec![b'z'; MIB as usize]).collect();
    let request = Request::new("PUT", "upload.local", "/").body(Body::Chunked(chunks));
    assert_eq!(hipache.send(&request).status, 200);

    assert_eq!(backend.requests()[0].body_len, 64 * MIB);
}

#[test]
fn large_download_reaches_the_client() {
    let redis = RedisServer::start();
    let backend = Backend::builder().name("big").big_body(64 * MIB).start();
    let hipache = one_backend(&redis, "download.local", &backend);

    let response = hipache.send(&Request::get("download.local", "/").discard_body());

    assert_eq!(response.status, 200);
    assert_eq!(response.body_len, 64 * MIB);
}

#[test]
fn two_requests_on_one_client_connection_are_both_answered() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let hipache = one_backend(&redis, "ka.local", &backend);

    let mut connection = Connection::open(hipache.addr()).expect("connect to hipache");
    let first = connection.send(&Request::get("ka.local", "/first"));
    let second = connection.send(&Request::get("ka.local", "/second"));

    assert_eq!((first.status, first.text().as_str()), (200, "b1"));
    assert_eq!((second.status, second.text().as_str()), (200, "b1"));
    let paths: Vec<_> = backend.requests().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/first", "/second"]);
}

#[test]
fn backend_connections_are_reused_with_http_keep_alive() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    redis.frontend("pool.local", "pool", &[&backend.url()]);
    let config = Config::redis(&redis).with(json!({"server": {"httpKeepAlive": true}}));
    let hipache = Hipache::start(config);

    for _ in 0..5 {
        assert_eq!(hipache.get("pool.local", "/").status, 200);
    }

    let seen = backend.requests();
    let mut connections: Vec<_> = seen.iter().map(|s| s.connection).collect();
    connections.dedup();
    assert!(
        connections.len() < seen.len(),
        "5 sequential requests used 5 backend connections: {connections:?}"
    );
}
