//! In-process tests of the serving loop (`in_process::InProcess`): timing decisions under
//! tokio's paused clock, where time moves only when every task waits, so a verdict on elapsed
//! time is exact and does not depend on how busy the machine is.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::LocalSet;
use tokio::time::Instant;

use super::in_process::InProcess;

const PING: &[u8] = b"GET / HTTP/1.1\r\nHost: __ping__\r\n\r\n";

/// Reads one answer to `__ping__` (its head and the 2-byte body `ok`).
async fn read_ping_answer(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    while !answer.ends_with(b"\r\n\r\nok") {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before answering: {answer:?}");
        answer.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(answer).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_head_trickled_after_an_idle_wait_gets_no_second_timeout() {
    const TCP_TIMEOUT: Duration = Duration::from_secs(3);
    const TRICKLE: Duration = Duration::from_millis(100);
    LocalSet::new()
        .run_until(async {
            let worker = InProcess::start(serde_json::json!({
                "server": {"tcpTimeout": TCP_TIMEOUT.as_secs()}
            }));
            let mut stream = TcpStream::connect(worker.addr()).await.unwrap();
            stream.write_all(PING).await.unwrap();
            let answer = read_ping_answer(&mut stream).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

            // Keep-alive: silent for most of `tcpTimeout`, then a head one byte at a time,
            // never done.
            let idle_start = Instant::now();
            let silent = TCP_TIMEOUT * 8 / 10;
            tokio::time::sleep(silent).await;
            let (mut reader, mut writer) = stream.into_split();
            let trickle = tokio::task::spawn_local(async move {
                for byte in b"GET / HTTP/1.1\r\nHost: __ping__\r\nX-Slow: "
                    .iter()
                    .cycle()
                {
                    if writer.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(TRICKLE).await;
                }
            });
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest).await;
            let closed_after = idle_start.elapsed();
            trickle.abort();

            assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
            // One deadline for the wait and the head: closed `tcpTimeout` after the answer,
            // while consecutive limits would close at `silent + tcpTimeout`.
            assert!(
                closed_after > silent && closed_after <= TCP_TIMEOUT,
                "closed after {closed_after:?}"
            );
            worker.stop().await;
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn connections_beyond_max_connections_wait_in_the_backlog() {
    // Longer than the waits below: the held connections must not time out meanwhile.
    const TCP_TIMEOUT: Duration = Duration::from_secs(60);
    const WAIT: Duration = Duration::from_secs(10);
    LocalSet::new()
        .run_until(async {
            let worker = InProcess::start(serde_json::json!({
                "server": {"maxConnections": 2, "tcpTimeout": TCP_TIMEOUT.as_secs()}
            }));
            // Both places taken once the worker answers on them.
            let mut held = Vec::new();
            for _ in 0..2 {
                let mut stream = TcpStream::connect(worker.addr()).await.unwrap();
                stream.write_all(PING).await.unwrap();
                read_ping_answer(&mut stream).await;
                held.push(stream);
            }

            // The kernel completes the third handshake; the worker does not accept it. Under the
            // paused clock the wait ends only once every task is idle: the worker had every
            // chance to answer and did not.
            let mut third = TcpStream::connect(worker.addr()).await.unwrap();
            third.write_all(PING).await.unwrap();
            let mut byte = [0u8; 1];
            let early = tokio::time::timeout(WAIT, third.peek(&mut byte)).await;
            assert!(early.is_err(), "answered beyond maxConnections: {early:?}");

            drop(held.pop());
            let answer = tokio::time::timeout(WAIT, read_ping_answer(&mut third)).await;
            let answer = answer.expect("answered once a place is free");
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            drop(held);
            worker.stop().await;
        })
        .await;
}
