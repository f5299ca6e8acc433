//! One probe: `GET <path>` with `Host: <frontend>` on a fresh connection to a backend (over TLS
//! for an `https://` one, trusted as the workers trust it), and whether a whole answer head came
//! back healthy within the timeout, read by the proxy's own head parser: a backend whose answers
//! the proxy would refuse (a head cut short, a malformed field) fails its probe. A failed
//! handshake is a failed probe.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::routes::BackendUrl;
use crate::tls::backend::server_name;
use crate::wire::response::{InvalidResponse, ResponseHead};

/// Whether `url` answers `GET path` for `host` with a status below 500 within `timeout`: the
/// same line the proxy draws when it marks a backend on its answer.
/// `tls` is the connector for an `https://` backend, `None` for a plain one.
pub(super) async fn probe(
    url: &BackendUrl,
    host: &str,
    path: &str,
    timeout: Duration,
    tls: Option<TlsConnector>,
) -> bool {
    let exchange = async {
        let tcp = TcpStream::connect((url.host(), url.port())).await.ok()?;
        match tls {
            None => ask(tcp, host, path).await,
            Some(connector) => {
                let stream = connector
                    .connect(server_name(url.host())?, tcp)
                    .await
                    .ok()?;
                ask(stream, host, path).await
            }
        }
    };
    matches!(tokio::time::timeout(timeout, exchange).await, Ok(Some(code)) if code < 500)
}

async fn ask(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    host: &str,
    path: &str,
) -> Option<u16> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hipache-health-check\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut buf = Vec::with_capacity(512);
    let mut piece = [0u8; 1024];
    loop {
        match final_status(&mut buf) {
            Head::Final(status) => return Some(status),
            Head::Invalid => return None,
            Head::Partial => {}
        }
        let n = stream.read(&mut piece).await.ok()?;
        if n == 0 {
            // Closed before a whole head: the proxy would answer 502 for it.
            return None;
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
