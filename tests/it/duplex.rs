//! Both directions of an exchange at once: a backend that streams its answer while it reads
//! the upload (an echo, `req.pipe(res)`) gets the whole upload and the client the whole
//! answer, over HTTP/1.1 and HTTP/2.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::support::h2c;
use crate::support::raw_backend::{pattern, read_line, Peer, RawBackend, Wire, MIB};
use crate::support::runtime::runtime;
use crate::support::wait::pause;
use crate::support::{Config, Hipache, RedisServer};

/// Echoes each request's body as it reads it, in an answer with the same length: it reads no
/// more than it has echoed, as a piped stream under backpressure.
pub(crate) fn echo(peer: &mut Peer) {
    let mut length = 0;
    loop {
        let Some(line) = read_line(&mut peer.wire.0) else {
            return;
        };
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    peer.write(format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n").as_bytes());
    let mut left = length;
    while left > 0 {
        let Ok(piece) = peer.wire.0.fill_buf() else {
            return;
        };
        if piece.is_empty() {
            return;
        }
        let piece = piece[..piece.len().min(left)].to_vec();
        peer.wire.0.consume(piece.len());
        left -= piece.len();
        if peer.wire.0.get_mut().write_all(&piece).is_err() {
            return;
        }
    }
}

fn echo_proxy(redis: &RedisServer, backend: &RawBackend) -> Hipache {
    redis.frontend("echo.local", "echo", &[&backend.url()]);
    let config = Config::redis(redis).with(json!({"server": {"tcpTimeout": 5}}));
    Hipache::start(config)
}

#[test]
fn an_echoed_upload_comes_back_whole() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(echo);
    let hipache = echo_proxy(&redis, &backend);
    let upload = pattern(8 * MIB);

    let stream = TcpStream::connect(hipache.addr()).unwrap();
    let mut sending = stream.try_clone().unwrap();
    let sent = upload.clone();
    let uploader = std::thread::spawn(move || {
        let head = format!(
            "POST /echo HTTP/1.1\r\nHost: echo.local\r\nContent-Length: {}\r\n\r\n",
            sent.len()
        );
        let _ = sending.write_all(head.as_bytes());
        // Paced as over a network: the proxy waits for the client between pieces.
        for (n, piece) in sent.chunks(64 * 1024).enumerate() {
            if sending.write_all(piece).is_err() {
                return;
            }
            if n % 16 == 15 {
                pause(Duration::from_millis(20));
            }
        }
    });
    let mut wire = Wire::over(stream);
    let answer = wire.answer_to("POST");
    uploader.join().unwrap();

    assert_eq!(answer.line, "HTTP/1.1 200 OK");
    assert_eq!(answer.body.len(), upload.len());
    assert!(answer.body == upload, "the echo came back altered");
    // The log is the behaviour here: a whole answer is not reported as cut.
    let log = hipache.log_lines().join("\n");
    assert!(!log.contains("answer cut short"), "{log}");
}

#[test]
fn an_answer_cut_by_its_backend_closes_the_client_connection_and_is_logged() {
    let redis = RedisServer::start();
    // Promises 1 MiB, sends 1 KiB of it, closes.
    let backend = RawBackend::start(|peer| {
        if peer.request().is_some() {
            peer.write(format!("HTTP/1.1 200 OK\r\nContent-Length: {MIB}\r\n\r\n").as_bytes());
            peer.write(&pattern(1024));
        }
    });
    redis.frontend("cut.local", "cut", &[&backend.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    let mut wire = Wire::open(hipache.addr());
    wire.write(b"GET /big HTTP/1.1\r\nHost: cut.local\r\n\r\n");
    let mut received = Vec::new();
    // The connection ends (no keep-alive on a cut answer) rather than waiting for more.
    wire.0
        .read_to_end(&mut received)
        .expect("hipache closes the client connection");
    assert!(received.len() < MIB, "{} bytes", received.len());

    // The log is the behaviour here: the cut is reported, naming the host.
    crate::support::wait_until(
        std::time::Duration::from_secs(5),
        "a log line about the cut answer",
        || {
            let log = hipache.log_lines().join("\n");
            log.contains("answer cut short") && log.contains("cut.local")
        },
    );
}

#[test]
fn an_echoed_upload_over_http2_comes_back_whole() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;

    let redis = RedisServer::start();
    let backend = RawBackend::start(echo);
    let hipache = echo_proxy(&redis, &backend);
    // More than loopback's socket buffers hold: a proxy that sends the whole upload before it
    // reads the answer leaves the echo stuck writing, and itself stuck sending.
    let upload = pattern(32 * MIB);

    let runtime = runtime();
    let echoed = runtime.block_on(async {
        let mut sender = h2c::connect(hipache.addr()).await;
        let pieces: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = upload
            .chunks(64 * 1024)
            .map(|piece| Ok(Frame::data(Bytes::copy_from_slice(piece))))
            .collect();
        let body = StreamBody::new(futures_util::stream::iter(pieces));
        let request = hyper::Request::post("http://echo.local/echo")
            .header("content-length", upload.len())
            .body(body)
            .unwrap();
        let response = sender.send_request(request).await.expect("http/2 answer");
        assert_eq!(response.status(), 200);
        let collected =
            tokio::time::timeout(Duration::from_secs(30), response.into_body().collect());
        match collected.await {
            Ok(Ok(body)) => body.to_bytes().to_vec(),
            Ok(Err(error)) => panic!("the echo broke off: {error}"),
            Err(_) => panic!("the echo did not end within 30 s"),
        }
    });

    assert_eq!(echoed.len(), upload.len());
    assert!(echoed == upload, "the echo came back altered");
}
