//! The master's observability outputs: the admin listener of `logging.web` (`GET /metrics` in
//! Prometheus's text format, `GET /` the status page) and statsd for `metrics`, both fed by the
//! workers' snapshots (`collect`). Why the master collects rather than workers sharing memory:
//! see `crate::metrics`.
//!
//! The admin listener is bound by the master, never on a proxied address (the configuration
//! refuses one that is), and speaks just enough HTTP/1.x for a browser, curl and a Prometheus
//! scraper: one request per connection, answered and closed. With `logging.web.token`, every
//! request must carry `Authorization: Bearer <token>` (Prometheus's `authorization` setting,
//! `curl -H`) or gets 401; without one, a listener reachable beyond this machine is warned
//! about at start, since the status page names every frontend and backend.

pub(crate) mod collect;
mod frontends;
mod inventory;
mod prometheus;
mod statsd;
mod status;

use std::net::{SocketAddr, TcpListener as StdTcpListener, ToSocketAddrs as _};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::config::{Config, Driver};
use collect::Collector;
pub(crate) use statsd::StatsdError;

/// A request head larger than this is refused.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How long a client has to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the admin outputs cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `logging.web` cannot be bound.
    #[error("logging.web: cannot listen on {address}")]
    Listen {
        /// The address.
        address: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `metrics` cannot be set up.
    #[error(transparent)]
    Statsd(#[from] StatsdError),
}

/// What the master runs for `logging.web` and `metrics`, bound and ready before any worker.
pub(crate) struct Admin {
    pub(crate) collector: Rc<Collector>,
    listener: Option<StdTcpListener>,
    /// `logging.web.token`.
    token: Option<Rc<str>>,
    statsd: Option<statsd::Statsd>,
    /// What the status page needs beside the workers' counts.
    page: Rc<PageSource>,
}

/// Where the status page finds its facts.
struct PageSource {
    /// When the master started (the admin is bound at its start).
    started: Instant,
    /// The route source, whose frontends the page lists.
    driver: Driver,
}

impl Admin {
    /// `None` when the configuration has neither section.
    pub(crate) fn bind(config: &Config) -> Result<Option<Self>, AdminError> {
        let web = config.logging.as_ref().and_then(|l| l.web.as_ref());
        if web.is_none() && config.metrics.is_none() {
            return Ok(None);
        }
        let listener = match web {
            Some(web) => {
                let address = format!("{}:{}", web.host, web.port);
                let fail = |source| AdminError::Listen {
                    address: address.clone(),
                    source,
                };
                let addrs: Vec<SocketAddr> = (web.host.as_str(), web.port)
                    .to_socket_addrs()
                    .map_err(fail)?
                    .collect();
                let listener = StdTcpListener::bind(&addrs[..]).map_err(fail)?;
                listener.set_nonblocking(true).map_err(fail)?;
                let token = config.logging.as_ref().and_then(|l| l.web_token.as_ref());
                if let (None, Ok(bound)) = (token, listener.local_addr()) {
                    if !bound.ip().is_loopback() {
                        tracing::warn!(
                            admin = %bound,
                            "the admin listener is reachable beyond this machine and asks no \
                             token: set logging.web.token, or bind it to 127.0.0.1"
                        );
                    }
                }
                Some(listener)
            }
            None => None,
        };
        let statsd = config
            .metrics
            .as_ref()
            .map(statsd::Statsd::new)
            .transpose()?;
        Ok(Some(Self {
            collector: Rc::default(),
            listener,
            token: config
                .logging
                .as_ref()
                .and_then(|l| l.web_token.as_deref())
                .map(Rc::from),
            statsd,
            page: Rc::new(PageSource {
                started: Instant::now(),
                driver: config.driver.clone(),
            }),
        }))
    }

    /// Starts serving the admin page and sending statsd, on the master's `LocalSet`.
    pub(crate) fn spawn(self) {
        if let Some(statsd) = self.statsd {
            tokio::task::spawn_local(statsd.run(self.collector.clone()));
        }
        if let Some(listener) = self.listener {
            match TcpListener::from_std(listener) {
                Ok(listener) => {
                    if let Ok(address) = listener.local_addr() {
                        tracing::info!(admin = %address, "admin page serving");
                    }
                    let serving = serve(listener, self.collector, self.token, self.page);
                    tokio::task::spawn_local(serving);
                }
                Err(error) => tracing::error!(%error, "cannot serve the admin page"),
            }
        }
    }
}

async fn serve(
    listener: TcpListener,
    collector: Rc<Collector>,
    token: Option<Rc<str>>,
    page: Rc<PageSource>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let answering = answer(stream, collector.clone(), token.clone(), page.clone());
                tokio::task::spawn_local(answering);
            }
            Err(error) => {
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// What a request asked for.
#[derive(Debug, PartialEq, Eq)]
enum Page {
    Metrics,
    Status {
        json: bool,
    },
    NotFound,
    BadMethod,
    /// No `Authorization: Bearer` with the configured token.
    Unauthorized,
}

async fn answer(
    mut stream: TcpStream,
    collector: Rc<Collector>,
    token: Option<Rc<str>>,
    page_source: Rc<PageSource>,
) {
    let head = read_head(&mut stream, token.as_deref());
    let page = match tokio::time::timeout(READ_TIMEOUT, head).await {
        Ok(Some(page)) => page,
        _ => return,
    };
    let (status, content_type, body) = match page {
        Page::Metrics => {
            let totals = collector.totals().await;
            (
                "200 OK",
                prometheus::CONTENT_TYPE,
                prometheus::render(&totals),
            )
        }
        Page::Status { json } => {
            let totals = collector.totals().await;
            let facts = page_source.facts().await;
            if json {
                let body = status::json(&totals, &facts).to_string();
                ("200 OK", "application/json", body)
            } else {
                let body = status::html(&totals, &facts);
                ("200 OK", "text/html; charset=utf-8", body)
            }
        }
        Page::NotFound => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        Page::BadMethod => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_owned(),
        ),
        Page::Unauthorized => (
            "401 Unauthorized",
            "text/plain",
            "a bearer token is required\n".to_owned(),
        ),
    };
    let challenge = if page == Page::Unauthorized {
        "WWW-Authenticate: Bearer realm=\"hipache\"\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {challenge}Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

impl PageSource {
    async fn facts(&self) -> status::Facts {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
        status::Facts {
            uptime: self.started.elapsed(),
            now_unix_ms: now.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            inventory: Some(inventory::list(&self.driver).await),
        }
    }
}

/// Reads a request head; `None` if the client left or sent something else than HTTP.
async fn read_head(stream: &mut TcpStream, token: Option<&str>) -> Option<Page> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(page) = parse_head(&buf, token)? {
            return Some(page);
        }
        if buf.len() > MAX_HEAD_BYTES {
            return None;
        }
    }
}

/// `Some(None)`: the head is not complete yet; `None`: not HTTP. With a `token`, a request
/// without `Authorization: Bearer <token>` is `Unauthorized`, whatever it asks for.
fn parse_head(buf: &[u8], token: Option<&str>) -> Option<Option<Page>> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut fields);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Some(None),
        Err(_) => return None,
    }
    if let Some(token) = token {
        let presented = request
            .headers
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case("authorization"))
            .and_then(|field| bearer(field.value));
        let matches = presented.is_some_and(|presented| {
            crate::crypto::constant_time::verify_slices_are_equal(presented, token.as_bytes())
                .is_ok()
        });
        if !matches {
            return Some(Some(Page::Unauthorized));
        }
    }
    if request.method != Some("GET") {
        return Some(Some(Page::BadMethod));
    }
    let path = request.path.unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    let json = request.headers.iter().any(|field| {
        field.name.eq_ignore_ascii_case("accept")
            && std::str::from_utf8(field.value).is_ok_and(|v| v.contains("application/json"))
    });
    Some(Some(match path {
        "/metrics" => Page::Metrics,
        "/" => Page::Status { json },
        _ => Page::NotFound,
    }))
}

