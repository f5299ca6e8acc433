//! WebSocket over HTTP/2 (RFC 8441): an extended CONNECT reaches an HTTP/1.1 WebSocket backend as
//! an Upgrade, and messages then flow both ways through the HTTP/2 stream.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Empty;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::support::websocket::WebSocketEcho;
use crate::support::{Config, Hipache, RedisServer};

#[test]
fn websocket_over_http2_is_tunnelled_to_an_http1_backend() {
    let redis = RedisServer::start();
    let echo = WebSocketEcho::start();
    redis.frontend("ws2.test", "ws2", &[&echo.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    let (status, echoed) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let tcp = tokio::net::TcpStream::connect(hipache.addr())
                .await
                .unwrap();
            let (mut sender, connection) =
                http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                    .await
                    .expect("http/2 handshake with hipache");
            tokio::spawn(connection);
            sender.ready().await.expect("http/2 connection ready");
            let mut request = hyper::Request::connect("http://ws2.test/chat")
                .header("sec-websocket-version", "13")
                .body(Empty::<Bytes>::new())
                .unwrap();
            request
                .extensions_mut()
                .insert(hyper::ext::Protocol::from_static("websocket"));
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
}
