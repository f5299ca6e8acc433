//! Forwarding, whichever protocol the client speaks: the session ([`Proxy::serve`], in
//! `session`) that takes one request through its steps in one order, from a `Host` to a
//! frontend ([`Proxy::route`]), then the one attempt loop ([`Proxy::forward`], in `attempt`)
//! that picks a backend, sends the request over the worker's backend pool, classifies what went
//! wrong, marks dead, retries, and hands back an answer with its X-Debug fields and access log
//! line, or the error that answers the client ([`Proxy::error_answer`], the one place a
//! `ProxyError` becomes a response); a tunnel after a backend's 101 (`tunnel`).
//!
//! The front ends (`h1`, `h2`) supply only framing (a `session::Downstream`): how to read a
//! request's facts, send it on their protocol (an [`Exchange`]) and write an answer; this
//! module imports neither.

mod attempt;
pub(crate) mod backend;
mod challenge;
pub(crate) mod conn;
pub(crate) mod error;
pub(crate) mod open;
pub(crate) mod pool;
mod redirect;
pub(crate) mod session;
pub(crate) mod sticky;
pub(crate) mod tunnel;

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use attempt::{Answered, ClientFailure, Exchange, SendError};

use crate::access_log::AccessLog;
use crate::error_page::{ErrorPages, Generated};
use crate::escape::Escaped;
use crate::host_keys::{self, HostRequest};
use crate::metrics::{self, names::Counter};
use crate::routes::{Frontend, Held, Lookup, RouteSource};
use crate::wire::headers::Forwarded;
use error::ProxyError;
use open::OpenCount;
use pool::BackendPool;
use sticky::{StickyKey, Token};

/// What a worker's proxy needs from the configuration, and what it owns.
pub(crate) struct Proxy<S> {
    pub(crate) routes: S,
    /// Backend connections, whatever protocol the client speaks.
    pub(crate) pool: BackendPool,
    pub(crate) pages: ErrorPages,
    pub(crate) access_log: Option<Rc<AccessLog>>,
    pub(crate) retry_on_error: u32,
    pub(crate) dead_backend_on_500: bool,
    /// `tcpTimeout` for a backend's response head.
    pub(crate) response_timeout: Duration,
    /// `tcpTimeout` for an idle client, a body that stops moving, a silent tunnel.
    pub(crate) idle_timeout: Duration,
    pub(crate) tunnels: OpenCount,
    /// `forceSecure`: the https port plain-HTTP requests are redirected to; `None` when off.
    pub(crate) force_secure: Option<u16>,
    /// `stickySessions`: the key of `hipache_backend` cookies; `None` when off.
    pub(crate) sticky: Option<StickyKey>,
    /// `acme` with the http-01 challenge: the client whose answers plain HTTP gives; `None`
    /// when off.
    pub(crate) acme: Option<crate::acme::Acme>,
}

/// Where a request goes, decided from its `Host` alone.
enum Routed {
    Ping,
    Failed(ProxyError),
    Found(Route),
}

/// A request whose host matched a frontend: what its attempts, its X-Debug fields and its
/// access log line need.
pub(crate) struct Route {
    /// The host as looked up: port stripped, lowercase.
    pub(crate) host: String,
    pub(crate) frontend: Arc<Frontend>,
    /// Indexes of the frontend's backends flagged dead for this host.
    pub(crate) dead: Vec<usize>,
    /// Its backends an operator drains or disabled for this host.
    pub(crate) held: Held,
    /// When the request's head was read.
    pub(crate) start: Instant,
    /// The client asked for `X-Debug-*` fields.
    pub(crate) debug: bool,
    /// The backend its `hipache_backend` cookie asks for (set by the session, see
    /// [`Proxy::sticky_token`]).
    pub(crate) sticky: Option<Token>,
}

/// Facts about one client connection, computed once for all its requests.
pub(crate) struct ClientConnection {
    pub(crate) peer: IpAddr,
    /// It came over TLS.
    pub(crate) tls: bool,
    /// The TLS version its handshake agreed (`TLSv1.3`), for the access log; `None` when plain
    /// or before the handshake.
    pub(crate) tls_version: Option<&'static str>,
    pub(crate) forwarded: Forwarded,
    /// With `https.http3`, the `Alt-Svc` field an https connection over TCP carries on its
    /// answers, so that clients move to HTTP/3; `None` otherwise.
    pub(crate) alt_svc: Option<http::HeaderValue>,
}

impl<S: RouteSource> Proxy<S> {
    /// Classifies a request by its `Host` (an HTTP/2 authority or an absolute-form target's
    /// authority stands in for it) and looks the host up.
    async fn route(&self, host_header: Option<&str>, debug: bool) -> Routed {
        let start = Instant::now();
        let Some(host_header) = host_header else {
            metrics::count(Counter::Requests);
            return Routed::Failed(ProxyError::NoHost);
        };
        let host = match host_keys::parse_host(host_header) {
            HostRequest::Ping => return Routed::Ping,
            HostRequest::Route(host) => host_keys::normalize(host).into_owned(),
        };
        metrics::count(Counter::Requests);
        match self.routes.lookup(&host).await {
            Ok(Some(Lookup {
                frontend,
                dead,
                held,
            })) => Routed::Found(Route {
                host,
                frontend,
                dead,
                held,
                start,
                debug,
                sticky: None,
            }),
            Ok(None) => Routed::Failed(ProxyError::NoFrontend),
            Err(error) => {
                tracing::debug!(host = %Escaped(&host), %error, "lookup failed");
                Routed::Failed(ProxyError::RouteSourceUnavailable)
            }
        }
    }

    /// The one place a `ProxyError` becomes a response: its status, Hipache's page for it, and
    /// the `X-Debug-Error` reason when the client asked.
    fn error_answer(&self, error: ProxyError, debug: bool) -> Generated {
        let status = error.status();
        metrics::response(status.as_u16());
        Generated {
            status,
            page: self.pages.body(status, error.reason()),
            debug_error: debug.then(|| error.reason()),
            location: None,
        }
    }

    /// With sticky sessions on, the token of the request's `hipache_backend` cookie, read from
    /// its `Cookie` field values (not read at all when off).
    fn sticky_token<'a>(&self, cookie_values: impl IntoIterator<Item = &'a [u8]>) -> Option<Token> {
        self.sticky.as_ref()?;
        sticky::token_in(cookie_values)
    }

    /// With `forceSecure`, what answers a plain-HTTP request to `host_header` for `target` (its
    /// path and query), before any routing: a `301` to HTTPS, or a 400 for a host that cannot
    /// be written into a URL. `None` over TLS, without a `Host` (routing answers that), for the
    /// `__ping__` probe, or when off. The answer is counted in the request and response metrics
    /// like any other.
    fn secure_redirect(
        &self,
        conn: &ClientConnection,
        host_header: Option<&str>,
        target: &[u8],
        debug: bool,
    ) -> Option<Generated> {
        let port = self.force_secure.filter(|_| !conn.tls)?;
        let location = match redirect::decide(host_header?, target, port) {
            redirect::Secure::Exempt => return None,
            redirect::Secure::MovedTo(location) => Some(location),
            redirect::Secure::BadHost => None,
        };
        // Counted as routing counts: a request and its answer (the liveness probe is exempt).
        metrics::count(Counter::Requests);
        Some(match location {
            Some(location) => {
                metrics::response(301);
                Generated::moved_permanently(location)
            }
            None => self.error_answer(ProxyError::NoHost, debug),
        })
    }
}
