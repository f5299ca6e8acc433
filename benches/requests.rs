//! The client side of the instructions-per-request measurement (`benches/README.md`, "Instructions
//! per request"): sends `N` GET requests one after the other on one keep-alive connection, in
//! HTTP/1.1 or in HTTP/2 over cleartext (prior knowledge), and checks that each got a `200` with
//! its whole body. It measures nothing itself: the proxy's worker runs under callgrind.
//!
//! `cargo build --bench requests`, then
//! `target/debug/deps/requests-* h1|h2c 127.0.0.1:PORT HOST N`.

use std::error::Error;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, addr, host, n] = args.as_slice() else {
        return Err("usage: requests h1|h2c ADDR HOST N".into());
    };
    let n: u32 = n.parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match mode.as_str() {
            "h1" => h1(addr, host, n).await,
            "h2c" => h2c(addr, host, n).await,
            _ => Err("mode is h1 or h2c".into()),
        }
    })?;
    eprintln!("{n} requests answered 200");
    Ok(())
}

async fn h1(addr: &str, host: &str, n: u32) -> Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let mut buf = Vec::with_capacity(16 * 1024);
    for _ in 0..n {
        stream.write_all(request.as_bytes()).await?;
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Err("closed before a head".into());
            }
        };
        let head = std::str::from_utf8(&buf[..head_end])?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!("not a 200: {head}").into());
        }
        let length = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .ok_or("no content-length")?;
        while buf.len() < head_end + length {
            if stream.read_buf(&mut buf).await? == 0 {
                return Err("closed mid-body".into());
            }
        }
        buf.drain(..head_end + length);
    }
    Ok(())
}

async fn h2c(addr: &str, host: &str, n: u32) -> Result<()> {
    let stream = TcpStream::connect(addr).await?;
    let (mut client, connection) = h2::client::handshake(stream).await?;
    let driving = tokio::spawn(connection);
    for _ in 0..n {
        client = client.ready().await?;
        let request = http::Request::get(format!("http://{host}/")).body(())?;
        let (answer, _) = client.send_request(request, true)?;
        let answer = answer.await?;
        if answer.status() != http::StatusCode::OK {
            return Err(format!("not a 200: {}", answer.status()).into());
        }
        let mut body = answer.into_body();
        while let Some(data) = body.data().await {
            let data: Bytes = data?;
            body.flow_control().release_capacity(data.len())?;
        }
    }
    drop(client);
    driving.abort();
    Ok(())
}
