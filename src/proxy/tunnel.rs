//! Upgrades (WebSocket and any HTTP/1.1 `Upgrade`): once the backend answered 101, the client
//! and backend connections are spliced until either side closes, or until no byte moved either
//! way for the idle timeout (`tcpTimeout`).
//!
//! Routing, retries and error pages happen before, like for any request (the attempt loop); the
//! front end that relays the 101 counts the tunnel for a drain and writes its access log line
//! when the 101 is sent (0 bytes), not when it closes.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Splices `client` and `backend` until one side closes or both are idle for `idle_timeout`.
pub(crate) async fn splice_streams<A, B>(client: &mut A, backend: &mut B, idle_timeout: Duration)
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
    let copy = tokio::io::copy_bidirectional(a, b);
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
