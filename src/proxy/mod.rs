//! The proxy service: one request from `Host` header to response.
//!
//! `__ping__` and errors are answered here; otherwise the host is looked up in the route source,
//! a live backend is picked and the request forwarded (`attempt`), retried on a fresh pick while
//! the failure allows it, and the backend's response streamed back with the access log line
//! written when it ends. `ProxyError` becomes a page at exactly one place, `error_response`.

pub mod attempt;
pub mod body;
pub mod client;
pub mod error;
pub mod headers;
pub mod tunnel;

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use crate::access_log::{AccessLog, PendingLine};
use crate::balancer;
use crate::error_page::{self, ErrorPages, PageBody};
use crate::router::{self, HostRequest};
use crate::routes::{Backend, Frontend, RouteSource};
use attempt::Payload;
use body::ResponseBody;
use client::BackendClient;
use error::ProxyError;
use headers::Forwarded;

/// What a worker's proxy needs from the configuration, and what it owns.
pub struct Proxy<S> {
    pub routes: S,
    pub client: BackendClient,
    pub pages: ErrorPages,
    pub access_log: Option<Rc<AccessLog>>,
    pub retry_on_error: u32,
    pub dead_backend_on_500: bool,
    pub response_timeout: Duration,
    pub tunnels: tunnel::Tunnels,
}

/// Facts about one client connection, computed once for all its requests.
pub struct ClientConnection {
    pub peer: IpAddr,
    pub forwarded: Forwarded,
}

/// An HTTP/1.1 request asking for a protocol switch (WebSocket...): the protocol, and the
/// client's side of the upgrade, completed once the 101 is sent.
struct Upgrade {
    protocol: HeaderValue,
    client: OnUpgrade,
}

/// The request facts an access log line or an X-Debug header needs after the request moved on.
struct Context {
    start: Instant,
    debug: bool,
    host: String,
}

impl<S: RouteSource> Proxy<S> {
    pub async fn handle(
        self: Rc<Self>,
        conn: Rc<ClientConnection>,
        mut request: Request<Incoming>,
    ) -> Response<ResponseBody> {
        let start = Instant::now();
        let debug = request.headers().contains_key(headers::X_DEBUG);
        let Some(host_header) = host_of(&request) else {
            return self.error_response(ProxyError::NoHost, debug);
        };
        let host = match router::parse_host(host_header) {
            HostRequest::Ping => return ping_response(),
            HostRequest::Route(host) => router::normalize(host).into_owned(),
        };
        let lookup = match self.routes.lookup(&host).await {
            Ok(Some(lookup)) => lookup,
            Ok(None) => return self.error_response(ProxyError::NoFrontend, debug),
            Err(error) => {
                tracing::debug!(%host, %error, "lookup failed");
                return self.error_response(ProxyError::RouteSourceUnavailable, debug);
            }
        };
        let upgrade = match request.version() {
            http::Version::HTTP_11 => headers::upgrade_protocol(request.headers()),
            _ => None,
        }
        .map(|protocol| Upgrade {
            protocol,
            client: hyper::upgrade::on(&mut request),
        });
        let context = Context { start, debug, host };
        self.forward(
            &conn,
            request,
            upgrade,
            context,
            lookup.frontend,
            &lookup.dead,
        )
        .await
    }

