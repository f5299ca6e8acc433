//! The engine's side towards backends: pooled streams a backend closed, `maxSockets` waits, a
//! POST never sent twice, a large chunked upload, and a backend's early answer to an upload.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::support::raw_backend::{
    answer, ok, pattern, proxy_to, read_head, RawBackend, Wire, IO_TIMEOUT, MIB,
};
use crate::support::{Backend, Body, Config, Hipache, RedisServer, Request};

#[test]
fn pooled_streams_the_backend_closed_are_replaced_by_fresh_ones() {
    let redis = RedisServer::start();
    // Every answer has a length and no `Connection: close`. The first stream is closed right
    // after its answer; the second stays idle and is closed when the next request arrives on
    // it, without a byte of answer: the idle close that races the proxy's reuse.
    let backend = RawBackend::start(|peer| {
        if let Some(request) = peer.request() {
            peer.write(&ok(&format!("connection {}", request.connection)));
        }
        if peer.connection == 1 {
            let _ = peer.request();
        }
    });
    redis.frontend("stale.local", "stale", &[&backend.url()]);
    let config = Config::redis(&redis).with(json!({"server": {"httpKeepAlive": true}}));
    let hipache = Hipache::start(config);

    for (path, answered_on) in [("/one", 0), ("/two", 1), ("/three", 2)] {
        let response = hipache.get("stale.local", path);
        let text = format!("connection {answered_on}");
        assert_eq!((response.status, response.text()), (200, text), "{path}");
    }

    let seen = backend.requests();
    assert_eq!(seen[0].header("connection"), None, "asked to keep it");
    let (one, two, three) = (
        "GET /one HTTP/1.1",
        "GET /two HTTP/1.1",
        "GET /three HTTP/1.1",
    );
    assert_eq!(backend.lines(), [one, two, three, three]);
    let carried_on: Vec<_> = seen.iter().map(|r| r.connection).collect();
    assert_eq!(carried_on, [0, 1, 1, 2], "/three was dropped, then resent");
    assert_eq!(backend.connections(), 3);
    assert_eq!(redis.smembers("dead:stale.local"), Vec::<String>::new());
}

#[test]
fn one_mib_chunked_upload_reaches_the_backend_intact() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| {
        peer.answer_each(|request| ok(&format!("{} bytes", request.body.len())))
    });
    let hipache = proxy_to(&redis, "upload.local", &backend.url());
    let payload = pattern(MIB);
    let chunks = payload.chunks(100_003).map(<[u8]>::to_vec).collect();

    let request = Request::new("POST", "upload.local", "/up").body(Body::Chunked(chunks));
    let response = hipache.send(&request);

    assert_eq!(response.status, 200);
    assert_eq!(response.text(), format!("{MIB} bytes"));
    let seen = &backend.requests()[0];
    assert_eq!(seen.header("transfer-encoding"), Some("chunked"));
    assert_eq!(seen.header("content-length"), None);
    assert!(seen.body == payload, "the backend got other bytes");
}

#[test]
fn a_post_the_backend_dropped_unanswered_is_not_sent_twice() {
    let redis = RedisServer::start();
    // The first stream answers once, then takes the next request and closes without a word:
    // the backend may have acted on it, so the proxy must not send it again.
    let backend = RawBackend::start(|peer| {
        if peer.request().is_some() {
            peer.write(&ok("first"));
        }
        if peer.connection == 0 {
            let _ = peer.request();
        }
    });
    redis.frontend("once.local", "once", &[&backend.url()]);
    let config = Config::redis(&redis).with(json!({"server": {"httpKeepAlive": true}}));
    let hipache = Hipache::start(config);

    assert_eq!(hipache.get("once.local", "/").status, 200);
    let charge = Request::new("POST", "once.local", "/charge").body(Body::Bytes(b"1".to_vec()));
    assert_eq!(hipache.send(&charge).status, 502);
    assert_eq!(backend.lines(), ["GET / HTTP/1.1", "POST /charge HTTP/1.1"]);
}

#[test]
fn requests_waiting_for_max_sockets_get_the_stream_that_goes_idle() {
    let redis = RedisServer::start();
    let backend = Backend::builder()
        .name("slow")
        .delay(Duration::from_millis(300))
        .start();
    redis.frontend("one-socket.local", "one", &[&backend.url()]);
    let config = Config::redis(&redis).with(json!({
        "server": {"httpKeepAlive": true, "maxSockets": 1, "tcpTimeout": 5, "workers": 1}
    }));
    let hipache = Arc::new(Hipache::start(config));

    let clients: Vec<_> = (0..3)
        .map(|_| {
            let hipache = hipache.clone();
            std::thread::spawn(move || hipache.get("one-socket.local", "/").status)
        })
        .collect();
    let statuses: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(statuses, [200, 200, 200]);
    assert_eq!(backend.connections(), 1, "one stream, taken in turn");
}

#[test]
fn an_early_answer_to_a_large_upload_reaches_the_client() {
    let redis = RedisServer::start();
    // Reads the head only, refuses the body and closes: what a size limit does.
    let backend = RawBackend::start(|peer| {
        let _ = read_head(&mut peer.wire.0);
        peer.write(&answer("413 Payload Too Large", "too big"));
    });
    let hipache = proxy_to(&redis, "limit.local", &backend.url());

    let stream = TcpStream::connect(hipache.addr()).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut sending = stream.try_clone().unwrap();
    let length = 8 * MIB;
    let uploader = std::thread::spawn(move || {
        let head =
            format!("POST /up HTTP/1.1\r\nHost: limit.local\r\nContent-Length: {length}\r\n\r\n");
        let _ = sending.write_all(head.as_bytes());
        let piece = vec![b'x'; 64 * 1024];
        for _ in 0..length / piece.len() {
            if sending.write_all(&piece).is_err() {
                break;
            }
        }
    });
    let mut client = Wire::over(stream);
    let refused = client.answer();
    assert_eq!(refused.line, "HTTP/1.1 413 Payload Too Large");
    assert_eq!(refused.text(), "too big");
    assert_eq!(refused.header("connection"), Some("close"));
    uploader.join().unwrap();
}
