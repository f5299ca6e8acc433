//! The access log: Hipache's line format (pure, byte-exact), or JSON lines
//! (`server.accessLogFormat`), and a batching `O_APPEND` writer.
//!
//! ```text
//! ::ffff:127.0.0.1 - - [24/Nov/2026:02:30:12 +0000] "GET /path?q HTTP/1.1" 200 1234 "referer" "user-agent" "frontend-id" 0.012 0.011
//! ```
//! The JSON format writes the same request as one object per line (see [`format_json`]).
//! Lines are formatted into one buffer and written with a single `write` per batch (a timer or a
//! full buffer flushes it); `reopen` (SIGUSR1) and `flush` at exit lose nothing. With the
//! `logging.udp`, each line is also sent at once as one datagram (the same bytes, newline
//! included) on a non-blocking socket: a datagram the socket cannot take is dropped and counted,
//! never waited for. Either output works without the other.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::AccessLogFormat;
use crate::metrics::{self, names::Counter};
use crate::routes::Frontend;
use crate::{ascii, escape};

mod json;

pub use json::format_json;

/// How long a line may wait in the buffer before it reaches the file.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// A buffer this full is written at once rather than at the next tick.
const FLUSH_BYTES: usize = 64 * 1024;

/// One request as the access log shows it.
pub struct Entry<'a> {
    /// The client's address (IPv4 written as Hipache does, `::ffff:1.2.3.4`).
    pub client: IpAddr,
    /// When the request arrived.
    pub time: SystemTime,
    /// The request method, as sent.
    pub method: &'a [u8],
    /// The request target, as sent.
    pub uri: &'a [u8],
    /// `1.0`, `1.1` or `2.0`.
    pub version: &'a str,
    /// The status the client got.
    pub status: u16,
    /// Body bytes the client was sent.
    pub bytes: u64,
    /// The `Referer` field, or empty.
    pub referer: &'a [u8],
    /// The `User-Agent` field, or empty.
    pub user_agent: &'a [u8],
    /// The frontend's identifier (element 0 of its list).
    pub frontend_id: &'a str,
    /// The `Host` field or the authority that stands in for it, as sent; empty in Hipache's
    /// format, which does not show it.
    pub host: &'a [u8],
    /// The URL of the backend that answered; `None` when none did.
    pub backend_url: Option<&'a str>,
    /// The TLS version of the client's connection (`TLSv1.3`); `None` when plain.
    pub tls: Option<&'a str>,
    /// From the request's arrival to the end of the answer.
    pub total: Duration,
    /// From the attempt on the backend that answered to the end of the answer.
    pub backend: Duration,
}

thread_local! {
    /// The worker's current second as the log writes it.
    static LOG_TIME: ascii::PerSecond<20> = const { ascii::PerSecond::new(ascii::log_time) };
}

/// Appends one line, newline included, to `out`. Every field a client or Redis wrote is escaped
/// as nginx escapes log fields (`"`, `\`, controls and bytes from 0x7f up as `\xHH`), so no
/// field can end the line or its quotes early; printable ASCII is written as Hipache wrote it.
pub fn format_line(out: &mut Vec<u8>, entry: &Entry<'_>) {
    ascii::client_address(out, entry.client);
    out.extend_from_slice(b" - - [");
    let secs = entry
        .time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    LOG_TIME.with(|time| time.write(out, secs));
    out.extend_from_slice(b" +0000] \"");
    escape::log_field(out, entry.method);
    out.push(b' ');
    escape::log_field(out, entry.uri);
    out.extend_from_slice(b" HTTP/");
    out.extend_from_slice(entry.version.as_bytes());
    out.extend_from_slice(b"\" ");
    ascii::decimal(out, u64::from(entry.status));
    out.push(b' ');
    ascii::decimal(out, entry.bytes);
    out.extend_from_slice(b" \"");
    escape::log_field(out, entry.referer);
    out.extend_from_slice(b"\" \"");
    escape::log_field(out, entry.user_agent);
    out.extend_from_slice(b"\" \"");
    escape::log_field(out, entry.frontend_id.as_bytes());
    out.extend_from_slice(b"\" ");
    // Hipache prints `milliseconds / 1000` as a JavaScript number: `0`, `0.012`, `1.5`.
    ascii::seconds_from_millis(out, entry.total.as_millis() as u64);
    out.push(b' ');
    ascii::seconds_from_millis(out, entry.backend.as_millis() as u64);
    out.push(b'\n');
}

