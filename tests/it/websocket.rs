//! WebSocket through the proxy: a real client and a real echo backend, over ws and wss; routing
//! and error pages before the upgrade; a backend that refuses the upgrade; many open at once.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::support::runtime::runtime;
use crate::support::tls::{self, TestCert};
use crate::support::websocket::WebSocketEcho;
use crate::support::{wait_until, Backend, Config, Hipache, RedisServer};

async fn open<S: AsyncRead + AsyncWrite + Unpin>(stream: S, url: &str) -> WebSocketStream<S> {
    let request = url.into_client_request().unwrap();
    let (socket, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("websocket handshake through hipache");
    assert_eq!(response.status(), 101);
    socket
}

async fn echo_round<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut WebSocketStream<S>) {
    socket.send(Message::text("hello")).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::text("hello")
    );
    let binary: Vec<u8> = (0..=255).collect();
    socket.send(Message::binary(binary.clone())).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::binary(binary)
    );
    let large: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    socket.send(Message::binary(large.clone())).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::binary(large)
    );
    socket
        .close(Some(CloseFrame {
            code: 1000.into(),
            reason: "done".into(),
        }))
        .await
        .unwrap();
    // The close handshake completes: the backend's close frame comes back, then the end.
    loop {
        match socket.next().await {
            Some(Ok(Message::Close(_))) => continue,
            None | Some(Err(WsError::ConnectionClosed)) => break,
            other => panic!("unexpected after close: {other:?}"),
        }
    }
}

fn hipache_with_tls(redis: &RedisServer, cert: &TestCert) -> Hipache {
    let config = Config::redis(redis);
    let (key, cert) = cert.write(config.dir(), "server");
    Hipache::start(config.with(json!({
        "https": { "port": 0, "bind": ["127.0.0.1"], "key": key, "cert": cert }
    })))
}

#[test]
fn websocket_echoes_text_binary_and_large_frames_over_ws() {
    let redis = RedisServer::start();
    let echo = WebSocketEcho::start();
    redis.frontend("ws.test", "ws", &[&echo.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    runtime().block_on(async {
        let tcp = tokio::net::TcpStream::connect(hipache.addr())
            .await
            .unwrap();
        let mut socket = open(tcp, "ws://ws.test/chat?room=1").await;
        echo_round(&mut socket).await;
    });

    let handshake = &echo.handshakes()[0];
    let header = |name: &str| {
        handshake
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("host"), Some("ws.test"));
    assert_eq!(header("upgrade"), Some("websocket"));
    assert_eq!(header("connection"), Some("upgrade"));
    assert_eq!(header("x-forwarded-for"), Some("::ffff:127.0.0.1"));
    assert_eq!(header("x-forwarded-proto"), Some("http"));
    let port = hipache.port().to_string();
    assert_eq!(header("x-forwarded-port"), Some(port.as_str()));
    wait_until(
        Duration::from_secs(5),
        "the backend to see the close",
        || echo.open() == 0,
    );
    // The access log line is written when the 101 is sent.
    let lines = hipache.wait_access_log_lines(1);
    assert!(
        lines[0].contains("\"GET /chat?room=1 HTTP/1.1\" 101"),
        "{lines:?}"
    );
}

#[test]
fn websocket_works_over_wss() {
    let redis = RedisServer::start();
    let echo = WebSocketEcho::start();
    redis.frontend("wss.test", "wss", &[&echo.url()]);
    let hipache = hipache_with_tls(&redis, &tls::cert(&["wss.test"]));

    runtime().block_on(async {
        let stream = tls::connect(hipache.https_addr(), "wss.test", &[b"http/1.1"]).await;
        let mut socket = open(stream, "wss://wss.test/").await;
        echo_round(&mut socket).await;
    });

    let handshake = &echo.handshakes()[0];
    assert!(handshake.contains(&("x-forwarded-proto".to_owned(), "https".to_owned())));
    let port = hipache.https_addr().port().to_string();
    assert!(handshake.contains(&("x-forwarded-port".to_owned(), port)));
}

#[test]
fn upgrade_to_unknown_host_gets_the_400_page() {
    let redis = RedisServer::start();
    let hipache = Hipache::start(Config::redis(&redis));

    runtime().block_on(async {
        let tcp = tokio::net::TcpStream::connect(hipache.addr())
            .await
            .unwrap();
        let request = "ws://nobody.test/".into_client_request().unwrap();
        match tokio_tungstenite::client_async(request, tcp).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), 400),
            other => panic!("expected a 400 page, got {other:?}"),
        }
    });
}

