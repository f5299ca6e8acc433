//! `BackendConn`: a connection to a backend, plain TCP or TLS (`https://` backends), with the
//! few socket operations the front ends need beyond reading and writing: a split into halves
//! that can be used at once, a wait for the backend's first answer bytes (`peek`), and the
//! idle check of the pool (`is_open`).
//!
//! A plain stream costs what a `TcpStream` costs: each operation is one match on the variant.
//! For TLS, "the backend said something" means plaintext: the TCP socket's bytes are fed to
//! rustls first, so a TLS 1.3 session ticket arriving after the handshake is not taken for an
//! answer.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

type Tls = RefCell<TlsStream<TcpStream>>;

/// A connection to a backend.
pub(crate) enum BackendConn {
    Plain(TcpStream),
    /// In a `RefCell` so its halves can share it: a worker is single-threaded and each poll
    /// borrows it only for the poll's duration.
    Tls(Box<Tls>),
}

/// The read half of a split `BackendConn`.
pub(crate) enum ReadHalf<'a> {
    Plain(tcp::ReadHalf<'a>),
    Tls(&'a Tls),
}

/// The write half of a split `BackendConn`.
pub(crate) enum WriteHalf<'a> {
    Plain(tcp::WriteHalf<'a>),
    Tls(&'a Tls),
}

impl BackendConn {
    pub(crate) fn tls(stream: TlsStream<TcpStream>) -> Self {
        Self::Tls(Box::new(RefCell::new(stream)))
    }

    /// Both halves, usable at once (an upload moving while its answer is relayed).
    pub(crate) fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        match self {
            Self::Plain(tcp) => {
                let (read, write) = tcp.split();
                (ReadHalf::Plain(read), WriteHalf::Plain(write))
            }
            Self::Tls(tls) => (ReadHalf::Tls(tls), WriteHalf::Tls(tls)),
        }
    }

    /// Whether an idle connection is still usable: nothing to read (no end, no stray bytes).
    pub(crate) fn is_open(&mut self) -> bool {
        match self {
            Self::Plain(tcp) => {
                let mut byte = [0u8; 1];
                matches!(tcp.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            Self::Tls(tls) => matches!(feed_tls(tls.get_mut()), Fed::WouldBlock),
        }
    }
}

impl ReadHalf<'_> {
    /// Resolves once the backend sent something to read (or closed, or failed), consuming
    /// nothing of it.
    pub(crate) async fn peek(&mut self) {
        match self {
            Self::Plain(read) => {
                let mut first = [0u8; 1];
                let _ = read.peek(&mut first).await;
            }
            Self::Tls(tls) => std::future::poll_fn(|cx| poll_tls_readable(tls, cx)).await,
        }
    }
}

/// What feeding the socket's bytes to rustls found.
enum Fed {
    /// Plaintext, the end, or an error: a read would return at once.
    Readable,
    /// The socket has nothing more and rustls holds no plaintext.
    WouldBlock,
}

/// Moves whatever the socket holds into rustls, without waiting.
fn feed_tls(tls: &mut TlsStream<TcpStream>) -> Fed {
    let (tcp, conn) = tls.get_mut();
    loop {
        if !conn.wants_read() {
            return Fed::Readable;
        }
        match conn.read_tls(&mut TryRead(tcp)) {
            Ok(0) => return Fed::Readable,
            Ok(_) => {
                if conn.process_new_packets().is_err() {
                    return Fed::Readable;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Fed::WouldBlock,
            Err(_) => return Fed::Readable,
        }
    }
}

fn poll_tls_readable(tls: &Tls, cx: &mut Context<'_>) -> Poll<()> {
    let mut tls = tls.borrow_mut();
    loop {
        if let Fed::Readable = feed_tls(&mut tls) {
            return Poll::Ready(());
        }
        // `try_read` cleared the readiness it found false, so this registers for the next.
        match tls.get_ref().0.poll_read_ready(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Ready(Ok(())) => {}
        }
    }
}

/// `std::io::Read` over a tokio socket's non-blocking read, for `rustls::read_tls`.
struct TryRead<'a>(&'a TcpStream);

impl io::Read for TryRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl AsyncRead for BackendConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(tls.get_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BackendConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(tls.get_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Tls(tls) => Pin::new(tls.get_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(tls.get_mut()).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for ReadHalf<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(read) => Pin::new(read).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(&mut *tls.borrow_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(write) => Pin::new(write).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(&mut *tls.borrow_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(write) => Pin::new(write).poll_flush(cx),
            Self::Tls(tls) => Pin::new(&mut *tls.borrow_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(write) => Pin::new(write).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(&mut *tls.borrow_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests;
