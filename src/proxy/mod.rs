//! What both client protocols share, and the HTTP/2 service.
//!
//! [`Proxy`] is a worker's forwarding state. [`Proxy::route`] takes a request from its `Host` to
//! a frontend (or to `__ping__`, or to the error that answers it), and [`Proxy::note_failure`]
//! applies Hipache's dead-marking rules to a failed attempt; the HTTP/1 engine (`crate::h1`)
//! and the HTTP/2 service here both go through them. HTTP/2 requests (TLS with ALPN `h2`, or
//! h2c prior knowledge) are served by hyper: a live backend is picked, the request forwarded
//! (`attempt`) as HTTP/1.1 over the worker's one backend pool, retried on a fresh pick while the
//! failure allows it, and the response streamed back (`body`) with its access log line written
//! when it ends.

pub mod attempt;
pub mod body;
pub mod error;
pub mod headers;
pub mod tunnel;

use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;

use crate::access_log::{AccessLog, LoggedRequest};
use crate::balancer::Attempts;
use crate::error_page::{self, ErrorPages, PageBody};
use crate::h1::backend::Answer;
use crate::h1::open::OpenCount;
use crate::h1::pool::BackendPool;
use crate::router::{self, HostRequest};
use crate::routes::{Backend, Frontend, Lookup, RouteSource};
use attempt::Payload;
use body::ResponseBody;
use error::ProxyError;
use headers::Forwarded;

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
    Found { host: String, lookup: Lookup },
}

/// Facts about one client connection, computed once for all its requests.
pub struct ClientConnection {
    pub peer: IpAddr,
    pub forwarded: Forwarded,
}

/// The request facts an access log line or an X-Debug header needs after the request moved on.
struct Context {
    start: Instant,
    debug: bool,
    host: String,
}

impl<S: RouteSource> Proxy<S> {
    /// Classifies a request by its `Host` (an HTTP/2 authority or an absolute-form target's
    /// authority stands in for it) and looks the host up.
    pub async fn route(&self, host_header: Option<&str>) -> Routed {
        let Some(host_header) = host_header else {
            return Routed::Failed(ProxyError::NoHost);
        };
        let host = match router::parse_host(host_header) {
            HostRequest::Ping => return Routed::Ping,
            HostRequest::Route(host) => router::normalize(host).into_owned(),
        };
        match self.routes.lookup(&host).await {
            Ok(Some(lookup)) => Routed::Found { host, lookup },
            Ok(None) => Routed::Failed(ProxyError::NoFrontend),
            Err(error) => {
                tracing::debug!(%host, %error, "lookup failed");
                Routed::Failed(ProxyError::RouteSourceUnavailable)
            }
        }
    }

    /// Hipache's consequences of a failed attempt: dead for `deadBackendTTL`, or only logged.
    pub fn note_failure(
        &self,
        host: &str,
        frontend: &Frontend,
        backend: &Backend,
        error: ProxyError,
    ) {
        if error.marks_dead() {
            self.mark_dead(host, frontend, backend, error.reason());
        } else {
            tracing::warn!(%host, backend = %backend.url, error = error.reason(), "backend request failed");
        }
    }

    /// Hipache marks only when the frontend has another backend to send traffic to.
    pub fn mark_dead(&self, host: &str, frontend: &Frontend, backend: &Backend, why: &str) {
        tracing::warn!(%host, frontend = %frontend.id, backend = %backend.url, reason = why, "backend is dead");
        if frontend.backend_count > 1 {
            self.routes.mark_dead(host, frontend, backend);
        }
    }

    /// Serves one HTTP/2 request.
    pub async fn handle(
        self: Rc<Self>,
        conn: Rc<ClientConnection>,
        request: Request<Incoming>,
    ) -> Response<ResponseBody> {
        let start = Instant::now();
        let debug = request.headers().contains_key(headers::X_DEBUG);
        if request.method() == http::Method::CONNECT {
            // A reverse proxy tunnels to no address a client names.
            let mut refused = Response::new(ResponseBody::full(Bytes::new()));
            *refused.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            return refused;
        }
        match self.route(host_of(&request)).await {
            Routed::Ping => ping_response(),
            Routed::Failed(error) => self.error_response(error, debug),
            Routed::Found { host, lookup } => {
                let context = Context { start, debug, host };
                self.forward(&conn, request, context, lookup).await
            }
        }
    }

