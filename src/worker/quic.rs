//! An https listener's HTTP/3 endpoint: its UDP socket (made by the master, `SO_REUSEPORT`)
//! driven by quinn, with the listener's TLS configuration made for QUIC: ALPN `h3`, TLS 1.3
//! early data (0-RTT) only with `https.earlyData` (its sessions then resumed from the worker's
//! session cache, as rustls requires for early data, rather than by the node's tickets), and
//! the `Alt-Svc` value its TCP answers carry.
//!
//! With `https.redisCertificates`, quinn needs the whole TLS configuration before it sees a
//! ClientHello, so no lookup can run before the handshake as on TCP (`handshake`): the
//! resolver serves, by SNI, what this worker's Redis certificate cache already holds (a name
//! an https client over TCP asked for, kept fresh by tracking), and the files otherwise.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use quinn::crypto::rustls::QuicServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::handshake::RedisCertificates;
use crate::config::Http3;
use crate::routes::redis::RedisRoutes;

/// The `Alt-Svc` value that points clients of the https listener on `port` to HTTP/3 on the
/// same port, for a day.
pub(super) fn alt_svc(port: u16) -> Option<HeaderValue> {
    HeaderValue::try_from(format!("h3=\":{port}\"; ma=86400")).ok()
}

/// The endpoint serving HTTP/3 on `socket` with the listener's TLS `config`; `idle` is
/// `tcpTimeout`.
pub(super) fn endpoint(
    socket: UdpSocket,
    address: SocketAddr,
    config: &ServerConfig,
    http3: Http3,
    redis: Option<&RedisCertificates>,
    idle: Duration,
) -> io::Result<quinn::Endpoint> {
    let mut tls = config.clone();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    // quinn takes 0-RTT when the TLS configuration offers it (rustls wants this value for it).
    tls.max_early_data_size = if http3.early_data { u32::MAX } else { 0 };
    if http3.early_data {
        // rustls takes early data only from a session it can use once (so that a replayed
        // ClientHello gets none): kept in this worker's session cache, not in a ticket any
        // worker opens.
        tls.ticketer = Arc::new(NoTickets);
    }
    if let Some(redis) = redis {
        tls.cert_resolver = Arc::new(CachedFirst {
            routes: redis.routes.clone(),
            files: tls.cert_resolver.clone(),
        });
    }
    let quic = QuicServerConfig::try_from(Arc::new(tls)).map_err(io::Error::other)?;
    let server = crate::h3::connection::server_config(Arc::new(quic), idle);
    let runtime = Arc::new(quinn::TokioRuntime);
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server),
        socket,
        runtime,
    )?;
    tracing::debug!(%address, "serving http/3");
    Ok(endpoint)
}

/// The certificate this worker holds from Redis for the client's server name, else the files'.
struct CachedFirst {
    routes: RedisRoutes,
    files: Arc<dyn ResolvesServerCert>,
}

impl ResolvesServerCert for CachedFirst {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let cached = hello
            .server_name()
            .and_then(|name| self.routes.last_known_certificate(name));
        match cached {
            Some(certificate) => Some(certificate.key.clone()),
            None => self.files.resolve(hello),
        }
    }
}

/// Sessions resumed from this worker's session cache only.
#[derive(Debug)]
struct NoTickets;

impl rustls::server::ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }

    fn lifetime(&self) -> u32 {
        0
    }

    fn encrypt(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }

    fn decrypt(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

impl std::fmt::Debug for CachedFirst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CachedFirst")
    }
}
