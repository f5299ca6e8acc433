//! Upgrades (WebSocket and any HTTP/1.1 `Upgrade`, WebSocket over an HTTP/2 extended CONNECT):
//! once the session found that the backend's answer opens a tunnel ([`Proxy::tunnel`]), the
//! client and backend connections are spliced ([`Tunnel::run`]) until either side closes, or
//! until no byte moved either way for the idle timeout (`tcpTimeout`).
//!
//! Routing, retries and error pages happen before, like for any request (the attempt loop). The
//! tunnel is counted for a drain from the moment it opens, and its access log line is written
//! then (0 bytes, the status the client got), not when it closes. The front end only writes
//! the answer that opens it and hands over its side as a byte stream.
//!
//! Each direction borrows a buffer (`wire::buffers`) only while bytes move through it: a tunnel
//! waiting for its next message holds none (`copy_bidirectional` holds two zeroed 8 KiB buffers
//! for the tunnel's whole life, most of an open tunnel's memory).

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::backend::write_within;
use super::conn::BackendConn;
use super::open::Open;
use super::pool::BackendStream;
use super::Proxy;
use crate::access_log::PendingLine;
use crate::wire::buffers;

/// A tunnel the backend accepted: counted in the worker's tunnels while it lives.
pub(crate) struct Tunnel {
    backend: BackendConn,
    _open: Open,
    /// `tcpTimeout`: for the early bytes' writes, and the splice's idle limit.
    idle: Duration,
    timeout: Duration,
}

impl<S> Proxy<S> {
    /// The one place a backend's accepting answer (on `stream`) becomes a tunnel, whichever
    /// protocol the client speaks: the stream leaves its place under `maxSockets`, the tunnel
    /// is counted for a drain, and its access log line is written now, with 0 bytes and the
    /// `status` the client gets (a 101, or the 200 that opens an extended CONNECT).
    pub(crate) fn tunnel(
        &self,
        stream: BackendStream,
        line: Option<PendingLine>,
        status: u16,
    ) -> Tunnel {
        if let Some(mut line) = line {
            line.set_status(status);
            line.write(0);
        }
        Tunnel {
            backend: stream.into_tunnel(),
            _open: self.tunnels.enter(),
            idle: self.idle_timeout,
            timeout: self.response_timeout,
        }
    }
}

impl Tunnel {
    /// Runs the tunnel with the client's side `client`: bytes each side sent early (the
    /// client after its request, the backend after its 101) are delivered first, then the two
    /// are spliced.
    pub(crate) async fn run<C>(mut self, client: &mut C, to_backend: &[u8], to_client: &[u8])
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        if !to_backend.is_empty() && !write_within(&mut self.backend, to_backend, self.idle).await {
            return;
        }
        if !to_client.is_empty() && !write_within(client, to_client, self.idle).await {
            return;
        }
        splice_streams(client, &mut self.backend, self.timeout).await;
    }
}

/// Splices `client` and `backend` until one side closes or both are idle for `idle_timeout`.
async fn splice_streams<A, B>(client: &mut A, backend: &mut B, idle_timeout: Duration)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let last = Rc::new(Cell::new(Instant::now()));
    let mut client = Watched::new(client, last.clone());
    let mut backend = Watched::new(backend, last.clone());
    match splice(&mut client, &mut backend, &last, idle_timeout).await {
        Ok(Some((up, down))) => tracing::debug!(up, down, "tunnel closed"),
        Ok(None) => tracing::debug!("tunnel idle; closed"),
        Err(error) => tracing::debug!(%error, "tunnel ended with an error"),
    }
}

/// Copies both ways; `None` when the tunnel was idle for `idle_timeout`.
async fn splice<A, B>(
    a: &mut A,
    b: &mut B,
    last: &Cell<Instant>,
    idle_timeout: Duration,
) -> io::Result<Option<(u64, u64)>>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut up, mut down) = (Direction::default(), Direction::default());
    let copy = std::future::poll_fn(|cx| {
        let up_done = up.poll_copy(cx, a, b)?.is_ready();
        let down_done = down.poll_copy(cx, b, a)?.is_ready();
        match up_done && down_done {
            true => Poll::Ready(Ok::<_, io::Error>((up.bytes, down.bytes))),
            false => Poll::Pending,
        }
    });
    tokio::pin!(copy);
    loop {
        let deadline = last.get() + idle_timeout;
        tokio::select! {
            copied = &mut copy => return copied.map(Some),
            () = tokio::time::sleep_until(deadline) => {
                if last.get() + idle_timeout <= Instant::now() {
                    return Ok(None);
                }
            }
        }
    }
}

/// One direction of a tunnel: what was read and not yet written, and how far it went.
#[derive(Default)]
struct Direction {
    /// Bytes read and not yet all written; no allocation while the direction waits to read.
    buf: Vec<u8>,
    /// Bytes of `buf` written.
    written: usize,
    /// The last read filled its buffer: the next one gets a large buffer.
    filled: bool,
    /// Written since the last flush.
    unflushed: bool,
    /// The reader ended; the writer is shut down next.
    ended: bool,
    done: bool,
    bytes: u64,
}

