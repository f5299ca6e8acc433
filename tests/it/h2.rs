//! HTTP/2 from clients, over TLS (ALPN `h2`) and in clear text with prior knowledge (h2c),
//! forwarded to HTTP/1.1 backends and routed by `:authority` as by `Host`.

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use serde_json::json;

use crate::support::raw_backend::{ok, RawBackend, IO_TIMEOUT};
use crate::support::runtime::block_on;
use crate::support::{h2c, tls};
use crate::support::{Backend, Config, Hipache, RedisServer};

#[test]
fn http2_over_tls_reaches_an_http1_backend_with_the_authority_as_host() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    redis.frontend("h2.test", "h2", &[&backend.url()]);
    let config = Config::redis(&redis);
    let (key, cert) = tls::cert(&["h2.test"]).write(config.dir(), "server");
    let hipache = Hipache::start(config.with(json!({
        "https": { "port": 0, "bind": ["127.0.0.1"], "key": key, "cert": cert }
    })));

    let (status, body) = block_on(async {
        let stream = tls::connect(hipache.https_addr(), "h2.test", &[b"h2", b"http/1.1"]).await;
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        h2c::get(stream, "https://h2.test/two?x=1").await
    });

    assert_eq!((status, body.as_str()), (200, "b1"));
    let seen = &backend.requests()[0];
    assert_eq!(seen.path, "/two?x=1");
    assert_eq!(seen.header("host"), Some("h2.test"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
}

#[test]
fn h2c_prior_knowledge_is_served_on_plain_listeners() {
    let redis = RedisServer::start();
    let backend = Backend::named("b2");
    redis.frontend("h2c.test", "h2c", &[&backend.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    let (status, body) = block_on(async {
        let tcp = tokio::net::TcpStream::connect(hipache.addr())
            .await
            .unwrap();
        h2c::get(tcp, "http://h2c.test/clear").await
    });

    assert_eq!((status, body.as_str()), (200, "b2"));
    let seen = &backend.requests()[0];
    assert_eq!(seen.path, "/clear");
    assert_eq!(seen.header("host"), Some("h2c.test"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    let lines = hipache.wait_access_log_lines(1);
    assert!(
        lines[0].contains("\"GET /clear HTTP/2.0\" 200"),
        "{lines:?}"
    );
}

#[test]
fn http2_to_an_unknown_authority_gets_the_400_page() {
    let redis = RedisServer::start();
    let hipache = Hipache::start(Config::redis(&redis));

    let (status, _) = block_on(async {
        let tcp = tokio::net::TcpStream::connect(hipache.addr())
            .await
            .unwrap();
        h2c::get(tcp, "http://nobody.test/").await
    });
    assert_eq!(status, 400);
}

#[test]
fn http2_bodies_stream_both_ways_and_backend_connections_are_reused() {
    let redis = RedisServer::start();
    let backend = Backend::builder().name("big").big_body(1 << 20).start();
    redis.frontend("h2big.test", "h2big", &[&backend.url()]);
    let config = Config::redis(&redis).with(json!({"server": {"httpKeepAlive": true}}));
    let hipache = Hipache::start(config);

    let received = block_on(async {
        let mut sender = h2c::connect(hipache.addr()).await;
        let mut received = Vec::new();
        for _ in 0..2 {
            // Three 100 KiB frames and no length: over the replay limit, sent on in chunks.
            let frames = (0..3).map(|_| {
                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from(
                    vec![b'x'; 100 * 1024],
                )))
            });
            let body = StreamBody::new(futures_util::stream::iter(frames));
            let request = hyper::Request::post("http://h2big.test/up")
                .body(body)
                .unwrap();
            let response = sender.send_request(request).await.expect("http/2 response");
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            received.push(body.len());
        }
        received
    });

    assert_eq!(received, [1 << 20, 1 << 20]);
    let seen = backend.requests();
    assert_eq!(seen.len(), 2);
    for request in &seen {
        assert_eq!(request.body_len, 300 * 1024);
        assert_eq!(request.header("transfer-encoding"), Some("chunked"));
    }
    assert_eq!(
        (seen[0].connection, seen[1].connection),
        (0, 0),
        "the second request reuses the first one's backend connection"
    );
    let lines = hipache.wait_access_log_lines(2);
    assert!(
        lines[0].contains("\"POST /up HTTP/2.0\" 200 1048576 "),
        "{lines:?}"
    );
}

#[test]
fn http2_answers_with_an_empty_length_end_at_once() {
    // A backend that keeps its connection open after a `Content-Length: 0` redirect: the end
    // of the body is the length, not a close.
    let backend = RawBackend::start(|peer| {
        if peer.request().is_some() {
            peer.write(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n");
            // Held open (until the proxy closes, or `IO_TIMEOUT`, twice the client's wait).
            let _ = peer.request();
        }
    });
    let redis = RedisServer::start();
    redis.frontend("empty.test", "empty", &[&backend.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    let (status, body) = block_on(async {
        let tcp = tokio::net::TcpStream::connect(hipache.addr())
            .await
            .unwrap();
        let answer = h2c::get(tcp, "http://empty.test/old");
        tokio::time::timeout(std::time::Duration::from_secs(5), answer)
            .await
            .expect("the empty body ends without the backend closing")
    });
    assert_eq!((status, body.as_str()), (302, ""));
}

#[test]
fn an_http2_request_in_flight_completes_while_the_proxy_drains_and_its_connection_closes() {
    use std::sync::{mpsc, Mutex};
    let redis = RedisServer::start();
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    let backend = RawBackend::start(move |peer| {
        if peer.request().is_some() && released.lock().unwrap().recv_timeout(IO_TIMEOUT).is_ok() {
            peer.write(&ok("late"));
        }
    });
    redis.frontend("drain2.test", "drain2", &[&backend.url()]);
    let mut hipache = Hipache::start(Config::redis(&redis));

    let (status, body) = block_on(async {
        let (mut client, connection) = h2c::connect_frames(hipache.addr()).await;
        let request = hyper::Request::get("http://drain2.test/slow")
            .body(())
            .unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        until("the request at the backend", || {
            backend.requests().len() == 1
        })
        .await;
        hipache.signal(libc::SIGTERM);
        until("the workers to stop accepting", || {
            hipache.workers_stopped_accepting()
        })
        .await;
        release.send(()).unwrap();
        let response = response.await.expect("the answer in flight");
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(data) = body.data().await {
            text.extend_from_slice(&data.unwrap());
        }
        // GOAWAY: once its stream ended, the connection closes, well before gracefulWait.
        let closed = tokio::time::timeout(IO_TIMEOUT, connection).await;
        let _ = closed.expect("the connection closed after its last stream");
        (status, text)
    });

    assert_eq!((status, &body[..]), (200, &b"late"[..]));
    let status = hipache.stop();
    assert!(status.success(), "exit status {status:?}");
}

/// Waits for `done` without blocking the runtime, which drives the client's connection.
async fn until(what: &str, done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < IO_TIMEOUT, "waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[test]
fn relayed_fields_arrive_as_the_backend_sent_them() {
    // The answer's fields are encoded for HTTP/2 straight from the backend's head: every field
    // reaches a real HTTP/2 client's decoder with its name lowercased and its value as sent, a
    // block longer than one frame goes on in CONTINUATION frames, and the fields that describe
    // the backend's connection stay behind.
    let long = "l".repeat(17_000);
    let mut head = String::from("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: \"v1\"\r\n");
    head.push_str("X-Mixed-Case: Some Value\r\nConnection: keep-alive, X-Hop\r\nX-Hop: gone\r\n");
    head.push_str("Keep-Alive: timeout=5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n");
    for n in 0..80 {
        head.push_str(&format!("X-Field-{n}: value {n}\r\n"));
    }
    head.push_str(&format!("X-Long: {long}\r\nContent-Length: 2\r\n\r\nok"));
    let mut answer = head.into_bytes();
    // An obs-text value (Latin-1 `é`), which HTTP/2 carries as it is.
    let latin = b"X-Latin: caf\xe9\r\n";
    let at = answer.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    answer.splice(at..at, latin.iter().copied());
    let backend = RawBackend::start(move |peer| {
        while peer.request().is_some() {
            peer.write(&answer);
        }
    });
    let redis = RedisServer::start();
    redis.frontend("fields.test", "fields", &[&backend.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    let (status, headers, body) = block_on(async {
        let tcp = tokio::net::TcpStream::connect(hipache.addr())
            .await
            .unwrap();
        // A client that takes a header list past its default 16 KiB, the long field's size.
        let (mut sender, connection) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .max_header_list_size(1 << 20)
                .handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .expect("http/2 handshake with hipache");
        tokio::spawn(connection);
        let request = hyper::Request::get("http://fields.test/")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.expect("http/2 response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (parts.status.as_u16(), parts.headers, body)
    });

    assert_eq!((status, &body[..]), (200, &b"ok"[..]));
    let one = |name: &str| -> Vec<u8> {
        let values: Vec<_> = headers.get_all(name).iter().collect();
        assert_eq!(values.len(), 1, "{name}: {values:?}");
        values[0].as_bytes().to_vec()
    };
    assert_eq!(one("content-type"), b"text/plain");
    assert_eq!(one("etag"), b"\"v1\"");
    assert_eq!(one("x-mixed-case"), b"Some Value");
    assert_eq!(one("x-latin"), b"caf\xe9");
    assert_eq!(one("x-long"), long.as_bytes());
    assert_eq!(one("content-length"), b"2");
    for n in 0..80 {
        assert_eq!(
            one(&format!("x-field-{n}")),
            format!("value {n}").as_bytes()
        );
    }
    let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(
        one("date").len(),
        29,
        "a date is added when the backend sent none"
    );
    for hop in ["connection", "keep-alive", "x-hop"] {
        assert!(!headers.contains_key(hop), "{hop} reached the client");
    }
    assert_eq!(headers.len(), 80 + 9, "{headers:?}");
}