/// The credentials of an `Authorization: Bearer <credentials>` value (the scheme is
/// case-insensitive, RFC 9110 §11.1).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_by_path_method_and_accept() {
        let parse = |head: &str| parse_head(head.as_bytes(), None).flatten();
        assert_eq!(parse("GET /metrics HTTP/1.1\r\n\r\n"), Some(Page::Metrics));
        assert_eq!(
            parse("GET / HTTP/1.1\r\nAccept: application/json\r\n\r\n"),
            Some(Page::Status { json: true })
        );
        assert_eq!(
            parse("GET /?x HTTP/1.1\r\nAccept: text/html\r\n\r\n"),
            Some(Page::Status { json: false })
        );
        assert_eq!(parse("POST / HTTP/1.1\r\n\r\n"), Some(Page::BadMethod));
        assert_eq!(parse("GET /x HTTP/1.1\r\n\r\n"), Some(Page::NotFound));
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\n", None), Some(None));
    }

    #[test]
    fn with_a_token_only_its_bearer_is_served() {
        let parse = |head: &str| parse_head(head.as_bytes(), Some("s3cret")).flatten();
        assert_eq!(
            parse("GET /metrics HTTP/1.1\r\n\r\n"),
            Some(Page::Unauthorized)
        );
        for wrong in [
            "Bearer s3cre",
            "Bearer s3crett",
            "Basic czNjcmV0",
            "s3cret",
            "Bearer",
        ] {
            let head = format!("GET /metrics HTTP/1.1\r\nAuthorization: {wrong}\r\n\r\n");
            assert_eq!(parse(&head), Some(Page::Unauthorized), "{wrong}");
        }
        assert_eq!(
            parse("GET /metrics HTTP/1.1\r\nauthorization: bearer s3cret\r\n\r\n"),
            Some(Page::Metrics)
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n"),
            Some(Page::BadMethod)
        );
    }
}
