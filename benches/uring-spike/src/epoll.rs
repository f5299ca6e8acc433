//! Variant (a): today's shape. A tokio current-thread runtime per worker (epoll underneath), one
//! task per client connection, one keep-alive backend connection per client connection: per
//! request a read from the client, a write to the backend, a read from the backend and a write to
//! the client, each its own system call, plus epoll_wait when nothing is ready.

use crate::framing::{frame, Frame};
use crate::{Config, BUF_SIZE};
use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub fn run(listener: std::net::TcpListener, config: Config) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        loop {
            let (client, _) = listener.accept().await?;
            let backend = config.backend;
            tokio::spawn(async move {
                // A failed connection is closed; the spike only counts what wrk sees.
                let _ = serve(client, backend).await;
            });
        }
    })
}

async fn serve(mut client: TcpStream, backend_addr: SocketAddr) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut from_client = Vec::with_capacity(BUF_SIZE);
    let mut from_backend = Vec::with_capacity(BUF_SIZE);
    let mut backend: Option<TcpStream> = None;
    loop {
        let request = read_message(&mut client, &mut from_client).await?;
        if request == 0 {
            return Ok(());
        }
        let upstream = match &mut backend {
            Some(upstream) => upstream,
            None => {
                let upstream = TcpStream::connect(backend_addr).await?;
                upstream.set_nodelay(true)?;
                backend.insert(upstream)
            }
        };
        upstream.write_all(&from_client[..request]).await?;
        from_client.drain(..request);
        let answer = read_message(upstream, &mut from_backend).await?;
        if answer == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        client.write_all(&from_backend[..answer]).await?;
        from_backend.drain(..answer);
    }
}

/// Reads until `buf` starts with a whole message and returns its length, or 0 on a clean end of
/// stream between messages.
async fn read_message(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    loop {
        match frame(buf) {
            Frame::Complete(n) => return Ok(n),
            Frame::Unsupported(why) => return Err(io::Error::other(why)),
            Frame::Incomplete => {}
        }
        if buf.len() >= BUF_SIZE {
            return Err(io::Error::other("message head over the buffer size"));
        }
        if stream.read_buf(buf).await? == 0 {
            return match buf.is_empty() {
                true => Ok(0),
                false => Err(io::ErrorKind::UnexpectedEof.into()),
            };
        }
    }
}
