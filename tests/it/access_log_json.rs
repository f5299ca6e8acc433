//! `server.accessLogFormat: "json"`: one JSON object per line for every kind of request the
//! proxy logs (plain HTTP/1.1, HTTP/1.1 over TLS, HTTP/2 over TLS, a WebSocket, a 502 after
//! failed attempts), each line valid for serde_json and for `jq`.

use std::process::Command;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::runtime::runtime;
use crate::support::websocket::WebSocketEcho;
use crate::support::{h2c, tls};
use crate::support::{Backend, Config, Hipache, RedisServer};

/// The line whose `path` is `path`.
fn line_for<'a>(lines: &'a [Value], path: &str) -> &'a Value {
    lines
        .iter()
        .find(|line| line["path"] == path)
        .unwrap_or_else(|| panic!("no line for {path}: {lines:#?}"))
}

#[test]
fn every_request_kind_is_logged_as_a_json_line() {
    let redis = RedisServer::start();
    let (plain, secure, two) = (
        Backend::named("plain"),
        Backend::named("tls"),
        Backend::named("h2"),
    );
    let echo = WebSocketEcho::start();
    let refusing = Backend::builder().refusing().start();
    redis.frontend("plain.test", "plain-app", &[&plain.url()]);
    redis.frontend("tls.test", "tls-app", &[&secure.url()]);
    redis.frontend("h2.test", "h2-app", &[&two.url()]);
    redis.frontend("ws.test", "ws-app", &[&echo.url()]);
    redis.frontend("refused.test", "refused-app", &[&refusing.url()]);
    let config = Config::redis(&redis);
    let names = ["tls.test", "h2.test"];
    let (key, cert) = tls::cert(&names).write(config.dir(), "server");
    // Production shape: a root master with unprivileged workers, which write the log.
    let hipache = Hipache::start(config.with(json!({
        "user": "nobody",
        "group": "nogroup",
        "server": { "accessLogFormat": "json", "retryOnError": 0 },
        "https": { "port": 0, "bind": ["127.0.0.1"], "key": key, "cert": cert }
    })));

    assert_eq!(hipache.get("plain.test", "/plain?q=1").status, 200);
    assert_eq!(hipache.get("refused.test", "/refused").status, 502);
    runtime().block_on(async {
        let mut stream = tls::connect(hipache.https_addr(), "tls.test", &[b"http/1.1"]).await;
        stream
            .write_all(b"GET /tls HTTP/1.1\r\nHost: tls.test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        assert!(response.starts_with(b"HTTP/1.1 200"), "{response:?}");

        let stream = tls::connect(hipache.https_addr(), "h2.test", &[b"h2"]).await;
        let (status, _) = h2c::get(stream, "https://h2.test/two").await;
        assert_eq!(status, 200);

        let tcp = tokio::net::TcpStream::connect(hipache.addr())
            .await
            .unwrap();
        let request = "ws://ws.test/chat".into_client_request().unwrap();
        let (mut socket, response) = tokio_tungstenite::client_async(request, tcp)
            .await
            .expect("websocket handshake through hipache");
        assert_eq!(response.status(), 101);
        socket.send(Message::text("hello")).await.unwrap();
        assert_eq!(
            socket.next().await.unwrap().unwrap(),
            Message::text("hello")
        );
        socket.close(None).await.unwrap();
        while let Some(Ok(_)) = socket.next().await {}
    });

    let text = hipache.wait_access_log_lines(5);
    let lines: Vec<Value> = text
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), 5, "{text:#?}");
    let jq = Command::new("jq")
        .args(["-e", "."])
        .arg(hipache.access_log())
        .output()
        .expect("run jq");
    assert!(jq.status.success(), "jq -e . refused the log: {jq:?}");

    // protocol, tls, status, host, frontend, backend.
    let expect = [
        (
            "/plain?q=1",
            "HTTP/1.1",
            None,
            200,
            "plain.test",
            "plain-app",
            Some(plain.normalised_url()),
        ),
        (
            "/tls",
            "HTTP/1.1",
            Some("TLSv1.3"),
            200,
            "tls.test",
            "tls-app",
            Some(secure.normalised_url()),
        ),
        (
            "/two",
            "HTTP/2.0",
            Some("TLSv1.3"),
            200,
            "h2.test",
            "h2-app",
            Some(two.normalised_url()),
        ),
        (
            "/chat",
            "HTTP/1.1",
            None,
            101,
            "ws.test",
            "ws-app",
            Some(format!("{}/", echo.url())),
        ),
        (
            "/refused",
            "HTTP/1.1",
            None,
            502,
            "refused.test",
            "refused-app",
            None,
        ),
    ];
    for (path, protocol, tls, status, host, frontend, backend) in expect {
        let line = line_for(&lines, path);
        let seen = (
            line["protocol"].as_str(),
            line["tls"].as_str(),
            line["status"].as_u64(),
            line["host"].as_str(),
            line["frontend"].as_str(),
            line["backend"].as_str(),
        );
        let wanted = (
            Some(protocol),
            tls,
            Some(status),
            Some(host),
            Some(frontend),
            backend.as_deref(),
        );
        assert_eq!(seen, wanted, "{line}");
        assert_eq!(line["client"], "127.0.0.1", "{line}");
        assert!(
            line["total_seconds"].as_f64() >= line["backend_seconds"].as_f64(),
            "{line}"
        );
        let time = line["time"].as_str().unwrap_or_default();
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[19] == b'.',
            "{line}"
        );
    }
}
