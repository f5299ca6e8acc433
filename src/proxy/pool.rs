//! Connections to backends, for both client protocols: plain TCP streams, or TLS over them for
//! `https://` backends (the handshake bounded by `tcpTimeout` too), opened under `tcpTimeout`, at most `maxSockets` in use per backend (as Node's agent counts them: an idle
//! stream or a tunnel takes no place), and with `httpKeepAlive` kept idle for the next request
//! to the same backend (most recently used first).
//!
//! Single-threaded on purpose (one pool per worker, `Rc`/`RefCell`, no locks). An idle stream
//! costs a socket and nothing else: no task, no buffer. A backend that closed an idle stream is
//! noticed when the stream is taken (`is_open`), and the few that close in the instant between
//! are retried by the caller on a fresh stream.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsConnector;

use super::conn::BackendConn;
use super::error::{ProxyError, TlsFailure};
use crate::config::BackendTrust;
use crate::escape::Escaped;
use crate::routes::BackendUrl;
use crate::tls::backend_trust as tls_client;

/// An idle stream older than this is closed rather than reused: backends commonly drop idle
/// keep-alive connections after 5 s (nginx: 75 s, Node: 5 s), and one that did is a wasted try.
pub(crate) const IDLE_LIFETIME: Duration = Duration::from_secs(4);

pub(crate) struct BackendPool {
    keep_alive: bool,
    max_sockets: usize,
    connect_timeout: Duration,
    backends: RefCell<HashMap<BackendUrl, Rc<Slot>>>,
    tls: BackendTls,
}

/// How `https://` backends are trusted; the connector is built at the first one, so a fleet
/// of plain backends never reads the system's certificates.
pub(crate) struct BackendTls {
    trust: BackendTrust,
    connector: OnceCell<TlsConnector>,
}

impl BackendTls {
    pub(crate) fn new(trust: BackendTrust) -> Self {
        Self {
            trust,
            connector: OnceCell::new(),
        }
    }

    fn connector(&self) -> &TlsConnector {
        self.connector
            .get_or_init(|| tls_client::connector(&self.trust))
    }
}

/// One backend's idle streams and the permits that bound the streams in use.
struct Slot {
    idle: RefCell<Vec<(BackendConn, Instant)>>,
    permits: Arc<Semaphore>,
}

/// A stream to a backend in use by a request, holding its place under `maxSockets`.
pub(crate) struct BackendStream {
    pub(crate) stream: BackendConn,
    /// Taken from the idle list: the backend may have closed it without our knowing.
    pub(crate) reused: bool,
    permit: OwnedSemaphorePermit,
    slot: Rc<Slot>,
}

impl BackendStream {
    /// Keeps the stream for the next request to its backend, and frees its place for a request
    /// that waits for one. Call only once the whole response was read and nothing follows it.
    pub(crate) fn release(self) {
        self.slot
            .idle
            .borrow_mut()
            .push((self.stream, Instant::now()));
    }

    /// The stream of a tunnel, which takes no place under `maxSockets` while it lasts.
    pub(crate) fn into_tunnel(self) -> BackendConn {
        self.stream
    }
}

impl BackendPool {
    pub(crate) fn new(
        keep_alive: bool,
        max_sockets: usize,
        connect_timeout: Duration,
        tls: BackendTls,
    ) -> Self {
        Self {
            keep_alive,
            max_sockets: max_sockets.max(1),
            connect_timeout,
            backends: RefCell::new(HashMap::new()),
            tls,
        }
    }

    pub(crate) fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// A stream to `url`: an idle one when keep-alive allows, else a new one; waits at most
    /// `tcpTimeout` for a place under `maxSockets`.
    pub(crate) async fn stream(&self, url: &BackendUrl) -> Result<BackendStream, ProxyError> {
        let slot = self.slot(url);
        let permit = self.place(&slot).await?;
        if self.keep_alive {
            if let Some(stream) = take_idle(&slot) {
                return Ok(BackendStream {
                    stream,
                    reused: true,
                    permit,
                    slot,
                });
            }
        }
        self.connect(url, slot, permit).await
    }

    /// A new stream to `url` instead of `stale`, in its place under `maxSockets`.
    pub(crate) async fn replace(
        &self,
        url: &BackendUrl,
        stale: BackendStream,
    ) -> Result<BackendStream, ProxyError> {
        let BackendStream { permit, slot, .. } = stale;
        self.connect(url, slot, permit).await
    }

    async fn place(&self, slot: &Slot) -> Result<OwnedSemaphorePermit, ProxyError> {
        match slot.permits.clone().try_acquire_owned() {
            Ok(permit) => Ok(permit),
            Err(_) => {
                tokio::time::timeout(self.connect_timeout, slot.permits.clone().acquire_owned())
                    .await
                    .map_err(|_| ProxyError::SocketLimit)?
                    .map_err(|_| ProxyError::SocketLimit)
            }
        }
    }

    /// Closes idle streams that expired or that their backend closed, and forgets backends
    /// with nothing open, so a pool that saw many backends does not keep their sockets.
    pub(crate) fn sweep(&self) {
        self.backends.borrow_mut().retain(|_, slot| {
            let mut idle = slot.idle.borrow_mut();
            idle.retain_mut(|(stream, since)| since.elapsed() < IDLE_LIFETIME && stream.is_open());
            let in_use = Rc::strong_count(slot) > 1;
            in_use || !idle.is_empty()
        });
    }

