//! WebSocket over HTTP/2 (RFC 8441): an extended CONNECT reaches an HTTP/1.1 WebSocket backend as
//! an Upgrade, and messages then flow both ways through the HTTP/2 stream. A backend that does
//! not open the WebSocket (another status, a 101 that does not answer our key) gets the client a
//! 502, never a 2xx that would read as an open tunnel.

use std::sync::mpsc;
use std::sync::Mutex;

use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::support::h2c;
use crate::support::raw_backend::{answer, RawBackend, IO_TIMEOUT};
use crate::support::runtime::runtime;
use crate::support::websocket::WebSocketEcho;
use crate::support::{Config, Hipache, RedisServer};

/// Opens a WebSocket over HTTP/2 (h2c) to `uri` with `x-debug`; returns the status, the
/// `x-debug-error` value and the body of an answer that opened no tunnel.
fn connect_websocket(hipache: &Hipache, uri: &str) -> (u16, Option<String>, Vec<u8>) {
    runtime().block_on(async {
        let mut sender = h2c::connect(hipache.addr()).await;
        let request = h2c::websocket_request(hyper::Request::connect(uri).header("x-debug", "1"));
        let response = sender.send_request(request);
        let response = tokio::time::timeout(IO_TIMEOUT, response).await;
        let response = response
            .expect("an answer in time")
            .expect("CONNECT answered");
        let status = response.status().as_u16();
        let error = response.headers().get("x-debug-error");
        let error = error.map(|v| v.to_str().unwrap().to_owned());
        let body = http_body_util::BodyExt::collect(response.into_body()).await;
        (status, error, body.unwrap().to_bytes().to_vec())
    })
}

/// A backend that reads one request, writes `reply`, and says on the channel whether the proxy
/// then closed the connection (rather than leaving it open or sending more).
fn replying_backend(reply: Vec<u8>) -> (RawBackend, mpsc::Receiver<bool>) {
    let (closed, closes) = mpsc::channel();
    let closed = Mutex::new(closed);
    let backend = RawBackend::start(move |peer| {
        if peer.request().is_none() {
            return;
        }
        peer.write(&reply);
        let mut rest = Vec::new();
        let read = std::io::Read::read_to_end(&mut peer.wire.0, &mut rest);
        let _ = closed.lock().unwrap().send(read.is_ok() && rest.is_empty());
    });
    (backend, closes)
}

#[test]
fn websocket_over_http2_is_tunnelled_to_an_http1_backend() {
    let redis = RedisServer::start();
    let echo = WebSocketEcho::start();
    redis.frontend("ws2.test", "ws2", &[&echo.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    let (status, echoed) = runtime().block_on(async {
        let mut sender = h2c::connect(hipache.addr()).await;
        let request = h2c::websocket_request(hyper::Request::connect("http://ws2.test/chat"));
        let response = sender
            .send_request(request)
            .await
            .expect("CONNECT answered");
        let status = response.status().as_u16();
        let upgraded = hyper::upgrade::on(response).await.expect("upgraded stream");
        let mut socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
        socket.send(Message::text("over h2")).await.unwrap();
        let echoed = socket.next().await.expect("an echo").expect("a message");
        (status, echoed)
    });

    assert_eq!(status, 200);
    assert_eq!(echoed, Message::text("over h2"));
    let handshake = &echo.handshakes()[0];
    let header = |name: &str| {
        handshake
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("host"), Some("ws2.test"));
    assert_eq!(header("upgrade"), Some("websocket"));
    assert_eq!(header("sec-websocket-version"), Some("13"));
    assert_eq!(header("sec-websocket-key").map(str::len), Some(24));

    // What the client got, not the backend's 101.
    let line = &hipache.wait_access_log_lines(1)[0];
    assert!(line.contains("\"CONNECT /chat HTTP/2.0\" 200 0 "), "{line}");
}

#[test]
fn a_backend_that_answers_a_websocket_over_http2_with_200_gets_the_client_a_502() {
    let redis = RedisServer::start();
    let (backend, closes) = replying_backend(answer("200 OK", "not a websocket"));
    redis.frontend("plain2.test", "plain2", &[&backend.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    let (status, error, body) = connect_websocket(&hipache, "http://plain2.test/chat");

    assert_eq!(status, 502);
    assert_eq!(error.as_deref(), Some("backend refused the websocket"));
    let body = String::from_utf8_lossy(&body);
    assert!(!body.contains("not a websocket"), "{body}");
    assert_eq!(closes.recv_timeout(IO_TIMEOUT), Ok(true), "backend closed");
    let line = &hipache.wait_access_log_lines(1)[0];
    assert!(line.contains("\"CONNECT /chat HTTP/2.0\" 502 "), "{line}");
}

#[test]
fn a_101_with_a_wrong_accept_gets_the_client_a_502_and_opens_no_tunnel() {
    let redis = RedisServer::start();
    for accept in [Some("dGhpcyBpcyBub3QgaXQ="), None] {
        let mut reply = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                          Connection: Upgrade\r\n"
            .to_vec();
        if let Some(accept) = accept {
            reply.extend_from_slice(format!("Sec-WebSocket-Accept: {accept}\r\n").as_bytes());
        }
        reply.extend_from_slice(b"\r\nframes");
        let (backend, closes) = replying_backend(reply);
        redis.frontend("accept2.test", "accept2", &[&backend.url()]);
        let hipache = Hipache::start(Config::redis(&redis));

        let (status, error, body) = connect_websocket(&hipache, "http://accept2.test/chat");

        assert_eq!(status, 502, "accept {accept:?}");
        assert_eq!(error.as_deref(), Some("backend refused the websocket"));
        assert!(!body.ends_with(b"frames"), "accept {accept:?}");
        assert_eq!(closes.recv_timeout(IO_TIMEOUT), Ok(true), "backend closed");
    }
}