impl Direction {
    /// Moves bytes from `from` to `to` until `from` ends and `to` is shut down (ready), or
    /// neither can move now (pending, holding no buffer unless bytes wait to be written).
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut R,
        to: &mut W,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            if self.done {
                return Poll::Ready(Ok(()));
            }
            if self.written < self.buf.len() {
                let wrote = std::task::ready!(
                    Pin::new(&mut *to).poll_write(cx, &self.buf[self.written..])
                )?;
                if wrote == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.written += wrote;
                self.bytes += wrote as u64;
                self.unflushed = true;
                continue;
            }
            if self.ended {
                std::task::ready!(Pin::new(&mut *to).poll_shutdown(cx))?;
                self.done = true;
                continue;
            }
            (self.buf, self.written) = (self.lend(), 0);
            let room = self.buf.capacity();
            match std::pin::pin!(from.read_buf(&mut self.buf)).poll(cx)? {
                Poll::Ready(0) => self.ended = true,
                Poll::Ready(read) => self.filled = read == room,
                Poll::Pending => {
                    buffers::give_back(std::mem::take(&mut self.buf));
                    // What was written may sit in the writer (TLS records): out it goes
                    // before the wait.
                    if self.unflushed && Pin::new(&mut *to).poll_flush(cx)?.is_ready() {
                        self.unflushed = false;
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// An empty buffer for the next read: the one held, or one lent; larger if the last read
    /// filled its buffer.
    fn lend(&mut self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if buf.capacity() == 0 {
            return buffers::take(match self.filled {
                true => buffers::LARGE,
                false => buffers::ANSWER,
            });
        }
        buffers::reserve_stream_read(&mut buf, self.filled);
        buf
    }
}

/// A stream that notes the time of its last successful read or write.
struct Watched<T> {
    io: T,
    last: Rc<Cell<Instant>>,
}

impl<T> Watched<T> {
    fn new(io: T, last: Rc<Cell<Instant>>) -> Self {
        Self { io, last }
    }

    fn touch(&self) {
        self.last.set(Instant::now());
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    }

    #[test]
    fn idle_tunnel_is_closed_after_the_timeout() {
        rt().block_on(async {
            let (mut client, proxy_client) = duplex(1024);
            let (proxy_backend, mut backend) = duplex(1024);
            let last = Rc::new(Cell::new(Instant::now()));
            let mut a = Watched::new(proxy_client, last.clone());
            let mut b = Watched::new(proxy_backend, last.clone());
            let idle = Duration::from_secs(30);
            let splicing = splice(&mut a, &mut b, &last, idle);
            let talking = async {
                tokio::time::sleep(Duration::from_secs(20)).await;
                client.write_all(b"ping").await.unwrap();
                let mut got = [0u8; 4];
                backend.read_exact(&mut got).await.unwrap();
                assert_eq!(&got, b"ping");
                Instant::now()
            };
            let (outcome, talked_at) = tokio::join!(splicing, talking);
            assert!(outcome.unwrap().is_none());
            // Traffic at 20 s pushed the deadline to 50 s.
            assert!(Instant::now() >= talked_at + idle);
        });
    }

    /// An open tunnel waiting for its next message holds no buffer, in either direction.
    #[test]
    fn a_waiting_direction_holds_no_buffer() {
        rt().block_on(async {
            let (mut client, mut proxy_client) = duplex(64 * 1024);
            let (mut proxy_backend, mut backend) = duplex(64 * 1024);
            let mut up = Direction::default();
            let (from, to) = (&mut proxy_client, &mut proxy_backend);
            let poll = std::future::poll_fn(|cx| Poll::Ready(up.poll_copy(cx, from, to)));
            assert!(poll.await.is_pending());
            assert_eq!(up.buf.capacity(), 0);

            let message = vec![7u8; 40 * 1024];
            client.write_all(&message).await.unwrap();
            let poll = std::future::poll_fn(|cx| Poll::Ready(up.poll_copy(cx, from, to)));
            assert!(poll.await.is_pending());
            assert_eq!(up.buf.capacity(), 0);
            let mut got = vec![0u8; message.len()];
            backend.read_exact(&mut got).await.unwrap();
            assert_eq!((got, up.bytes), (message, 40 * 1024));
        });
    }

    #[test]
    fn tunnel_ends_when_a_side_closes() {
        rt().block_on(async {
            let (mut client, proxy_client) = duplex(1024);
            let (proxy_backend, mut backend) = duplex(1024);
            let last = Rc::new(Cell::new(Instant::now()));
            let mut a = Watched::new(proxy_client, last.clone());
            let mut b = Watched::new(proxy_backend, last.clone());
            let peers = async {
                client.write_all(b"hello").await.unwrap();
                client.shutdown().await.unwrap();
                let mut got = Vec::new();
                backend.read_to_end(&mut got).await.unwrap();
                backend.shutdown().await.unwrap();
                got
            };
            let (outcome, got) = tokio::join!(
                splice(&mut a, &mut b, &last, Duration::from_secs(30)),
                peers
            );
            assert_eq!(outcome.unwrap(), Some((5, 0)));
            assert_eq!(got, b"hello");
        });
    }
}
