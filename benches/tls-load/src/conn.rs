//! One connection: TCP connect, full TLS handshake, one `Connection: close` request, the answer
//! read to the end.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use std::io::Write;

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
    /// The server name and request of each connection, taken in turn. Without `--sni`, one: an
    /// IP address, so no SNI is sent (as `openssl s_time`) and the port alone picks the
    /// certificate. run.sh's proxies have one certificate of each key type for the same name on
    /// two ports, and hipache, given an SNI name, picks by name before the port's certificate.
    /// With `--sni`, one per name, each request's `Host` the name it was sent for.
    names: Vec<(ServerName<'static>, Vec<u8>)>,
    next: AtomicUsize,
}

fn request(host: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

impl Target {
    /// `sni`: the server names to send, in turn; empty sends none, with `Host: host`.
    pub(crate) fn new(port: u16, host: &str, sni: Vec<String>, config: Arc<ClientConfig>) -> Self {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let names = if sni.is_empty() {
            vec![(ServerName::IpAddress(ip.into()), request(host))]
        } else {
            sni.into_iter()
                .filter_map(|name| {
                    let request = request(&name);
                    Some((ServerName::try_from(name).ok()?, request))
                })
                .collect()
        };
        Target {
            address: SocketAddr::new(ip, port),
            connector: TlsConnector::from(config),
            names,
            next: AtomicUsize::new(0),
        }
    }

    /// How many distinct server names the connections take in turn.
    pub(crate) fn name_count(&self) -> usize {
        self.names.len()
    }

    /// One full connection; `buf` is the caller's, reused across connections.
    pub(crate) async fn once(&self, buf: &mut [u8]) -> io::Result<Outcome> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.names.len();
        let (name, request) = &self.names[turn];
        let tcp = TcpStream::connect(self.address).await?;
        tcp.set_nodelay(true)?;
        // The request is handed to rustls before the handshake: it goes out as soon as the
        // handshake allows, in TLS 1.3 in the same write as the client's Finished (as browsers
        // send theirs), saving a system call on both sides.
        let mut queued = Ok(());
        let mut tls = self
            .connector
            .connect_with(name.clone(), tcp, |conn| {
                queued = conn.writer().write_all(request);
            })
            .await?;
        queued?;
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
