//! The client's side of an HTTP/1.x connection: its stream, and the bytes read from it that no
//! request has consumed yet. The buffer is lent (`wire::buffers`) only while a request is in
//! hand: an idle connection waits for its next bytes holding none.

use std::future::Future;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::proxy::backend::write_within;
use crate::wire::buffers;

/// A client stream the engine can serve: plain TCP, or TLS that chose HTTP/1.1.
pub(crate) trait ClientStream: AsyncRead + AsyncWrite + Unpin + 'static {}

impl ClientStream for TcpStream {}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {}

/// A client stream and its unread bytes.
pub(super) struct Client<IO> {
    io: IO,
    /// Read and not yet consumed; empty (no allocation) while idle.
    buf: Vec<u8>,
    /// The deadline of every wait for the client's bytes, made once with the connection's first
    /// wait: each wait resets it, which moves a registered timer later with one atomic write
    /// (tokio re-files it in its wheel only when the old time comes), where a timeout per wait
    /// would file a new timer in the wheel and take it out again, each request.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<IO: ClientStream> Client<IO> {
    pub(super) fn new(io: IO) -> Self {
        Self {
            io,
            buf: Vec::new(),
            timer: None,
        }
    }

    /// The bytes read and not yet consumed.
    pub(super) fn buf(&self) -> &[u8] {
        &self.buf
    }

    /// Gives the buffer back (what it held is dropped), so that an idle connection holds
    /// none.
    pub(super) fn release(&mut self) {
        buffers::give_back(std::mem::take(&mut self.buf));
    }

    /// Waits until `deadline` for the next request's first bytes and reads them: `false` if
    /// none came (silence, the end, an error). The buffer is taken for each read attempt and
    /// given back while the read waits, so an idle connection holds none; readiness that turns
    /// out false (a fresh stream, or one whose last read did not end on EAGAIN) costs one read
    /// that finds nothing, and data already there costs one read, as for any read.
    pub(super) async fn read_when_ready(&mut self, deadline: Instant) -> bool {
        let Self { io, buf, timer } = self;
        let read = std::future::poll_fn(|cx| {
            if buf.capacity() == 0 {
                *buf = buffers::take(buffers::HEAD);
            }
            buffers::reserve_read(buf);
            let polled = std::pin::pin!(io.read_buf(buf)).poll(cx);
            if polled.is_pending() && buf.is_empty() {
                buffers::give_back(std::mem::take(buf));
            }
            polled
        });
        matches!(by(timer, deadline, read).await, Some(Ok(n)) if n > 0)
    }

    /// Reads what the client sent next, by `deadline`: `false` if it closed, failed or stayed
    /// silent.
    pub(super) async fn read_more(&mut self, deadline: Instant) -> bool {
        if self.buf.capacity() == 0 {
            self.buf = buffers::take(buffers::HEAD);
        }
        buffers::reserve_read(&mut self.buf);
        let read = self.io.read_buf(&mut self.buf);
        matches!(by(&mut self.timer, deadline, read).await, Some(Ok(n)) if n > 0)
    }

    /// Reads what the client already sent, without waiting: `false` when nothing was ready
    /// (or it closed, or failed).
    pub(super) async fn read_ready(&mut self) -> bool {
        let Self { io, buf, .. } = self;
        buffers::reserve_read(buf);
        std::future::poll_fn(|cx| {
            let polled = std::pin::pin!(io.read_buf(buf)).poll(cx);
            Poll::Ready(matches!(polled, Poll::Ready(Ok(n)) if n > 0))
        })
        .await
    }

    /// Writes all of `bytes` unless the client stops reading for `limit`.
    pub(super) async fn write(&mut self, bytes: &[u8], limit: Duration) -> bool {
        write_within(&mut self.io, bytes, limit).await
    }

    /// Drops `range` of the buffer: a request's bytes, or body bytes passed on.
    pub(super) fn consume(&mut self, range: Range<usize>) {
        let end = range.end.min(self.buf.len());
        self.buf.drain(range.start.min(end)..end);
    }

    /// The stream, for a tunnel or a close, with the bytes after `consumed` (sent early by the
    /// client); the buffer goes back.
    pub(super) fn take_for_tunnel(&mut self, consumed: usize) -> (&mut IO, Vec<u8>) {
        let early = self.buf.get(consumed..).unwrap_or_default().to_vec();
        buffers::give_back(std::mem::take(&mut self.buf));
        (&mut self.io, early)
    }

    /// The read side with the buffer, and the write side, for an upload moved while its
    /// answer is relayed.
    pub(super) fn halves(&mut self) -> (Reading<'_, IO>, WriteHalf<&mut IO>) {
        if self.buf.capacity() == 0 {
            self.buf = buffers::take(buffers::HEAD);
        }
        let (read, write) = tokio::io::split(&mut self.io);
        let reading = Reading {
            io: read,
            buf: &mut self.buf,
            filled: false,
        };
        (reading, write)
    }

    /// The stream, to close it.
    pub(super) fn io(&mut self) -> &mut IO {
        &mut self.io
    }