    async fn forward(
        &self,
        conn: &ClientConnection,
        request: Request<Incoming>,
        context: Context,
        lookup: Lookup,
    ) -> Response<ResponseBody> {
        let Lookup { frontend, dead } = lookup;
        let (mut parts, body) = request.into_parts();
        let mut logged = self.logged_request(&parts, conn.peer);
        prepare_for_backend(&mut parts, &conn.forwarded, self.pool.keep_alive());
        let Some(mut payload) = Payload::from_incoming(body, self.idle_timeout).await else {
            // The client went away while sending its body: nobody is left to answer.
            return self.error_response(ProxyError::BackendIo { replayable: false }, context.debug);
        };
        let mut attempts = Attempts::new(&frontend.backends, &dead, self.retry_on_error);
        let mut failure = None;
        while let Some(backend) = attempts.next(&mut rand::rng()) {
            let backend_start = Instant::now();
            let outcome = attempt::forward(
                &self.pool,
                backend,
                &parts,
                &mut payload,
                self.response_timeout,
            )
            .await;
            match outcome {
                Ok(answer) => {
                    let status = answer.head.status;
                    if headers::marks_dead(
                        status,
                        answer.head.retry_after,
                        self.dead_backend_on_500,
                    ) {
                        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                        self.mark_dead(&context.host, &frontend, backend, code.as_str());
                    }
                    let mut head = response_head(&answer);
                    if context.debug {
                        add_debug(
                            &mut head.headers,
                            &context,
                            &frontend,
                            backend,
                            backend_start,
                        );
                    }
                    let mut body =
                        ResponseBody::backend(answer, self.pool.keep_alive(), self.idle_timeout);
                    if let Some(logged) = logged.take() {
                        body.log_on_drop(Box::new(logged.into_pending(
                            status,
                            frontend.clone(),
                            context.start,
                            backend_start,
                        )));
                    }
                    return Response::from_parts(head, body);
                }
                Err(error) => {
                    self.note_failure(&context.host, &frontend, backend, error);
                    failure = Some((error, backend_start));
                    if !attempts.may_retry(error.is_retryable()) {
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
        if let (Some((_, backend_start)), Some(logged)) = (failure, logged) {
            let line = logged.into_pending(
                error.status().as_u16(),
                frontend.clone(),
                context.start,
                backend_start,
            );
            response.body_mut().log_on_drop(Box::new(line));
        }
        response
    }

    /// The request line and client facts of an access log line, taken before the request
    /// moves on. An HTTP/2 request's URI carries scheme and authority, which an HTTP/1.1
    /// client would not have sent: its path is logged, as Hipache's `req.url` would be.
    fn logged_request(
        &self,
        parts: &http::request::Parts,
        client: IpAddr,
    ) -> Option<LoggedRequest> {
        let log = self.access_log.as_ref()?;
        let text = |name| {
            parts
                .headers
                .get(name)
                .map_or(&b""[..], HeaderValue::as_bytes)
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        Some(LoggedRequest::new(
            log.clone(),
            client,
            parts.method.as_str().as_bytes(),
            path.as_bytes(),
            "2.0",
            text(header::REFERER),
            text(header::USER_AGENT),
        ))
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

/// The backend's status and fields (hop-by-hop ones left out) as the client's response head.
fn response_head(answer: &Answer) -> http::response::Parts {
    let (head, buf) = (&answer.head, &answer.buf);
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    headers.reserve(head.fields.len());
    for field in head.client_fields(buf) {
        let name = http::HeaderName::from_bytes(field.name(buf));
        let value = HeaderValue::from_bytes(field.value(buf));
        if let (Ok(name), Ok(value)) = (name, value) {
            headers.append(name, value);
        }
    }
    response.into_parts().0
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