    fn slot(&self, url: &BackendUrl) -> Rc<Slot> {
        if let Some(slot) = self.backends.borrow().get(url) {
            return slot.clone();
        }
        let slot = Rc::new(Slot {
            idle: RefCell::new(Vec::new()),
            permits: Arc::new(Semaphore::new(self.max_sockets)),
        });
        self.backends.borrow_mut().insert(url.clone(), slot.clone());
        slot
    }

    /// TLS over a fresh `tcp` to `url`, within `tcpTimeout`: any failure (a certificate that
    /// does not verify, a backend that speaks no TLS, silence) is the backend's.
    async fn handshake(&self, url: &BackendUrl, tcp: TcpStream) -> Result<BackendConn, ProxyError> {
        let name = tls_client::server_name(url.host())
            .ok_or(ProxyError::BackendTls(TlsFailure::BadName))?;
        let handshake = self.tls.connector().connect(name, tcp);
        match tokio::time::timeout(self.connect_timeout, handshake).await {
            Ok(Ok(stream)) => Ok(BackendConn::tls(stream)),
            Ok(Err(error)) => {
                let why = tls_failure(&error);
                tracing::debug!(backend = %Escaped(url.as_str()), reason = why.reason(), %error, "backend tls handshake failed");
                Err(ProxyError::BackendTls(why))
            }
            Err(_) => Err(ProxyError::BackendTls(TlsFailure::Timeout)),
        }
    }

    async fn connect(
        &self,
        url: &BackendUrl,
        slot: Rc<Slot>,
        permit: OwnedSemaphorePermit,
    ) -> Result<BackendStream, ProxyError> {
        let stream = tokio::time::timeout(self.connect_timeout, open(url))
            .await
            .map_err(|_| ProxyError::ConnectTimeout)?
            .map_err(|error| classify_connect(&error))?;
        // Latency matters more than packet count for a proxy's small writes.
        let _ = stream.set_nodelay(true);
        let stream = if url.is_tls() {
            // Boxed: a TLS handshake's state (about 1.2 KiB) would otherwise be room every
            // request to every backend keeps while it waits for a stream.
            Box::pin(self.handshake(url, stream)).await?
        } else {
            BackendConn::Plain(stream)
        };
        Ok(BackendStream {
            stream,
            reused: false,
            permit,
            slot,
        })
    }
}

/// The most recently used idle stream that is still open; older or closed ones are dropped.
fn take_idle(slot: &Slot) -> Option<BackendConn> {
    let mut idle = slot.idle.borrow_mut();
    while let Some((mut stream, since)) = idle.pop() {
        if since.elapsed() < IDLE_LIFETIME && stream.is_open() {
            return Some(stream);
        }
    }
    None
}

async fn open(url: &BackendUrl) -> io::Result<TcpStream> {
    match url.host().parse::<IpAddr>() {
        Ok(ip) => TcpStream::connect((ip, url.port())).await,
        Err(_) => TcpStream::connect((url.host(), url.port())).await,
    }
}

/// Hipache marks a backend dead on ECONNREFUSED and ETIMEDOUT; other failures only count as a try.
fn classify_connect(error: &io::Error) -> ProxyError {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => ProxyError::ConnectRefused,
        io::ErrorKind::TimedOut => ProxyError::ConnectTimeout,
        _ => ProxyError::BackendIo { replayable: true },
    }
}

/// Why a backend's TLS handshake failed, from rustls' and webpki's error kinds (tokio-rustls
/// carries rustls' error inside the `io::Error`; without one, the connection itself failed).
fn tls_failure(error: &io::Error) -> TlsFailure {
    use rustls::{CertificateError as Cert, Error as Tls};
    let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<Tls>()) else {
        return TlsFailure::Closed;
    };
    match tls {
        Tls::InvalidCertificate(cert) => match cert {
            Cert::UnknownIssuer => TlsFailure::UnknownIssuer,
            Cert::NotValidForName | Cert::NotValidForNameContext { .. } => TlsFailure::NameMismatch,
            Cert::Expired | Cert::ExpiredContext { .. } => TlsFailure::Expired,
            Cert::NotValidYet | Cert::NotValidYetContext { .. } => TlsFailure::NotYetValid,
            Cert::Revoked => TlsFailure::Revoked,
            Cert::BadSignature => TlsFailure::BadSignature,
            Cert::Other(other)
                if matches!(
                    other.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) =>
            {
                TlsFailure::CaUsedAsLeaf
            }
            _ => TlsFailure::BadCertificate,
        },
        Tls::NoCertificatesPresented => TlsFailure::BadCertificate,
        Tls::AlertReceived(_) => TlsFailure::AlertReceived,
        Tls::InvalidMessage(_)
        | Tls::InappropriateMessage { .. }
        | Tls::InappropriateHandshakeMessage { .. } => TlsFailure::NotTls,
        Tls::PeerIncompatible(_) => TlsFailure::Incompatible,
        _ => TlsFailure::Other,
    }
}
