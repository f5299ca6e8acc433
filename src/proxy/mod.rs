//! Forwarding, whichever protocol the client speaks: from a `Host` to a frontend
//! ([`Proxy::route`]), then the one attempt loop ([`Proxy::forward`], in `attempt`) that picks a
//! backend, sends the request over the worker's backend pool, classifies what went wrong, marks
//! dead, retries, and hands back an answer with its X-Debug fields and access log line, or the
//! error that answers the client ([`Proxy::error_answer`], the one place a `ProxyError` becomes
//! a response).
//!
//! The front ends (`crate::h1`, `crate::h2`) supply only how to send a request on their
//! protocol (an [`Exchange`]) and how to relay the answer; this module imports neither.

mod attempt;
pub mod backend;
pub mod error;
pub mod open;
pub mod pool;
pub mod tunnel;

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use attempt::{Answered, ClientFailure, Exchange, Outcome, SendError};

use crate::access_log::AccessLog;
use crate::error_page::{ErrorPages, Generated};
use crate::router::{self, HostRequest};
use crate::routes::{Frontend, Lookup, RouteSource};
use crate::wire::headers::Forwarded;
use error::ProxyError;
use open::OpenCount;
use pool::BackendPool;

/// What a worker's proxy needs from the configuration, and what it owns.
pub struct Proxy<S> {
    pub routes: S,
    /// Backend connections, whatever protocol the client speaks.
    pub pool: BackendPool,
    pub pages: ErrorPages,
    pub access_log: Option<Rc<AccessLog>>,
    pub retry_on_error: u32,
    pub dead_backend_on_500: bool,
    /// `tcpTimeout` for a backend's response head.
    pub response_timeout: Duration,
    /// `tcpTimeout` for an idle client, a body that stops moving, a silent tunnel.
    pub idle_timeout: Duration,
    pub tunnels: OpenCount,
}

/// Where a request goes, decided from its `Host` alone.
pub enum Routed {
    Ping,
    Failed(ProxyError),
    Found(Route),
}

/// A request whose host matched a frontend: what its attempts, its X-Debug fields and its
/// access log line need.
pub struct Route {
    /// The host as looked up: port stripped, lowercase.
    pub host: String,
    pub frontend: Arc<Frontend>,
    /// Indexes of the frontend's backends flagged dead for this host.
    pub dead: Vec<usize>,
    /// When the request's head was read.
    pub start: Instant,
    /// The client asked for `X-Debug-*` fields.
    pub debug: bool,
}

/// Facts about one client connection, computed once for all its requests.
pub struct ClientConnection {
    pub peer: IpAddr,
    pub forwarded: Forwarded,
}

impl<S: RouteSource> Proxy<S> {
    /// Classifies a request by its `Host` (an HTTP/2 authority or an absolute-form target's
    /// authority stands in for it) and looks the host up.
    pub async fn route(&self, host_header: Option<&str>, debug: bool) -> Routed {
        let start = Instant::now();
        let Some(host_header) = host_header else {
            return Routed::Failed(ProxyError::NoHost);
        };
        let host = match router::parse_host(host_header) {
            HostRequest::Ping => return Routed::Ping,
            HostRequest::Route(host) => router::normalize(host).into_owned(),
        };
        match self.routes.lookup(&host).await {
            Ok(Some(Lookup { frontend, dead })) => Routed::Found(Route {
                host,
                frontend,
                dead,
                start,
                debug,
            }),
            Ok(None) => Routed::Failed(ProxyError::NoFrontend),
            Err(error) => {
                tracing::debug!(%host, %error, "lookup failed");
                Routed::Failed(ProxyError::RouteSourceUnavailable)
            }
        }
    }

    /// The one place a `ProxyError` becomes a response: its status, Hipache's page for it, and
    /// the `X-Debug-Error` reason when the client asked.
    pub fn error_answer(&self, error: ProxyError, debug: bool) -> Generated {
        let status = error.status();
        Generated {
            status,
            page: self.pages.body(status, error.reason()),
            debug_error: debug.then(|| error.reason()),
        }
    }
}
