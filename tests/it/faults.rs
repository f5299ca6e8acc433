//! Faults mid-exchange: a client that leaves during an answer, a TLS handshake that stalls,
//! HTTP/2 connections left idle and HTTP/2 answers that stall. (A backend that closes mid-body
//! is in `duplex`.)

use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde_json::json;

use crate::support::raw_backend::{ok, pattern, RawBackend, Wire, MIB};
use crate::support::runtime::runtime;
use crate::support::{h2c, tls, wait_until, Config, Hipache, RedisServer};

#[test]
fn a_client_leaving_mid_answer_leaves_no_dirty_backend_stream_in_the_pool() {
    let redis = RedisServer::start();
    let closed = Arc::new(AtomicUsize::new(0));
    let seen_closed = closed.clone();
    // `/big` is 8 MiB the client will not wait for; anything else says which connection.
    let backend = RawBackend::start(move |peer| {
        while let Some(request) = peer.request() {
            if request.line.contains("/big") {
                peer.write(
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 8 * MIB).as_bytes(),
                );
                let piece = pattern(64 * 1024);
                for _ in 0..128 {
                    if std::io::Write::write_all(peer.wire.0.get_mut(), &piece).is_err() {
                        break;
                    }
                }
            } else {
                peer.write(&ok(&format!("connection {}", peer.connection)));
            }
        }
        seen_closed.fetch_add(1, Ordering::SeqCst);
    });
    redis.frontend("leave.local", "leave", &[&backend.url()]);
    let config = Config::redis(&redis).with(json!({"server": {"httpKeepAlive": true}}));
    let hipache = Hipache::start(config);

    let mut wire = Wire::open(hipache.addr());
    wire.write(b"GET /big HTTP/1.1\r\nHost: leave.local\r\n\r\n");
    let mut start = [0u8; 4096];
    wire.0.read_exact(&mut start).unwrap();
    drop(wire);

    wait_until(
        Duration::from_secs(10),
        "the backend to see its stream closed",
        || closed.load(Ordering::SeqCst) == 1,
    );
    let next = hipache.get("leave.local", "/next");
    assert_eq!((next.status, next.text()), (200, "connection 1".to_owned()));
}

#[test]
fn a_stalled_tls_handshake_is_closed_after_tcp_timeout() {
    let redis = RedisServer::start();
    let config = Config::redis(&redis);
    let (key, cert) = tls::cert(&["stall.test"]).write(config.dir(), "server");
    let hipache = Hipache::start(config.with(json!({
        "server": {"tcpTimeout": 1},
        "https": { "port": 0, "bind": ["127.0.0.1"], "key": key, "cert": cert }
    })));

    // Connects and says nothing: no ClientHello ever comes.
    let mut stream = TcpStream::connect(hipache.https_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .expect("hipache closes the stalled handshake");
    assert!(rest.is_empty());
}

#[test]
fn an_idle_http2_connection_is_closed_after_tcp_timeout() {
    let redis = RedisServer::start();
    let config = Config::redis(&redis).with(json!({"server": {"tcpTimeout": 1}}));
    let hipache = Hipache::start(config);

    runtime().block_on(async {
        let (mut sender, ended) = h2c::open::<Empty<Bytes>>(hipache.addr()).await;
        let ping = hyper::Request::get("http://__ping__/")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let answer = sender.send_request(ping).await.expect("an answer");
        assert_eq!(answer.status(), 200);
        drop(answer);
        // The client answers pings and keeps its side open: only the proxy can end it.
        let closed = tokio::time::timeout(Duration::from_secs(8), ended).await;
        assert!(closed.is_ok(), "the idle connection is still open");
    });
}

#[test]
fn a_stalled_http2_answer_body_is_reset_after_tcp_timeout() {
    let redis = RedisServer::start();
    // Promises 1 KiB, sends 10 bytes, then holds the connection silent.
    let backend = RawBackend::start(|peer| {
        if peer.request().is_some() {
            peer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n0123456789");
            let _ = peer.request();
        }
    });
    redis.frontend("stall.local", "stall", &[&backend.url()]);
    let config = Config::redis(&redis).with(json!({"server": {"tcpTimeout": 1}}));
    let hipache = Hipache::start(config);

    runtime().block_on(async {
        let (mut sender, _ended) = h2c::open::<Empty<Bytes>>(hipache.addr()).await;
        let request = hyper::Request::get("http://stall.local/")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let answer = sender.send_request(request).await.expect("an answer head");
        assert_eq!(answer.status(), 200);
        let body = tokio::time::timeout(Duration::from_secs(8), answer.into_body().collect());
        let body = body.await.expect("the stalled body ends");
        assert!(body.is_err(), "a cut answer must not look whole");
    });
    wait_until(
        // The log is the behaviour here: the cut is reported.
        Duration::from_secs(5),
        "a log line about the cut answer",
        || hipache.log_lines().join("\n").contains("answer cut short"),
    );
}