    async fn forward(
        &self,
        conn: &ClientConnection,
        request: Request<Incoming>,
        mut upgrade: Option<Upgrade>,
        context: Context,
        frontend: Arc<Frontend>,
        dead: &[usize],
    ) -> Response<ResponseBody> {
        let (mut parts, body) = request.into_parts();
        let log_head = self
            .access_log
            .is_some()
            .then(|| LogHead::capture(&parts, conn.peer));
        prepare_for_backend(&mut parts, &conn.forwarded, self.client.keep_alive());
        if let Some(upgrade) = &upgrade {
            // An upgraded connection is never reused, so no `Connection: close` either.
            headers::restore_upgrade(&mut parts.headers, upgrade.protocol.clone());
        }
        let Some(mut payload) = Payload::from_incoming(body).await else {
            // The client went away while sending its body: nobody is left to answer.
            return self.error_response(ProxyError::BackendIo { replayable: false }, context.debug);
        };
        let mut tried: Vec<usize> = Vec::new();
        let mut failure = None;
        while let Some(backend) = balancer::pick(&frontend.backends, dead, &tried, &mut rand::rng())
        {
            tried.push(backend.index);
            let retries_left = tried.len() as u32 <= self.retry_on_error;
            let last_attempt =
                !retries_left || !balancer::any_left(&frontend.backends, dead, &tried);
            let backend_start = Instant::now();
            let outcome = attempt::forward(
                &self.client,
                backend,
                &mut parts,
                &mut payload,
                self.response_timeout,
                last_attempt,
            )
            .await;
            match outcome {
                Ok((mut response, connection)) => {
                    let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
                    let tunnel = match upgrade.take() {
                        Some(client) if switched => Some((
                            client,
                            response.headers().get(header::UPGRADE).cloned(),
                            hyper::upgrade::on(&mut response),
                        )),
                        _ => None,
                    };
                    let (mut head, incoming) = response.into_parts();
                    if headers::marks_dead(head.status, &head.headers, self.dead_backend_on_500) {
                        self.mark_dead(&context.host, &frontend, backend, head.status.as_str());
                    }
                    headers::strip_hop_by_hop(&mut head.headers);
                    let mut keep_alive = self.client.keep_alive();
                    if let Some((client, protocol, backend)) = tunnel {
                        headers::restore_upgrade(
                            &mut head.headers,
                            protocol.unwrap_or(client.protocol),
                        );
                        tunnel::spawn(client.client, backend, self.response_timeout, &self.tunnels);
                        keep_alive = false;
                    }
                    // The backend's HTTP version is not the client's: hyper picks the right one.
                    head.version = http::Version::default();
                    if context.debug {
                        add_debug(
                            &mut head.headers,
                            &context,
                            &frontend,
                            backend,
                            backend_start,
                        );
                    }
                    let idle = connection.into_idle(keep_alive);
                    let mut body = ResponseBody::backend(incoming, idle);
                    if let Some(line) =
                        self.pending_line(log_head, &context, &frontend, head.status, backend_start)
                    {
                        body.log_on_drop(line);
                    }
                    return Response::from_parts(head, body);
                }
                Err(error) => {
                    if error.marks_dead() {
                        self.mark_dead(&context.host, &frontend, backend, error.reason());
                    } else {
                        tracing::warn!(host = %context.host, backend = %backend.url, error = error.reason(), "backend request failed");
                    }
                    failure = Some((error, backend_start));
                    let retries = tried.len() as u32 - 1;
                    if !error.is_retryable() || retries >= self.retry_on_error {
                        break;
                    }
                }
            }
        }
        let error = match failure {
            Some((error, _)) => error,
            None if frontend.backends.is_empty() => ProxyError::BadBackendUrl,
            None => ProxyError::NoLiveBackend,
        };
        let mut response = self.error_response(error, context.debug);
        // A request that never reached a backend attempt gets no line, as in Hipache.
        if let Some((_, backend_start)) = failure {
            if let Some(line) =
                self.pending_line(log_head, &context, &frontend, error.status(), backend_start)
            {
                response.body_mut().log_on_drop(line);
            }
        }
        response
    }

    /// Hipache marks only when the frontend has another backend to send traffic to.
    fn mark_dead(&self, host: &str, frontend: &Frontend, backend: &Backend, why: &str) {
        tracing::warn!(%host, frontend = %frontend.id, backend = %backend.url, reason = why, "backend is dead");
        if frontend.backend_count > 1 {
            self.routes.mark_dead(host, frontend, backend);
        }
    }

    fn pending_line(
        &self,
        head: Option<LogHead>,
        context: &Context,
        frontend: &Arc<Frontend>,
        status: StatusCode,
        backend_start: Instant,
    ) -> Option<Box<PendingLine>> {
        let (log, head) = (self.access_log.as_ref()?, head?);
        Some(Box::new(PendingLine {
            log: log.clone(),
            client: head.client,
            time: head.time,
            method: head.method,
            uri: head.uri,
            version: head.version,
            status: status.as_u16(),
            referer: head.referer,
            user_agent: head.user_agent,
            frontend: frontend.clone(),
            start: context.start,
            backend_start,
        }))
    }

