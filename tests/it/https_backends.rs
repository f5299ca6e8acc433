//! `https://` backends (Hipache issue 231): reached over TLS with SNI and the certificate checked
//! against the URL's host, trusted through `server.backendCa`, refused as a dead backend when
//! untrusted, accepted unverified with `backendTlsVerify: false`, kept alive, and tunnelled for
//! WebSocket.

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::h2c;
use crate::support::runtime::runtime;
use crate::support::tls_backend::{self, TestCa, TlsBackend};
use std::time::Duration;

use crate::support::{wait_until, Backend, Body, Config, Hipache, RedisServer, Request};

/// A proxy trusting `ca` for its backends, with `server` merged in.
fn proxy_trusting(redis: &RedisServer, ca: &TestCa, server: serde_json::Value) -> Hipache {
    let config = Config::redis(redis);
    let ca_file = ca.write(config.dir(), "backend-ca");
    let mut server = server;
    server["backendCa"] = json!(ca_file);
    Hipache::start(config.with(json!({ "server": server })))
}

#[test]
fn https_backend_trusted_through_backend_ca_is_reached_over_tls_with_its_name_as_sni() {
    let redis = RedisServer::start();
    let ca = TestCa::new();
    let backend = TlsBackend::start("secure", ca.identity(&["localhost"]));
    redis.frontend("tls.local", "tls", &[&backend.url("localhost")]);
    let hipache = proxy_trusting(&redis, &ca, json!({}));

    let response = hipache.get("tls.local", "/over/tls");

    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text(), "secure");
    let handshakes = backend.handshakes();
    assert_eq!(handshakes.len(), 1, "{handshakes:?}");
    assert_eq!(handshakes[0].sni.as_deref(), Some("localhost"));
    assert_eq!(handshakes[0].alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(backend.requests(), vec![("/over/tls".to_owned(), 0)]);
}

#[test]
fn untrusted_https_backend_is_marked_dead_and_the_request_retried_on_another() {
    let redis = RedisServer::start();
    let ca = TestCa::new();
    // Signed by a CA the proxy does not know.
    let untrusted = TlsBackend::start("untrusted", TestCa::new().identity(&["localhost"]));
    let trusted = TlsBackend::start("trusted", ca.identity(&["localhost"]));
    redis.frontend(
        "mixed.local",
        "mixed",
        &[&untrusted.url("localhost"), &trusted.url("localhost")],
    );
    let hipache = proxy_trusting(&redis, &ca, json!({}));

    for _ in 0..50 {
        let response = hipache.get("mixed.local", "/");
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.text(), "trusted");
        if redis.smembers("dead:mixed.local") == ["0"] {
            break;
        }
    }
    assert_eq!(redis.smembers("dead:mixed.local"), ["0"]);
    assert!(untrusted.requests().is_empty());
}

#[test]
fn untrusted_https_backend_alone_answers_502_with_the_tls_reason() {
    let redis = RedisServer::start();
    let backend = TlsBackend::start("self-signed", tls_backend::self_signed(&["localhost"]));
    redis.frontend("alone.local", "alone", &[&backend.url("localhost")]);
    let hipache = Hipache::start(Config::redis(&redis));

    let response = hipache.send(&Request::get("alone.local", "/").header("X-Debug", "1"));

    assert_eq!(response.status, 502, "{response:?}");
    assert_eq!(
        response.header("x-debug-error"),
        Some("backend tls handshake failed: certificate issuer unknown"),
        "{response:?}"
    );
    // As for a refused connection, a frontend's only backend is never marked (Hipache's rule).
    assert!(backend.requests().is_empty());
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let redis = RedisServer::start();
    let ca = TestCa::new();
    let backend = TlsBackend::start("elsewhere", ca.identity(&["elsewhere.test"]));
    redis.frontend("name.local", "name", &[&backend.url("localhost")]);
    let hipache = proxy_trusting(&redis, &ca, json!({}));

    let response = hipache.send(&Request::get("name.local", "/").header("X-Debug", "1"));

    assert_eq!(response.status, 502, "{response:?}");
    assert_eq!(
        response.header("x-debug-error"),
        Some("backend tls handshake failed: certificate not valid for the backend's name")
    );
    assert!(backend.handshakes().is_empty());
}

