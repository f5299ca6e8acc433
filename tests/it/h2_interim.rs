//! Interim answers over HTTP/2: a backend's `103 Early Hints` reaches the client before the final
//! answer, and a backend's `100 Continue` reaches a client that asked for it, which then sends
//! its body.

use std::future::poll_fn;
use std::io::Read;
use std::sync::mpsc;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::net::TcpStream;

use crate::support::raw_backend::{ok, proxy_to, read_line, RawBackend, IO_TIMEOUT};
use crate::support::RedisServer;

/// An HTTP/2 (h2c prior knowledge) connection to the proxy, its driver running beside the test.
async fn connect(hipache: &crate::support::Hipache) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(hipache.addr()).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(connection);
    client.ready().await.expect("h2 connection ready")
}

fn block_on<F: std::future::Future>(test: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Bounded: a proxy that holds an interim answer back leaves both sides waiting.
    runtime
        .block_on(async { tokio::time::timeout(IO_TIMEOUT, test).await })
        .expect("the exchange finished")
}

#[test]
fn a_backends_early_hints_reach_an_http2_client_before_the_answer() {
    let redis = RedisServer::start();
    // The backend sends its 200 only once the client has read the 103: a proxy that held the
    // 103 back would leave the client waiting for both.
    let (seen_hints, hints_seen) = mpsc::channel::<()>();
    let hints_seen = Mutex::new(hints_seen);
    let backend = RawBackend::start(move |peer| {
        if peer.request().is_none() {
            return;
        }
        peer.write(
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\
              Connection: keep-alive\r\n\r\n",
        );
        if hints_seen.lock().unwrap().recv_timeout(IO_TIMEOUT).is_ok() {
            peer.write(&ok("final"));
        }
    });
    let hipache = proxy_to(&redis, "hints2.local", &backend.url());

    let (hints, status, body) = block_on(async {
        let mut client = connect(&hipache).await;
        let request = http::Request::get("http://hints2.local/page")
            .body(())
            .unwrap();
        let (mut response, _) = client.send_request(request, true).unwrap();
        let hints = poll_fn(|cx| response.poll_informational(cx)).await;
        let hints = hints.expect("an interim answer").expect("a valid one");
        seen_hints.send(()).unwrap();
        let response = response.await.expect("the final answer");
        let status = response.status();
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(data) = body.data().await {
            text.extend_from_slice(&data.unwrap());
        }
        (hints, status, text)
    });

    assert_eq!(hints.status(), 103);
    assert_eq!(
        hints.headers().get("link").unwrap(),
        "</style.css>; rel=preload"
    );
    assert!(!hints.headers().contains_key("connection"), "{hints:?}");
    assert_eq!((status.as_u16(), &body[..]), (200, &b"final"[..]));
}

#[test]
fn a_backends_100_continue_reaches_an_http2_client_that_expects_it() {
    let redis = RedisServer::start();
    // Says continue only when asked to, marked as its own; then reads the body it was promised.
    let backend = RawBackend::start(|peer| {
        let mut head = Vec::new();
        while let Some(line) = read_line(&mut peer.wire.0) {
            if line.is_empty() {
                break;
            }
            head.push(line.to_ascii_lowercase());
        }
        if head.is_empty() {
            return;
        }
        let expects = head.iter().any(|l| l == "expect: 100-continue");
        let length = head.iter().find_map(|l| l.strip_prefix("content-length: "));
        let length: usize = length.and_then(|l| l.parse().ok()).unwrap_or(0);
        if expects {
            peer.write(b"HTTP/1.1 100 Continue\r\nX-Continue-From: backend\r\n\r\n");
        }
        let mut body = vec![0; length];
        if peer.wire.0.read_exact(&mut body).is_ok() {
            let text = format!("got {}", String::from_utf8_lossy(&body));
            peer.write(&ok(&text));
        }
    });
    let hipache = proxy_to(&redis, "continue2.local", &backend.url());

    let (interim, status, body) = block_on(async {
        let mut client = connect(&hipache).await;
        let request = http::Request::post("http://continue2.local/upload")
            .header("expect", "100-continue")
            .header("content-length", "10")
            .body(())
            .unwrap();
        let (mut response, mut upload) = client.send_request(request, false).unwrap();
        // The body goes only once the continue came.
        let interim = poll_fn(|cx| response.poll_informational(cx)).await;
        let interim = interim.expect("an interim answer").expect("a valid one");
        upload
            .send_data(Bytes::from_static(b"0123456789"), true)
            .unwrap();
        let response = response.await.expect("the final answer");
        let status = response.status();
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(data) = body.data().await {
            text.extend_from_slice(&data.unwrap());
        }
        (interim, status, text)
    });

    assert_eq!(interim.status(), 100);
    assert_eq!(
        interim.headers().get("x-continue-from").unwrap(),
        "backend",
        "the continue was not the backend's"
    );
    assert_eq!((status.as_u16(), &body[..]), (200, &b"got 0123456789"[..]));
}
