//! The TLS handshake of an https connection, and where its certificate comes from.
//!
//! Without `https.redisCertificates` it is the listener's acceptor as is: its resolver picks
//! among the files by SNI, with no other work per handshake. With it, the ClientHello is read
//! first (tokio-rustls' `LazyConfigAcceptor`), the server name is looked up in Redis (cached
//! per worker, kept fresh by tracking: `routes::redis`), and a certificate found there is served
//! for this handshake; otherwise the listener's own configuration resolves as without the
//! feature. rustls' resolver is synchronous, hence the lookup before it.
//!
//! With `acme` too, a ClientHello offering ALPN `acme-tls/1` is a tls-alpn-01 validation: it gets
//! the challenge certificate an order of the fleet published (and the connection ends after the
//! handshake), and a name with a frontend but no certificate waits for one issued on demand.
//!
//! Bounds: the client has `tcpTimeout` for its part of the handshake, and the Redis lookup at
//! most `tcpTimeout` more, after which the last certificate read for the name (or the file) is
//! served: a slow or stopped Redis never fails a handshake. An on-demand order is waited for
//! at most `tcpTimeout` too, then the listener's own certificate is served (the order goes on).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::Acceptor;
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_rustls::server::TlsStream;
use tokio_rustls::{LazyConfigAcceptor, TlsAcceptor};

use crate::acme::{Acme, ACME_TLS_ALPN};
use crate::routes::redis::RedisRoutes;
use crate::tls::Certificates;

/// One https listener's TLS.
pub(super) struct Tls {
    acceptor: TlsAcceptor,
    config: Arc<ServerConfig>,
    redis: Option<RedisCertificates>,
}

/// Where certificates kept in Redis are read from.
#[derive(Clone)]
pub(super) struct RedisCertificates {
    pub(super) routes: RedisRoutes,
    pub(super) provider: Arc<CryptoProvider>,
    /// With `acme`: tls-alpn-01 answers and on-demand issuance.
    pub(super) acme: Option<Acme>,
}

/// Why a handshake did not complete (the client's doing: logged at debug).
#[derive(Debug, thiserror::Error)]
pub(super) enum HandshakeError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("timed out")]
    TimedOut,
    /// A tls-alpn-01 validation: the handshake was all it wanted.
    #[error("acme tls-alpn-01 validation answered")]
    AcmeValidation,
    #[error("acme tls-alpn-01 validation for a name without a challenge")]
    NoAcmeChallenge,
}

impl Tls {
    pub(super) fn new(config: Arc<ServerConfig>, redis: Option<RedisCertificates>) -> Self {
        Self {
            acceptor: TlsAcceptor::from(config.clone()),
            config,
            redis,
        }
    }

    /// Runs the handshake on `stream`, giving the client `wait` (`tcpTimeout`) for its part.
    pub(super) async fn accept(
        &self,
        stream: TcpStream,
        wait: Duration,
    ) -> Result<TlsStream<TcpStream>, HandshakeError> {
        let Some(redis) = &self.redis else {
            return timeout(wait, self.acceptor.accept(stream))
                .await
                .map_err(|_| HandshakeError::TimedOut)?
                .map_err(HandshakeError::Io);
        };
        let mut deadline = Instant::now() + wait;
        let start = timeout_at(
            deadline,
            LazyConfigAcceptor::new(Acceptor::default(), stream),
        )
        .await
        .map_err(|_| HandshakeError::TimedOut)??;
        let server_name = start.client_hello().server_name().map(str::to_owned);
        let validation = (start.client_hello().alpn())
            .is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN));
        if let (Some(acme), true) = (&redis.acme, validation) {
            let name = server_name.as_deref().unwrap_or_default();
            let key = timeout(wait, acme.alpn_answer(name)).await.ok().flatten();
            let key = key.ok_or(HandshakeError::NoAcmeChallenge)?;
            let mut config = (*Certificates::serving(&self.config, key)).clone();
            config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
            timeout_at(deadline, start.into_stream(Arc::new(config)))
                .await
                .map_err(|_| HandshakeError::TimedOut)??;
            return Err(HandshakeError::AcmeValidation);
        }
        let config = match server_name {
            Some(name) => {
                let asked = Instant::now();
                let found = timeout(wait, redis.routes.certificate(&name, &redis.provider))
                    .await
                    .unwrap_or_else(|_| {
                        tracing::debug!(server_name = %name, "redis certificate lookup timed out");
                        redis.routes.last_known_certificate(&name)
                    });
                let found = match (found, &redis.acme) {
                    (None, Some(acme)) => timeout(wait, acme.on_demand(&name)).await.ok().flatten(),
                    (found, _) => found.map(|certificate| certificate.key.clone()),
                };
                deadline += asked.elapsed();
                match found {
                    Some(key) => Certificates::serving(&self.config, key),
                    None => self.config.clone(),
                }
            }
            None => self.config.clone(),
        };
        timeout_at(deadline, start.into_stream(config))
            .await
            .map_err(|_| HandshakeError::TimedOut)?
            .map_err(HandshakeError::Io)
    }
}
