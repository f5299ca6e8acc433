//! Interim answers over HTTP/2: a backend's `103 Early Hints` reaches the client before the final
//! answer, and a backend's `100 Continue` reaches a client that asked for it, which then sends
//! its body.

use std::future::poll_fn;

use bytes::Bytes;

use crate::support::raw_backend::{
    early_hints_backend, ok, proxy_to, read_head, RawBackend, IO_TIMEOUT,
};
use crate::support::runtime::block_on_within;
use crate::support::{h2c, Config, Hipache, RedisServer};

#[test]
fn a_backends_early_hints_reach_an_http2_client_before_the_answer() {
    let redis = RedisServer::start();
    let (backend, seen_hints) = early_hints_backend();
    let hipache = proxy_to(&redis, "hints2.local", &backend.url());

    let (hints, status, body) = block_on_within(IO_TIMEOUT, async {
        let (mut client, _) = h2c::connect_frames(hipache.addr()).await;
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

/// A backend's own `100`, told apart from one the proxy would make by its field.
const BACKENDS_CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\nX-Continue-From: backend\r\n\r\n";

/// Asks for each body with its own `100` when the head expects one; says what came.
fn continuing_backend() -> RawBackend {
    RawBackend::start(|peer| {
        while let Some(request) = peer.request_meeting_expect(BACKENDS_CONTINUE) {
            peer.write(&ok(&format!("got {}", request.text())));
        }
    })
}

/// POSTs `body` expecting `100 Continue`, sent only once an interim answer came; returns that
/// answer, then the final status and body.
async fn post_expecting_continue(
    client: &mut h2::client::SendRequest<Bytes>,
    uri: &str,
    body: &'static [u8],
) -> (http::Response<()>, u16, Vec<u8>) {
    let request = http::Request::post(uri)
        .header("expect", "100-continue")
        .header("content-length", body.len())
        .body(())
        .unwrap();
    let (mut response, mut upload) = client.send_request(request, false).unwrap();
    let interim = poll_fn(|cx| response.poll_informational(cx)).await;
    let interim = interim.expect("an interim answer").expect("a valid one");
    upload.send_data(Bytes::from_static(body), true).unwrap();
    let response = response.await.expect("the final answer");
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(data) = body.data().await {
        text.extend_from_slice(&data.unwrap());
    }
    (interim, status, text)
}

#[test]
fn a_backends_100_continue_reaches_an_http2_client_that_expects_it() {
    let redis = RedisServer::start();
    let backend = continuing_backend();
    let hipache = proxy_to(&redis, "continue2.local", &backend.url());

    let (interim, status, body) = block_on_within(IO_TIMEOUT, async {
        let (mut client, _) = h2c::connect_frames(hipache.addr()).await;
        // Small enough to be kept whole for retries, were it not held back.
        let uri = "http://continue2.local/upload";
        post_expecting_continue(&mut client, uri, b"0123456789").await
    });

    assert_eq!(interim.status(), 100);
    assert_eq!(
        interim.headers().get("x-continue-from").unwrap(),
        "backend",
        "the continue was not the backend's"
    );
    assert_eq!((status, &body[..]), (200, &b"got 0123456789"[..]));
    assert_eq!(backend.requests()[0].header("expect"), Some("100-continue"));
}

#[test]
fn an_http2_body_held_back_for_100_continue_goes_to_the_next_backend_when_the_first_fails() {
    let redis = RedisServer::start();
    // Takes the head and hangs up: nothing of the body has left the proxy, since the client
    // waits for a `100`.
    let hangs_up = RawBackend::start(|peer| {
        let _ = read_head(&mut peer.wire.0);
    });
    let continuing = continuing_backend();
    let backends = [hangs_up.url(), continuing.url()];
    redis.frontend("retry2.local", "retry2", &[&backends[0], &backends[1]]);
    let hipache = Hipache::start(Config::redis(&redis));

    // The pick is random and a hang-up marks nothing dead: a few requests meet it first.
    let answers = block_on_within(IO_TIMEOUT, async {
        let (mut client, _) = h2c::connect_frames(hipache.addr()).await;
        let mut answers = Vec::new();
        for _ in 0..8 {
            let uri = "http://retry2.local/upload";
            let (interim, status, body) = post_expecting_continue(&mut client, uri, b"abc").await;
            let from = interim.headers().get("x-continue-from").cloned();
            answers.push((from, status, body));
        }
        answers
    });

    for (from, status, body) in answers {
        assert_eq!(from.as_ref().map(|v| v.as_bytes()), Some(&b"backend"[..]));
        assert_eq!((status, &body[..]), (200, &b"got abc"[..]));
    }
    assert!(
        hangs_up.connections() > 0,
        "the failing backend was never tried"
    );
}

#[test]
fn an_http2_request_without_a_body_does_not_pass_its_expectation_on() {
    let redis = RedisServer::start();
    let backend = continuing_backend();
    let hipache = proxy_to(&redis, "nobody2.local", &backend.url());

    let status = block_on_within(IO_TIMEOUT, async {
        let (mut client, _) = h2c::connect_frames(hipache.addr()).await;
        let request = http::Request::get("http://nobody2.local/")
            .header("expect", "100-continue")
            .body(())
            .unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        response.await.expect("the answer").status().as_u16()
    });

    assert_eq!(status, 200);
    assert_eq!(backend.requests()[0].header("expect"), None);
}
