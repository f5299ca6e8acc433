//! A client stream that counts the bytes it reads and writes (`bytes.in`, `bytes.out`), for
//! every protocol and tunnel above it. For TLS it wraps the decrypted side: the counts are HTTP
//! bytes, the same whatever the transport.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::h1::ClientStream;
use crate::metrics::{self, names::Counter};

/// `IO`, counted. Zero-sized beyond `IO`: the counters are the worker's thread-local ones.
pub(super) struct Metered<IO>(pub(super) IO);

impl<IO: AsyncRead + Unpin> AsyncRead for Metered<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.get_mut().0).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            metrics::add(Counter::BytesIn, (buf.filled().len() - before) as u64);
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Metered<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        counted(Pin::new(&mut self.get_mut().0).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        counted(Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

fn counted(polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
    if let Poll::Ready(Ok(n)) = polled {
        metrics::add(Counter::BytesOut, n as u64);
    }
    polled
}

impl<IO: ClientStream> ClientStream for Metered<IO> {}