/// Why access log lines cannot be sent to `logging.udp`.
#[derive(Debug, thiserror::Error)]
pub enum ShippingError {
    /// The host has no address.
    #[error("logging.udp.host: cannot resolve {host}:{port}")]
    Resolve {
        /// `logging.udp.host`.
        host: String,
        /// `logging.udp.port`.
        port: u16,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// No socket can send to its address.
    #[error("logging.udp: cannot send to {target}")]
    Connect {
        /// The address `logging.udp.host` resolved to.
        target: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// A non-blocking UDP socket connected to `host:port` (`logging.udp`). The master and `--dry`
/// call it at start, so that a target that cannot be resolved or reached stops the start.
pub(crate) fn ship_to(host: &str, port: u16) -> Result<UdpSocket, ShippingError> {
    let resolve = |source| ShippingError::Resolve {
        host: host.to_owned(),
        port,
        source,
    };
    let target = crate::config::first_address(host, port).map_err(resolve)?;
    let connect = |source| ShippingError::Connect { target, source };
    let local: (IpAddr, u16) = match target {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED.into(), 0),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED.into(), 0),
    };
    let socket = UdpSocket::bind(local).map_err(connect)?;
    socket.connect(target).map_err(connect)?;
    socket.set_nonblocking(true).map_err(connect)?;
    Ok(socket)
}

/// A worker's access log, its file with pending lines and/or its datagram socket.
/// Single-threaded: owned by one worker.
pub struct AccessLog {
    file: Option<LogFile>,
    /// `logging.udp`: connected, non-blocking.
    udp: Option<UdpSocket>,
    format: AccessLogFormat,
    pending: RefCell<Vec<u8>>,
}

struct LogFile {
    path: PathBuf,
    file: RefCell<File>,
}

impl AccessLog {
    /// Opens (creating, mode 0644) `path` for appending, its lines written in `format`.
    pub fn open(path: &Path, format: AccessLogFormat) -> io::Result<Self> {
        let file = open_append(path)?;
        Ok(Self {
            file: Some(LogFile {
                path: path.to_owned(),
                file: RefCell::new(file),
            }),
            udp: None,
            format,
            pending: RefCell::new(Vec::with_capacity(FLUSH_BYTES)),
        })
    }

    /// `log` (or, without a file, a log of datagrams only, in `format`) that also sends each
    /// line to `host:port` (`logging.udp`). A worker calls it after the master checked the target; one
    /// that fails now (a DNS outage at a restart or reload) costs the datagrams, never the
    /// serving: it is logged, and `log` is returned as it was.
    pub(crate) fn shipping(
        log: Option<Self>,
        host: &str,
        port: u16,
        format: AccessLogFormat,
    ) -> Option<Self> {
        let socket = match ship_to(host, port) {
            Ok(socket) => socket,
            Err(error) => {
                let error = crate::logging::chain(&error);
                tracing::warn!(
                    error,
                    "access log lines not shipped; serving without logging.udp"
                );
                return log;
            }
        };
        let mut log = log.unwrap_or_else(|| Self {
            file: None,
            udp: None,
            format,
            pending: RefCell::new(Vec::new()),
        });
        log.udp = Some(socket);
        Some(log)
    }

    pub(crate) fn record(&self, entry: &Entry<'_>) {
        let full = {
            let mut pending = self.pending.borrow_mut();
            let start = pending.len();
            match self.format {
                AccessLogFormat::Hipache => format_line(&mut pending, entry),
                AccessLogFormat::Json => format_json(&mut pending, entry),
            }
            if let Some(udp) = &self.udp {
                // Full socket buffer, or nobody listening (ICMP refused): the line is lost for
                // the collector, never waited for.
                if udp.send(&pending[start..]).is_err() {
                    metrics::count(Counter::LogDatagramsDropped);
                }
            }
            if self.file.is_none() {
                pending.truncate(start);
            }
            pending.len() >= FLUSH_BYTES
        };
        if full {
            self.flush();
        }
    }

    /// Writes every pending line; an I/O error is logged and the lines are dropped, so a full
    /// disk never grows the worker's memory.
    pub(crate) fn flush(&self) {
        let Some(log) = &self.file else {
            return;
        };
        let mut pending = self.pending.borrow_mut();
        if pending.is_empty() {
            return;
        }
        if let Err(error) = log.file.borrow_mut().write_all(&pending) {
            tracing::warn!(path = %log.path.display(), %error, "access log write failed");
        }
        pending.clear();
    }