    /// The one place a `ProxyError` becomes a response.
    fn error_response(&self, error: ProxyError, debug: bool) -> Response<ResponseBody> {
        let status = error.status();
        let page = self.pages.body(status, error.reason());
        let mut builder = error_page::response_head(status, &page);
        if debug {
            builder = builder
                .header(
                    headers::X_DEBUG_ERROR,
                    HeaderValue::from_static(error.reason()),
                )
                .header(headers::X_DEBUG_VERSION, headers::VERSION);
        }
        let body = match page {
            PageBody::Html(page) => ResponseBody::full(page),
            PageBody::Text(text) => ResponseBody::full(Bytes::from_static(text.as_bytes())),
        };
        builder
            .body(body)
            .unwrap_or_else(|_| fallback_response(status))
    }
}

/// The request line and client facts of an access log line, taken before the request moves on.
struct LogHead {
    client: IpAddr,
    time: SystemTime,
    method: http::Method,
    uri: Uri,
    version: http::Version,
    referer: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
}

impl LogHead {
    fn capture(parts: &http::request::Parts, client: IpAddr) -> Self {
        Self {
            client,
            time: SystemTime::now(),
            method: parts.method.clone(),
            uri: logged_uri(parts),
            version: parts.version,
            referer: parts.headers.get(header::REFERER).cloned(),
            user_agent: parts.headers.get(header::USER_AGENT).cloned(),
        }
    }
}

/// What the request line of the access log shows: an HTTP/2 request's URI always carries the
/// scheme and authority, which an HTTP/1.1 client would not have sent; log its path, as Hipache's
/// `req.url` would.
fn logged_uri(parts: &http::request::Parts) -> Uri {
    match (parts.version, parts.uri.path_and_query()) {
        (http::Version::HTTP_2, Some(path)) => Uri::from(path.clone()),
        _ => parts.uri.clone(),
    }
}

/// `Host`, or the authority of an HTTP/2 (or absolute-form) request.
fn host_of(request: &Request<Incoming>) -> Option<&str> {
    match request.headers().get(header::HOST) {
        Some(value) => value.to_str().ok(),
        None => request.uri().authority().map(|a| a.as_str()),
    }
}

/// Origin-form URI, a `Host` header, and the forwarding headers.
fn prepare_for_backend(parts: &mut http::request::Parts, forwarded: &Forwarded, keep_alive: bool) {
    if let Some(authority) = parts.uri.authority() {
        if !parts.headers.contains_key(header::HOST) {
            if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(header::HOST, host);
            }
        }
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        if let Ok(origin_form) = Uri::try_from(path) {
            parts.uri = origin_form;
        }
    }
    headers::rewrite_request(&mut parts.headers, forwarded, keep_alive);
}

fn add_debug(
    headers: &mut http::HeaderMap,
    context: &Context,
    frontend: &Frontend,
    backend: &Backend,
    backend_start: Instant,
) {
    let now = Instant::now();
    headers::add_debug(
        headers,
        &headers::DebugInfo {
            backend_url: backend.url.as_str(),
            backend_index: backend.index,
            frontend_id: &frontend.id,
            host: &context.host,
            total_ms: (now - context.start).as_millis(),
            backend_ms: (now - backend_start).as_millis(),
        },
    );
}

/// Hipache answers the probe as plain text.
fn ping_response() -> Response<ResponseBody> {
    let page = PageBody::Text("ok");
    error_page::response_head(StatusCode::OK, &page)
        .body(ResponseBody::full(Bytes::from_static(b"ok")))
        .unwrap_or_else(|_| fallback_response(StatusCode::OK))
}

/// Only reached if a static header failed to build, which the unit tests rule out.
#[cold]
fn fallback_response(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(Bytes::new()));
    *response.status_mut() = status;
    response
}
