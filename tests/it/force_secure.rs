//! `server.forceSecure`: every plain-HTTP request (WebSocket upgrades included, HTTP/1.x and h2c
//! alike) gets a `301` to the same host, path and query over HTTPS, except the `__ping__` probe,
//! which load balancers send over plain HTTP and which answers `200`; requests over TLS are
//! proxied as before. Without an https listener the key is ignored with a warning: a config
//! decision, asserted in the config unit tests (`force_secure_without_https_is_ignored_with_a_warning`).

use bytes::Bytes;
use http_body_util::Empty;
use serde_json::json;

use crate::support::h2c;
use crate::support::runtime::runtime;
use crate::support::tls;
use crate::support::{Backend, Config, Hipache, RedisServer, Request};

/// A proxy with a plain and an https listener, forcing HTTPS, in front of `backend` for
/// `www.secure.test`.
fn forcing_proxy(redis: &RedisServer, backend: &Backend) -> Hipache {
    redis.frontend("www.secure.test", "secure", &[&backend.url()]);
    let config = Config::redis(redis);
    let (key, cert) = tls::cert(&["www.secure.test"]).write(config.dir(), "server");
    Hipache::start(config.with(json!({
        "server": { "forceSecure": true },
        "https": { "port": 0, "bind": ["127.0.0.1"], "key": key, "cert": cert }
    })))
}

#[test]
fn plain_http_gets_a_301_to_the_same_host_path_and_query_on_the_https_port() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let hipache = forcing_proxy(&redis, &backend);
    let https_port = hipache.https_addr().port();

    let response = hipache.get("www.secure.test:8080", "/a/b%20c?x=1&y=two");
    assert_eq!(response.status, 301);
    assert_eq!(
        response.header("location"),
        Some(format!("https://www.secure.test:{https_port}/a/b%20c?x=1&y=two").as_str())
    );
    // A WebSocket upgrade over plain HTTP gets the same answer.
    let upgrade = hipache.send(
        &Request::get("www.secure.test", "/socket?room=1")
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    );
    assert_eq!(upgrade.status, 301);
    assert_eq!(
        upgrade.header("location"),
        Some(format!("https://www.secure.test:{https_port}/socket?room=1").as_str())
    );
    assert_eq!(
        backend.request_count(),
        0,
        "a plain request reached the backend"
    );

    // Over TLS the request is proxied.
    let response = runtime().block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream =
            tls::connect(hipache.https_addr(), "www.secure.test", &[b"http/1.1"]).await;
        stream
            .write_all(b"GET /s HTTP/1.1\r\nHost: www.secure.test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        String::from_utf8_lossy(&response).into_owned()
    });
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(backend.request_count(), 1);
}

/// The status and body of a `GET /` for `host` over h2c (prior knowledge) to `addr`.
async fn h2c_get(addr: std::net::SocketAddr, host: &str) -> (u16, Bytes) {
    use http_body_util::BodyExt;
    let mut sender = h2c::connect(addr).await;
    let request = hyper::Request::get(format!("http://{host}/"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.expect("h2c response");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.expect("h2c body");
    (status, body.to_bytes())
}

#[test]
fn ping_answers_200_over_plain_http1_and_h2c() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let hipache = forcing_proxy(&redis, &backend);

    let ping = hipache.get("__ping__", "/");
    assert_eq!((ping.status, ping.header("location")), (200, None));
    let (status, body) = runtime().block_on(h2c_get(hipache.addr(), "__ping__"));
    assert_eq!(status, 200);
    assert_eq!(body, ping.text().as_bytes());
    // Any other host on the same connection kinds is still redirected.
    let (status, _) = runtime().block_on(h2c_get(hipache.addr(), "www.secure.test"));
    assert_eq!(status, 301);
    assert_eq!(backend.request_count(), 0);
}

#[test]
fn h2c_requests_get_the_same_redirect() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let hipache = forcing_proxy(&redis, &backend);
    let https_port = hipache.https_addr().port();

    let (status, location) = runtime().block_on(async {
        let mut sender = h2c::connect(hipache.addr()).await;
        let request = hyper::Request::get("http://www.secure.test/h2/path?q=%2F")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.expect("h2c response");
        let location = response.headers().get("location").cloned();
        (response.status().as_u16(), location)
    });

    assert_eq!(status, 301);
    let expected = format!("https://www.secure.test:{https_port}/h2/path?q=%2F");
    assert_eq!(location.unwrap().to_str().unwrap(), expected);
    assert_eq!(backend.request_count(), 0);
}

#[test]
fn websocket_over_h2c_gets_the_same_redirect() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let hipache = forcing_proxy(&redis, &backend);
    let https_port = hipache.https_addr().port();

    let (status, location) = runtime().block_on(async {
        let mut sender = h2c::connect(hipache.addr()).await;
        let request =
            h2c::websocket_request(hyper::Request::connect("http://www.secure.test/chat?x=1"));
        let response = sender
            .send_request(request)
            .await
            .expect("CONNECT answered");
        let location = response.headers().get("location").cloned();
        (response.status().as_u16(), location)
    });

    assert_eq!(status, 301);
    let expected = format!("https://www.secure.test:{https_port}/chat?x=1");
    assert_eq!(location.unwrap().to_str().unwrap(), expected);
    assert_eq!(backend.request_count(), 0);
}
