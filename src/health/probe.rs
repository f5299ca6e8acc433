//! One probe: `GET <path>` with `Host: <frontend>` on a fresh connection to a backend (over TLS
//! for an `https://` one, trusted as the workers trust it), and whether a whole answer head came
//! back healthy within the timeout, or why not. The head is read by the proxy's own parser: a
//! backend whose answers the proxy would refuse (a head cut short, a malformed field) fails its
//! probe. A failed handshake is a failed probe.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::routes::BackendUrl;
use crate::tls::backend_trust::server_name;
use crate::wire::response::{InvalidResponse, ResponseHead};

/// Why a probe failed; the warning that marks a backend dead carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum ProbeFailure {
    #[error("connection refused")]
    Refused,
    #[error("connect failed")]
    ConnectFailed,
    #[error("timeout")]
    Timeout,
    #[error("tls handshake failed")]
    TlsHandshake,
    #[error("connection failed mid-exchange")]
    Io,
    #[error("bad status {0}")]
    BadStatus(u16),
    #[error("invalid head (cut short, or not one the proxy would relay)")]
    InvalidHead,
}

/// Whether `url` answers `GET path` for `host` with a status below 500 within `timeout`: the
/// same line the proxy draws when it marks a backend on its answer.
/// `tls` is the connector for an `https://` backend, `None` for a plain one.
pub(super) async fn probe(
    url: &BackendUrl,
    host: &str,
    path: &str,
    timeout: Duration,
    tls: Option<TlsConnector>,
) -> Result<(), ProbeFailure> {
    let exchange = async {
        let tcp =
            TcpStream::connect((url.host(), url.port()))
                .await
                .map_err(|error| match error.kind() {
                    io::ErrorKind::ConnectionRefused => ProbeFailure::Refused,
                    _ => ProbeFailure::ConnectFailed,
                })?;
        match tls {
            None => ask(tcp, host, path).await,
            Some(connector) => {
                let name = server_name(url.host()).ok_or(ProbeFailure::TlsHandshake)?;
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|_| ProbeFailure::TlsHandshake)?;
                ask(stream, host, path).await
            }
        }
    };
    let code = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ProbeFailure::Timeout)??;
    if code < 500 {
        Ok(())
    } else {
        Err(ProbeFailure::BadStatus(code))
    }
}

async fn ask(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    host: &str,
    path: &str,
) -> Result<u16, ProbeFailure> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hipache-health-check\r\n\
         Connection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|_| ProbeFailure::Io)?;
    let mut buf = Vec::with_capacity(512);
    let mut piece = [0u8; 1024];
    loop {
        match final_status(&mut buf) {
            Head::Final(status) => return Ok(status),
            Head::Invalid => return Err(ProbeFailure::InvalidHead),
            Head::Partial => {}
        }
        let n = stream
            .read(&mut piece)
            .await
            .map_err(|_| ProbeFailure::Io)?;
        if n == 0 {
            // Closed before a whole head: the proxy would answer 502 for it.
            return Err(ProbeFailure::InvalidHead);
        }
        buf.extend_from_slice(&piece[..n]);
    }
}

/// What the bytes read so far say.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// A whole, valid final answer head, with its status.
    Final(u16),
    /// Not a valid answer head: the proxy would answer 502 for it.
    Invalid,
    /// More bytes are needed.
    Partial,
}

/// Reads `buf` with the proxy's own response-head parser, dropping interim (1xx) heads from it
/// (pure). A probe passes only on an answer head the proxy would relay.
fn final_status(buf: &mut Vec<u8>) -> Head {
    loop {
        match ResponseHead::parse(buf, false) {
            Ok(Some(head)) if head.is_interim() => {
                buf.drain(..head.len);
            }
            Ok(Some(head)) => return Head::Final(head.status),
            Ok(None) => return Head::Partial,
            Err(InvalidResponse) => return Head::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-connection server on loopback that answers `reply` (or nothing, holding the
    /// connection open), and the backend URL to reach it.
    async fn server(reply: Option<&'static [u8]>) -> BackendUrl {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = BackendUrl::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 512];
            let _ = stream.read(&mut request).await;
            match reply {
                Some(reply) => stream.write_all(reply).await.unwrap(),
                None => std::future::pending().await,
            }
        });
        url
    }

    async fn probe_of(url: &BackendUrl) -> Result<(), ProbeFailure> {
        probe(url, "a.test", "/", Duration::from_secs(3), None).await
    }

    #[tokio::test]
    async fn each_failure_says_why() {
        let healthy = server(Some(b"HTTP/1.1 204 No Content\r\n\r\n")).await;
        assert_eq!(probe_of(&healthy).await, Ok(()));
        let sick = server(Some(b"HTTP/1.1 503 Busy\r\n\r\n")).await;
        assert_eq!(probe_of(&sick).await, Err(ProbeFailure::BadStatus(503)));
        let garbage = server(Some(b"SSH-2.0-OpenSSH\r\n")).await;
        assert_eq!(probe_of(&garbage).await, Err(ProbeFailure::InvalidHead));
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let refused = BackendUrl::parse(&format!("http://{}", closed.local_addr().unwrap()));
        drop(closed);
        assert_eq!(
            probe_of(&refused.unwrap()).await,
            Err(ProbeFailure::Refused)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_backend_is_a_timeout() {
        let silent = server(None).await;
        assert_eq!(probe_of(&silent).await, Err(ProbeFailure::Timeout));
    }

    fn read(bytes: &[u8]) -> Head {
        final_status(&mut bytes.to_vec())
    }

    #[test]
    fn only_a_whole_valid_final_head_counts() {
        assert_eq!(
            read(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            Head::Final(200)
        );
        assert_eq!(read(b"HTTP/1.0 503 Busy\r\n\r\nbody"), Head::Final(503));
        assert_eq!(
            read(b"HTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r\nHTTP/1.1 204\r\n\r\n"),
            Head::Final(204)
        );
        assert_eq!(read(b"HTTP/1.1 200 OK\r\n"), Head::Partial);
        assert_eq!(read(b"HTTP/1.1 200 OK\r\nContent-Le"), Head::Partial);
        assert_eq!(read(b""), Head::Partial);
        assert_eq!(read(b"HTTP/2 200\r\n\r\n"), Head::Invalid);
        assert_eq!(read(b"garbage\r\n\r\n"), Head::Invalid);
        assert_eq!(
            read(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Head::Invalid
        );
    }
}
