//! The HTTP/2 client handshake of the tests, over h2c (prior knowledge, clear text) or any
//! stream a test opened (TLS with ALPN `h2`): hyper's client for requests and answers, the h2
//! crate's where a test needs what hyper hides (interim answers, trailers, `END_STREAM` on
//! the headers).

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// What hyper's HTTP/2 client asks of a request body.
pub(crate) trait RequestBody:
    hyper::body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Unpin
    + Send
    + 'static
{
}

impl<B> RequestBody for B where
    B: hyper::body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Unpin
        + Send
        + 'static
{
}

/// An HTTP/2 connection over `stream`, its driver spawned on the current runtime; the handle
/// ends when the connection does.
pub(crate) async fn handshake<B, S>(stream: S) -> (http2::SendRequest<B>, JoinHandle<()>)
where
    B: RequestBody,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .expect("http/2 handshake with hipache");
    let ended = tokio::spawn(async move {
        let _ = connection.await;
    });
    // The server's SETTINGS (extended CONNECT among them) have arrived.
    sender.ready().await.expect("http/2 connection ready");
    (sender, ended)
}

/// Sends `GET uri` over HTTP/2 on `stream`; returns the status and the body.
pub(crate) async fn get<S>(stream: S, uri: &str) -> (u16, String)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, _) = handshake(stream).await;
    let request = hyper::Request::get(uri)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.expect("http/2 response");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A WebSocket over HTTP/2 (RFC 8441): `connect`, a CONNECT request being built, with the
/// `:protocol` and the version field the extended CONNECT needs.
pub(crate) fn websocket_request(connect: http::request::Builder) -> hyper::Request<Empty<Bytes>> {
    let mut request = connect
        .header("sec-websocket-version", "13")
        .body(Empty::<Bytes>::new())
        .expect("a websocket CONNECT request");
    request
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    request
}

/// An h2c (prior knowledge) connection to `addr`, its driver running beside the test.
pub(crate) async fn connect<B: RequestBody>(addr: SocketAddr) -> http2::SendRequest<B> {
    open(addr).await.0
}

/// An h2c connection to `addr` and the handle of its driver, which ends when the connection
/// does.
pub(crate) async fn open<B: RequestBody>(
    addr: SocketAddr,
) -> (http2::SendRequest<B>, JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.expect("connect to hipache");
    handshake(tcp).await
}

/// An h2c connection to `addr` through the h2 crate, its driver running beside the test; the
/// handle ends when the connection does.
pub(crate) async fn connect_frames(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(addr).await.expect("connect to hipache");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let ended = tokio::spawn(connection);
    let client = client.ready().await.expect("h2 connection ready");
    (client, ended)
}
