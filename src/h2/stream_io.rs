//! An HTTP/2 stream as a byte stream (`AsyncRead` + `AsyncWrite`), for a tunnel opened by an
//! extended CONNECT: DATA frames both ways, each side's window honoured.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::h2::{RecvStream, SendStream};
use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(super) struct StreamIo {
    recv: RecvStream,
    send: SendStream<Bytes>,
    /// What was received and not read yet.
    unread: Bytes,
}

impl StreamIo {
    pub(super) fn new(recv: RecvStream, send: SendStream<Bytes>) -> Self {
        Self {
            recv,
            send,
            unread: Bytes::new(),
        }
    }
}

fn gone(error: ::h2::Error) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, error)
}

impl AsyncRead for StreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.unread.is_empty() {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Given back once taken: what stands unread here is at most one frame.
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    this.unread = data;
                }
                Some(Err(error)) => return Poll::Ready(Err(gone(error))),
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = this.unread.len().min(buf.remaining());
        buf.put_slice(&this.unread[..n]);
        this.unread.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for StreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        this.send.reserve_capacity(buf.len());
        loop {
            let room = this.send.capacity();
            if room > 0 {
                let n = room.min(buf.len());
                let data = Bytes::copy_from_slice(&buf[..n]);
                this.send.send_data(data, false).map_err(gone)?;
                return Poll::Ready(Ok(n));
            }
            match ready!(this.send.poll_capacity(cx)) {
                Some(Ok(_)) => {}
                Some(Err(error)) => return Poll::Ready(Err(gone(error))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // `h2` writes what it was given as the connection task goes.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // An empty DATA frame that ends the stream: our half of the tunnel is closed.
        Poll::Ready(this.send.send_data(Bytes::new(), true).map_err(gone))
    }
}