#[test]
fn a_backend_silent_in_the_handshake_fails_it_within_tcp_timeout() {
    let redis = RedisServer::start();
    // Accepts the connection, never answers the ClientHello.
    let silent = Backend::builder().hanging().start();
    let url = format!("https://127.0.0.1:{}", silent.addr().port());
    redis.frontend("mute.local", "mute", &[&url]);
    let config = Config::redis(&redis).with(json!({ "server": { "tcpTimeout": 1 } }));
    let hipache = Hipache::start(config);

    let response = hipache.send(&Request::get("mute.local", "/").header("X-Debug", "1"));

    assert_eq!(response.status, 502, "{response:?}");
    assert_eq!(
        response.header("x-debug-error"),
        Some("backend tls handshake failed: timeout")
    );
}

#[test]
fn a_self_signed_ca_used_as_the_backends_certificate_is_refused_saying_so() {
    let redis = RedisServer::start();
    let (identity, ca_pem) = tls_backend::self_signed_ca(&["localhost"]);
    let backend = TlsBackend::start("ca-as-leaf", identity);
    redis.frontend("leaf.local", "leaf", &[&backend.url("localhost")]);
    let config = Config::redis(&redis);
    let ca_file = config.dir().join("backend-ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("write backend ca");
    let hipache = Hipache::start(config.with(json!({ "server": { "backendCa": ca_file } })));

    let response = hipache.send(&Request::get("leaf.local", "/").header("X-Debug", "1"));

    assert_eq!(response.status, 502, "{response:?}");
    let reason = "backend tls handshake failed: a CA certificate used as the backend's certificate";
    assert_eq!(response.header("x-debug-error"), Some(reason));
    wait_until(
        Duration::from_secs(5),
        "the reason in the process log",
        || hipache.log_lines().iter().any(|line| line.contains(reason)),
    );
}

#[test]
fn verification_off_accepts_a_self_signed_backend() {
    let redis = RedisServer::start();
    let backend = TlsBackend::start("fleet", tls_backend::self_signed(&["other.name"]));
    redis.frontend("fleet.local", "fleet", &[&backend.url("localhost")]);
    let config = Config::redis(&redis).with(json!({ "server": { "backendTlsVerify": false } }));
    let hipache = Hipache::start(config);

    let response = hipache.get("fleet.local", "/");

    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text(), "fleet");
    assert_eq!(backend.handshakes().len(), 1);
    // The log is the behaviour here: the operator is warned once, not once per worker.
    let warned = hipache
        .log_lines()
        .iter()
        .filter(|line| line.contains("server.backendTlsVerify is false"))
        .count();
    assert_eq!(
        warned,
        1,
        "one warning, from the master: {:?}",
        hipache.log_lines()
    );
}

#[test]
fn ip_address_backend_is_verified_against_an_ip_san() {
    let redis = RedisServer::start();
    let ca = TestCa::new();
    let backend = TlsBackend::start("by-ip", ca.identity(&["127.0.0.1"]));
    redis.frontend("ip.local", "ip", &[&backend.url("127.0.0.1")]);
    let hipache = proxy_trusting(&redis, &ca, json!({}));

    let response = hipache.get("ip.local", "/");

    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text(), "by-ip");
    // An IP address is no SNI name: the client sends none.
    assert_eq!(backend.handshakes()[0].sni, None);
}

#[test]
fn keep_alive_reuses_one_tls_connection_for_two_requests() {
    let redis = RedisServer::start();
    let ca = TestCa::new();
    let backend = TlsBackend::start("kept", ca.identity(&["localhost"]));
    redis.frontend("kept.local", "kept", &[&backend.url("localhost")]);
    let hipache = proxy_trusting(&redis, &ca, json!({ "httpKeepAlive": true }));

    for path in ["/one", "/two"] {
        let response = hipache.get("kept.local", path);
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.text(), "kept");
    }

    assert_eq!(backend.handshakes().len(), 1, "{:?}", backend.handshakes());
    assert_eq!(
        backend.requests(),
        vec![("/one".to_owned(), 0), ("/two".to_owned(), 0)]
    );
}

