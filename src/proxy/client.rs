//! The worker's client towards backends: fresh or pooled HTTP/1.1 connections, `maxSockets` per
//! backend, `tcpTimeout` on connect.
//!
//! Single-threaded on purpose (one per worker, `Rc`/`RefCell`, no locks). With `httpKeepAlive`
//! a connection whose response was read to the end goes back to its backend's idle list, and the
//! next request to that backend takes the most recently used one. Without it (Hipache's
//! default), every request gets its own connection, closed after the response.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::body::RequestBody;
use super::error::ProxyError;
use crate::routes::BackendUrl;

/// How long a pooled connection may take to report it is ready before a fresh one is opened.
const POOLED_READY_TIMEOUT: Duration = Duration::from_millis(100);

pub struct BackendClient {
    keep_alive: bool,
    max_sockets: usize,
    connect_timeout: Duration,
    backends: RefCell<HashMap<BackendUrl, Rc<BackendConnections>>>,
}

/// Connections of one backend: the idle ones and the permits that bound them all.
pub struct BackendConnections {
    idle: RefCell<Vec<SendRequest<RequestBody>>>,
    permits: Arc<Semaphore>,
}

/// A connection ready to send one request.
pub struct Connection {
    pub sender: SendRequest<RequestBody>,
    pub reused: bool,
    owner: Rc<BackendConnections>,
}

/// A connection to give back to its backend once its response has been read.
pub struct Idle {
    sender: SendRequest<RequestBody>,
    owner: Rc<BackendConnections>,
}

impl Idle {
    pub fn release(self) {
        if !self.sender.is_closed() {
            self.owner.idle.borrow_mut().push(self.sender);
        }
    }
}

impl Connection {
    /// The handle to keep for the pool, when keep-alive is on.
    pub fn into_idle(self, keep_alive: bool) -> Option<Idle> {
        keep_alive.then_some(Idle {
            sender: self.sender,
            owner: self.owner,
        })
    }
}

impl BackendClient {
    pub fn new(keep_alive: bool, max_sockets: usize, connect_timeout: Duration) -> Self {
        Self {
            keep_alive,
            max_sockets: max_sockets.max(1),
            connect_timeout,
            backends: RefCell::new(HashMap::new()),
        }
    }

    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    fn connections(&self, url: &BackendUrl) -> Rc<BackendConnections> {
        let mut backends = self.backends.borrow_mut();
        if let Some(existing) = backends.get(url) {
            return existing.clone();
        }
        let created = Rc::new(BackendConnections {
            idle: RefCell::new(Vec::new()),
            permits: Arc::new(Semaphore::new(self.max_sockets)),
        });
        backends.insert(url.clone(), created.clone());
        created
    }

    /// A connection to `url`: a pooled one when keep-alive allows, else a new one.
    pub async fn connection(&self, url: &BackendUrl) -> Result<Connection, ProxyError> {
        let owner = self.connections(url);
        if self.keep_alive {
            if let Some(sender) = take_ready(&owner).await {
                return Ok(Connection {
                    sender,
                    reused: true,
                    owner,
                });
            }
        }
        self.connect(url, owner).await
    }

    /// Opens a new connection, skipping the pool.
    pub async fn fresh_connection(&self, url: &BackendUrl) -> Result<Connection, ProxyError> {
        let owner = self.connections(url);
        self.connect(url, owner).await
    }

    async fn connect(
        &self,
        url: &BackendUrl,
        owner: Rc<BackendConnections>,
    ) -> Result<Connection, ProxyError> {
        let permit =
            tokio::time::timeout(self.connect_timeout, owner.permits.clone().acquire_owned())
                .await
                .map_err(|_| ProxyError::SocketLimit)?
                .map_err(|_| ProxyError::SocketLimit)?;
        let stream = tokio::time::timeout(self.connect_timeout, open(url))
            .await
            .map_err(|_| ProxyError::ConnectTimeout)?
            .map_err(|error| classify_connect(&error))?;
        // Latency matters more than packet count for a proxy's small writes.
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|_| ProxyError::BackendIo { replayable: true })?;
        tokio::task::spawn_local(async move {
            // The permit is held for the connection's lifetime: maxSockets counts open sockets.
            let _permit = permit;
            if let Err(error) = conn.await {
                tracing::debug!(%error, "backend connection ended with an error");
            }
        });
        Ok(Connection {
            sender,
            reused: false,
            owner,
        })
    }
}

/// The most recently used idle connection that is still open and ready.
async fn take_ready(owner: &BackendConnections) -> Option<SendRequest<RequestBody>> {
    loop {
        let mut sender = owner.idle.borrow_mut().pop()?;
        if sender.is_closed() {
            continue;
        }
        if sender.is_ready() {
            return Some(sender);
        }
        if let Ok(Ok(())) = tokio::time::timeout(POOLED_READY_TIMEOUT, sender.ready()).await {
            return Some(sender);
        }
    }
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
