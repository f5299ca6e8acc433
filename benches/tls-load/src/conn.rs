//! One connection: TCP connect, full TLS handshake, one `Connection: close` request, the answer
//! read to the end.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// What one connection ended with.
pub(crate) enum Outcome {
    /// The answer began with `HTTP/1.1 200`.
    Ok,
    /// An answer came, but not a 200: its first line.
    NotOk(String),
}

/// Everything every connection shares.
pub(crate) struct Target {
    pub(crate) address: SocketAddr,
    pub(crate) connector: TlsConnector,
    /// The SNI name (the `Host` too), as a browser would send it.
    pub(crate) name: ServerName<'static>,
    pub(crate) request: Vec<u8>,
}

impl Target {
    pub(crate) fn new(port: u16, host: &str, config: Arc<ClientConfig>) -> Result<Self, String> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| format!("HOST {host:?} is not a valid TLS server name: {e}"))?;
        Ok(Target {
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            connector: TlsConnector::from(config),
            name,
            request: format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .into_bytes(),
        })
    }

    /// One full connection; `buf` is the caller's, reused across connections.
    pub(crate) async fn once(&self, buf: &mut [u8]) -> io::Result<Outcome> {
        let tcp = TcpStream::connect(self.address).await?;
        tcp.set_nodelay(true)?;
        let mut tls = self.connector.connect(self.name.clone(), tcp).await?;
        tls.write_all(&self.request).await?;
        tls.flush().await?;
        // Only the head is kept (the status line); the rest is read and dropped.
        let mut head = Vec::with_capacity(64);
        loop {
            let n = match tls.read(buf).await {
                Ok(n) => n,
                // A server that closes its socket right after the answer without a close_notify
                // (allowed for HTTP with Connection: close, where the framing ends the message).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !head.is_empty() => 0,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            if head.len() < 64 {
                let take = n.min(64 - head.len());
                head.extend_from_slice(&buf[..take]);
            }
        }
        if head.starts_with(b"HTTP/1.1 200") {
            Ok(Outcome::Ok)
        } else {
            let line = head
                .split(|&b| b == b'\r' || b == b'\n')
                .next()
                .unwrap_or(&[]);
            Ok(Outcome::NotOk(String::from_utf8_lossy(line).into_owned()))
        }
    }
}