#[test]
fn upgrade_to_dead_backend_is_retried_on_a_live_one() {
    let redis = RedisServer::start();
    let refusing = Backend::builder().refusing().start();
    let echo = WebSocketEcho::start();
    redis.frontend("retry.test", "retry", &[&refusing.url(), &echo.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    runtime().block_on(async {
        for _ in 0..4 {
            let tcp = tokio::net::TcpStream::connect(hipache.addr())
                .await
                .unwrap();
            let mut socket = open(tcp, "ws://retry.test/").await;
            socket.send(Message::text("hi")).await.unwrap();
            assert_eq!(socket.next().await.unwrap().unwrap(), Message::text("hi"));
        }
    });
}

#[test]
fn backend_refusing_the_upgrade_is_passed_through() {
    let redis = RedisServer::start();
    let plain = Backend::builder().name("not-ws").status(404).start();
    let ok = Backend::builder().name("plain-200").start();
    redis.frontend("nows.test", "nows", &[&plain.url()]);
    redis.frontend("ok.test", "ok", &[&ok.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    runtime().block_on(async {
        for (host, status, body) in [("nows.test", 404, "not-ws"), ("ok.test", 200, "plain-200")] {
            let tcp = tokio::net::TcpStream::connect(hipache.addr())
                .await
                .unwrap();
            let request = format!("ws://{host}/").into_client_request().unwrap();
            match tokio_tungstenite::client_async(request, tcp).await {
                Err(WsError::Http(response)) => {
                    assert_eq!(response.status(), status);
                    let got = response.body().as_deref().unwrap_or_default();
                    assert_eq!(String::from_utf8_lossy(got), body);
                }
                other => panic!("expected the backend's {status}, got {other:?}"),
            }
        }
    });
    assert_eq!(plain.requests()[0].header("upgrade"), Some("websocket"));
}

#[test]
fn idle_tunnel_is_closed_after_tcp_timeout() {
    let redis = RedisServer::start();
    let echo = WebSocketEcho::start();
    redis.frontend("idle.test", "idle", &[&echo.url()]);
    let hipache = Hipache::start(Config::redis(&redis).with(json!({"server": {"tcpTimeout": 1}})));

    runtime().block_on(async {
        let tcp = tokio::net::TcpStream::connect(hipache.addr())
            .await
            .unwrap();
        let mut socket = open(tcp, "ws://idle.test/").await;
        socket.send(Message::text("hi")).await.unwrap();
        assert_eq!(socket.next().await.unwrap().unwrap(), Message::text("hi"));
        // Nothing is sent: the proxy closes the tunnel, well before this bound.
        let end = tokio::time::timeout(Duration::from_secs(10), socket.next()).await;
        match end.expect("the idle tunnel to be closed") {
            None | Some(Err(_)) => {}
            Some(Ok(message)) => panic!("unexpected message {message:?}"),
        }
    });
}

#[test]
fn open_tunnels_keep_working_while_the_proxy_drains() {
    let redis = RedisServer::start();
    let echo = WebSocketEcho::start();
    redis.frontend("drain.test", "drain", &[&echo.url()]);
    let mut hipache = Hipache::start(Config::redis(&redis));

    runtime().block_on(async {
        let tcp = tokio::net::TcpStream::connect(hipache.addr())
            .await
            .unwrap();
        let mut socket = open(tcp, "ws://drain.test/").await;
        hipache.signal(libc::SIGTERM);
        hipache.wait_for_workers_to_stop_accepting();
        // The log is the behaviour here: the drain reports the tunnel it waits for.
        wait_until(
            Duration::from_secs(5),
            "the drain to count the tunnel",
            || {
                hipache
                    .log_lines()
                    .iter()
                    .any(|l| l.contains("draining") && l.contains("tunnels=1"))
            },
        );
        // Draining: no new connections are accepted, but the open tunnel still carries traffic.
        socket.send(Message::text("still here")).await.unwrap();
        assert_eq!(
            socket.next().await.unwrap().unwrap(),
            Message::text("still here")
        );
        socket.close(None).await.unwrap();
        while let Some(Ok(_)) = socket.next().await {}
    });

    let status = hipache.stop();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn a_thousand_websockets_stay_open_and_echo() {
    const SOCKETS: usize = 1000;
    let redis = RedisServer::start();
    let echo = WebSocketEcho::start();
    redis.frontend("many.test", "many", &[&echo.url()]);
    let hipache =
        Hipache::start(Config::redis(&redis).with(json!({"server": {"maxSockets": 2000}})));
    let started = Instant::now();

    runtime().block_on(async {
        let mut sockets = Vec::with_capacity(SOCKETS);
        for _ in 0..SOCKETS {
            let tcp = tokio::net::TcpStream::connect(hipache.addr())
                .await
                .unwrap();
            sockets.push(open(tcp, "ws://many.test/").await);
        }
        // The backend counts a socket once its side of the handshake is done.
        wait_until(
            Duration::from_secs(10),
            "every websocket open on the backend",
            || echo.open() == SOCKETS,
        );
        let rss_kib = rss_kib(hipache.pid());
        for (i, socket) in sockets.iter_mut().enumerate() {
            socket.send(Message::text(format!("n{i}"))).await.unwrap();
        }
        for (i, socket) in sockets.iter_mut().enumerate() {
            assert_eq!(
                socket.next().await.unwrap().unwrap(),
                Message::text(format!("n{i}"))
            );
        }
        eprintln!(
            "{SOCKETS} websockets open and echoed in {:?}; hipache RSS {} KiB",
            started.elapsed(),
            rss_kib
        );
        for mut socket in sockets {
            socket.close(None).await.unwrap();
        }
    });
    wait_until(Duration::from_secs(10), "every websocket to close", || {
        echo.open() == 0
    });
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