    /// The stream and what was read from it, for the HTTP/2 server.
    pub(super) fn into_parts(self) -> (IO, Vec<u8>) {
        (self.io, self.buf)
    }
}

/// `work`'s output, or `None` once `deadline` passed first, timed by the connection's `timer`
/// (made here the first time). `work` is polled first, as `tokio::time::timeout_at` does: what is
/// already there is taken even past the deadline.
async fn by<F: Future>(
    timer: &mut Option<Pin<Box<Sleep>>>,
    deadline: Instant,
    work: F,
) -> Option<F::Output> {
    let timer = match timer {
        Some(timer) => {
            timer.as_mut().reset(deadline);
            timer
        }
        None => timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
    };
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// The client's read side and its unread bytes, while the write side relays an answer.
pub(super) struct Reading<'c, IO> {
    io: ReadHalf<&'c mut IO>,
    buf: &'c mut Vec<u8>,
    /// The last read filled the room it had: the body comes faster than the buffer takes it.
    filled: bool,
}

impl<IO: ClientStream> Reading<'_, IO> {
    pub(super) fn buf(&self) -> &[u8] {
        self.buf
    }

    /// Reads what the client sent next: 0 once it closed. Cancel-safe: bytes are in the
    /// buffer as soon as the read returns.
    pub(super) async fn read_more(&mut self) -> io::Result<usize> {
        buffers::reserve_stream_read(self.buf, self.filled);
        let room = self.buf.capacity() - self.buf.len();
        let read = self.io.read_buf(self.buf).await;
        self.filled = matches!(read, Ok(n) if n == room);
        read
    }

    /// Drops `range` of the buffer: body bytes passed on.
    pub(super) fn consume(&mut self, range: Range<usize>) {
        let end = range.end.min(self.buf.len());
        self.buf.drain(range.start.min(end)..end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client connection as the worker accepts it, and the peer's end.
    async fn connected() -> (TcpStream, Client<TcpStream>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let remote = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        (remote, Client::new(accepted))
    }

    /// What a fresh connection that has sent nothing waits with: no buffer, until bytes come.
    #[tokio::test]
    async fn an_accepted_connection_that_sent_nothing_is_not_taken_for_readable() {
        let (mut remote, mut client) = connected().await;

        let soon = Instant::now() + Duration::from_millis(200);
        assert!(
            !client.read_when_ready(soon).await,
            "ready with nothing sent"
        );
        assert_eq!(client.buf.capacity(), 0);

        tokio::io::AsyncWriteExt::write_all(&mut remote, b"G")
            .await
            .unwrap();
        let later = Instant::now() + Duration::from_secs(10);
        assert!(client.read_when_ready(later).await);
        assert_eq!(client.buf(), b"G");
    }

    /// Every wait ends at its own deadline, though all of a connection's waits share one timer:
    /// a deadline later than the armed one moves it on, an earlier one brings it back.
    #[tokio::test(start_paused = true)]
    async fn each_wait_ends_at_its_own_deadline_though_they_share_one_timer() {
        let (mut remote, mut client) = connected().await;
        let ms = Duration::from_millis;
        let ended_at = |start: Instant| Instant::now().duration_since(start);

        // Answered at once: the timer stays armed for 1 s.
        tokio::io::AsyncWriteExt::write_all(&mut remote, b"G")
            .await
            .unwrap();
        let start = Instant::now();
        assert!(client.read_when_ready(start + ms(1_000)).await);
        client.consume(0..1);
        // Later: silence ends the wait at 10 s, not when the timer was first armed for.
        assert!(!client.read_when_ready(start + ms(10_000)).await);
        let waited = ended_at(start);
        assert!(waited >= ms(10_000) && waited < ms(10_100), "{waited:?}");

        // Armed for 100 s by a wait that got its bytes, then a wait to 2 s ends at 2 s.
        tokio::io::AsyncWriteExt::write_all(&mut remote, b"E")
            .await
            .unwrap();
        let start = Instant::now();
        assert!(client.read_more(start + ms(100_000)).await);
        assert!(!client.read_more(start + ms(2_000)).await);
        let waited = ended_at(start);
        assert!(waited >= ms(2_000) && waited < ms(2_100), "{waited:?}");
    }

    /// A busy connection holds a buffer sized for a usual head, not for the largest one.
    #[tokio::test]
    async fn a_short_head_is_read_into_a_small_buffer_and_a_long_one_grows_it() {
        let (mut remote, mut client) = connected().await;
        let later = Instant::now() + Duration::from_secs(10);

        let short = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        tokio::io::AsyncWriteExt::write_all(&mut remote, short)
            .await
            .unwrap();
        assert!(client.read_when_ready(later).await);
        assert_eq!(client.buf(), short);
        assert!(client.buf.capacity() <= buffers::HEAD);

        let long = vec![b'a'; 5 * buffers::HEAD];
        tokio::io::AsyncWriteExt::write_all(&mut remote, &long)
            .await
            .unwrap();
        while client.buf().len() < short.len() + long.len() {
            assert!(client.read_more(later).await);
        }
        assert_eq!(&client.buf()[short.len()..], &long[..]);
    }
}