#[test]
fn websocket_upgrade_is_tunnelled_to_an_https_backend() {
    let redis = RedisServer::start();
    let ca = TestCa::new();
    let echo = TlsBackend::websocket_echo(ca.identity(&["localhost"]));
    redis.frontend("ws.local", "ws", &[&echo.url("localhost")]);
    let hipache = proxy_trusting(&redis, &ca, json!({}));

    runtime().block_on(async {
        let tcp = tokio::net::TcpStream::connect(hipache.addr())
            .await
            .unwrap();
        let request = "ws://ws.local/".into_client_request().unwrap();
        let (mut socket, response) = tokio_tungstenite::client_async(request, tcp)
            .await
            .expect("websocket handshake through hipache");
        assert_eq!(response.status(), 101);
        for text in ["hello", "over tls"] {
            socket.send(Message::text(text)).await.unwrap();
            assert_eq!(socket.next().await.unwrap().unwrap(), Message::text(text));
        }
    });
    assert_eq!(echo.handshakes()[0].sni.as_deref(), Some("localhost"));
}

#[test]
fn health_checker_probes_https_backends_over_tls_with_the_same_trust() {
    let redis = RedisServer::start();
    let ca = TestCa::new();
    let untrusted = TlsBackend::start("untrusted", TestCa::new().identity(&["localhost"]));
    let trusted = TlsBackend::start("trusted", ca.identity(&["localhost"]));
    redis.frontend(
        "hc.local",
        "hc",
        &[&untrusted.url("localhost"), &trusted.url("localhost")],
    );
    let config = Config::redis(&redis);
    let ca_file = ca.write(config.dir(), "backend-ca");
    let _hipache = Hipache::start(config.with(json!({
        "server": { "backendCa": ca_file },
        "healthCheck": {"path": "/health", "interval": 1, "timeout": 1, "unhealthy": 2, "healthy": 2}
    })));

    wait_until(Duration::from_secs(15), "two probes and a mark", || {
        let probes = trusted
            .requests()
            .iter()
            .filter(|(p, _)| p == "/health")
            .count();
        probes >= 2 && redis.smembers("dead:hc.local").contains(&"0".to_owned())
    });
    assert_eq!(redis.smembers("dead:hc.local"), ["0"]);
    assert!(untrusted.requests().is_empty());
    assert_eq!(trusted.handshakes()[0].sni.as_deref(), Some("localhost"));
}

#[test]
fn a_streamed_upload_reaches_an_https_backend_whole() {
    let redis = RedisServer::start();
    let ca = TestCa::new();
    let backend = TlsBackend::start("upload", ca.identity(&["localhost"]));
    redis.frontend("up.local", "up", &[&backend.url("localhost")]);
    let hipache = proxy_trusting(&redis, &ca, json!({}));

    let request = Request::new("POST", "up.local", "/up").body(Body::Streamed(4 << 20));
    let response = hipache.send(&request);

    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text(), "upload");
    assert_eq!(backend.bodies(), [4 << 20]);
}

#[test]
fn http2_requests_reach_an_https_backend_on_one_kept_alive_tls_connection() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};

    let redis = RedisServer::start();
    let ca = TestCa::new();
    let backend = TlsBackend::start("h2", ca.identity(&["localhost"]));
    redis.frontend("h2.local", "h2", &[&backend.url("localhost")]);
    let hipache = proxy_trusting(&redis, &ca, json!({ "httpKeepAlive": true }));

    let answers = runtime().block_on(async {
        let mut sender = h2c::connect(hipache.addr()).await;
        let mut answers = Vec::new();
        for _ in 0..2 {
            // No length and over the replay limit: streamed to the backend.
            let frames = (0..3).map(|_| {
                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from(
                    vec![b'x'; 100 * 1024],
                )))
            });
            let body = StreamBody::new(futures_util::stream::iter(frames));
            let request = hyper::Request::post("http://h2.local/up")
                .body(body)
                .unwrap();
            let response = sender.send_request(request).await.expect("http/2 response");
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            answers.push((status, String::from_utf8_lossy(&body).into_owned()));
        }
        answers
    });

    let expected = (200, "h2".to_owned());
    assert_eq!(answers, [expected.clone(), expected]);
    assert_eq!(backend.bodies(), [300 * 1024, 300 * 1024]);
    assert_eq!(backend.handshakes().len(), 1);
}