    /// Flushes, then reopens the file by name (after log rotation moved it away).
    pub(crate) fn reopen(&self) {
        self.flush();
        let Some(log) = &self.file else {
            return;
        };
        match open_append(&log.path) {
            Ok(file) => {
                *log.file.borrow_mut() = file;
                tracing::info!(path = %log.path.display(), "access log reopened");
            }
            Err(error) => {
                tracing::error!(path = %log.path.display(), %error, "access log reopen failed")
            }
        }
    }
}

/// What a line shows of a request, copied out when it arrives (the request then moves on).
pub(crate) struct LoggedRequest {
    log: Rc<AccessLog>,
    client: IpAddr,
    time: SystemTime,
    /// Method, URI, referer, user agent and (for the JSON format only) host one after the
    /// other, split at `ends`.
    text: Vec<u8>,
    ends: [usize; 4],
    version: &'static str,
    tls: Option<&'static str>,
}

/// The request's facts a line shows, borrowed from its head.
pub(crate) struct RequestFacts<'a> {
    pub(crate) client: IpAddr,
    pub(crate) method: &'a [u8],
    pub(crate) uri: &'a [u8],
    pub(crate) version: &'static str,
    pub(crate) referer: &'a [u8],
    pub(crate) user_agent: &'a [u8],
    /// `Host` or the authority; copied for the JSON format only.
    pub(crate) host: &'a [u8],
    pub(crate) tls: Option<&'static str>,
}

impl LoggedRequest {
    pub(crate) fn new(log: Rc<AccessLog>, facts: RequestFacts<'_>) -> Self {
        let host = match log.format {
            AccessLogFormat::Hipache => &[][..],
            AccessLogFormat::Json => facts.host,
        };
        let parts = [facts.method, facts.uri, facts.referer, facts.user_agent];
        let mut text =
            Vec::with_capacity(parts.iter().map(|p| p.len()).sum::<usize>() + host.len());
        let mut ends = [0; 4];
        for (end, part) in ends.iter_mut().zip(parts) {
            text.extend_from_slice(part);
            *end = text.len();
        }
        text.extend_from_slice(host);
        Self {
            log,
            client: facts.client,
            time: SystemTime::now(),
            text,
            ends,
            version: facts.version,
            tls: facts.tls,
        }
    }

    /// The line once the response status is known; written when the response ends.
    /// `backend` is the index of the frontend's backend that answered, `None` when none did.
    pub(crate) fn into_pending(
        self,
        status: u16,
        frontend: Arc<Frontend>,
        backend: Option<usize>,
        start: Instant,
        backend_start: Instant,
    ) -> PendingLine {
        PendingLine {
            request: self,
            status,
            frontend,
            backend,
            start,
            backend_start,
        }
    }
}

/// A request waiting for its response to end: everything the line needs but the byte count.
pub(crate) struct PendingLine {
    request: LoggedRequest,
    status: u16,
    frontend: Arc<Frontend>,
    /// The index (in its list) of the backend that answered.
    backend: Option<usize>,
    start: Instant,
    backend_start: Instant,
}

impl PendingLine {
    /// The status the client got after all, when it is not the backend's.
    pub(crate) fn set_status(&mut self, status: u16) {
        self.status = status;
    }

    pub(crate) fn write(&self, bytes: u64) {
        let now = Instant::now();
        let request = &self.request;
        let [method, uri, referer, agent] = request.ends;
        // Looked up for the JSON format only: Hipache's line does not show it.
        let backend_url = match request.log.format {
            AccessLogFormat::Hipache => None,
            AccessLogFormat::Json => self
                .backend
                .and_then(|index| self.frontend.backends.iter().find(|b| b.index == index)),
        };
        request.log.record(&Entry {
            client: request.client,
            time: request.time,
            method: &request.text[..method],
            uri: &request.text[method..uri],
            version: request.version,
            status: self.status,
            bytes,
            referer: &request.text[uri..referer],
            user_agent: &request.text[referer..agent],
            frontend_id: &self.frontend.id,
            host: &request.text[agent..],
            backend_url: backend_url.map(|b| b.url.as_str()),
            tls: request.tls,
            total: now - self.start,
            backend: now - self.backend_start,
        });
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
}

#[cfg(test)]
mod tests;
