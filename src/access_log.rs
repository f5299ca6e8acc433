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

use std::borrow::Cow;
use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::AccessLogFormat;
use crate::metrics::{self, names::Counter};
use crate::routes::Frontend;
use crate::{ascii, escape};

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

/// One line of the JSON format; text a client sent is written as UTF-8, its invalid bytes as
/// U+FFFD.
#[derive(Serialize)]
struct JsonLine<'a> {
    time: &'a str,
    client: IpAddr,
    host: Cow<'a, str>,
    method: Cow<'a, str>,
    path: Cow<'a, str>,
    protocol: &'a str,
    status: u16,
    bytes: u64,
    referer: Cow<'a, str>,
    user_agent: Cow<'a, str>,
    frontend: &'a str,
    backend: Option<&'a str>,
    total_seconds: f64,
    backend_seconds: f64,
    tls: Option<&'a str>,
}

/// Appends one JSON object and a newline to `out`: `time` (RFC 3339, UTC, milliseconds),
/// `client`, `host`, `method`, `path`, `protocol` (`HTTP/1.1`), `status`, `bytes`, `referer`,
/// `user_agent`, `frontend`, `backend` (`null` when no backend answered), `total_seconds`,
/// `backend_seconds` and `tls` (`null` when plain). serde_json escapes quotes, backslashes and
/// every control character; bytes that are not UTF-8 become U+FFFD, so every line is valid
/// JSON and no field can end it early.
pub fn format_json(out: &mut Vec<u8>, entry: &Entry<'_>) {
    let time = rfc3339_millis(entry.time);
    let protocol = match entry.version {
        "1.0" => "HTTP/1.0",
        "2.0" => "HTTP/2.0",
        _ => "HTTP/1.1",
    };
    let line = JsonLine {
        // The buffer holds ASCII digits and separators only.
        time: std::str::from_utf8(&time).unwrap_or_default(),
        client: entry.client,
        host: String::from_utf8_lossy(entry.host),
        method: String::from_utf8_lossy(entry.method),
        path: String::from_utf8_lossy(entry.uri),
        protocol,
        status: entry.status,
        bytes: entry.bytes,
        referer: String::from_utf8_lossy(entry.referer),
        user_agent: String::from_utf8_lossy(entry.user_agent),
        frontend: entry.frontend_id,
        backend: entry.backend_url,
        total_seconds: entry.total.as_secs_f64(),
        backend_seconds: entry.backend.as_secs_f64(),
        tls: entry.tls,
    };
    let start = out.len();
    // Writing to a `Vec` cannot fail, nor can serializing strings and numbers; if it ever did,
    // no half line is left behind.
    if serde_json::to_writer(&mut *out, &line).is_err() {
        out.truncate(start);
        return;
    }
    out.push(b'\n');
}

/// `2026-11-24T02:30:12.345Z`.
fn rfc3339_millis(time: SystemTime) -> [u8; 24] {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = ascii::civil_from_days((secs / 86_400) as i64);
    let of_day = secs % 86_400;
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut n: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year.clamp(0, 9999) as u64);
    put(5, 2, u64::from(month));
    put(8, 2, u64::from(day));
    put(11, 2, of_day / 3600);
    put(14, 2, of_day / 60 % 60);
    put(17, 2, of_day % 60);
    put(20, 3, u64::from(since.subsec_millis()));
    out
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
    let target = (host, port)
        .to_socket_addrs()
        .map_err(resolve)?
        .next()
        .ok_or_else(|| resolve(io::Error::new(io::ErrorKind::NotFound, "no address")))?;
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
mod tests {
    use super::*;

    #[test]
    fn a_shipping_target_that_fails_in_a_worker_leaves_the_file_log() {
        let dir = tempfile::tempdir().unwrap();
        let file =
            AccessLog::open(&dir.path().join("access.log"), AccessLogFormat::Hipache).unwrap();
        let log = AccessLog::shipping(
            Some(file),
            "no-such-host.invalid",
            5001,
            AccessLogFormat::Hipache,
        )
        .unwrap();
        assert!(log.file.is_some() && log.udp.is_none());
        assert!(
            AccessLog::shipping(None, "no-such-host.invalid", 5001, AccessLogFormat::Hipache)
                .is_none()
        );
        let shipped =
            AccessLog::shipping(None, "127.0.0.1", 5001, AccessLogFormat::Hipache).unwrap();
        assert!(shipped.file.is_none() && shipped.udp.is_some());
    }

    fn entry(uri: &[u8]) -> Entry<'_> {
        Entry {
            client: "127.0.0.1".parse().unwrap(),
            // 2026-11-24T02:30:12Z
            time: UNIX_EPOCH + Duration::from_secs(1_795_487_412),
            method: b"GET",
            uri,
            version: "1.1",
            status: 200,
            bytes: 1234,
            referer: b"referer",
            user_agent: b"user-agent",
            frontend_id: "vhost-identifier",
            host: b"www.example.com",
            backend_url: Some("http://10.0.0.1:8080"),
            tls: None,
            total: Duration::from_millis(12),
            backend: Duration::from_millis(11),
        }
    }

    #[test]
    fn line_matches_hipache_byte_for_byte() {
        let mut out = Vec::new();
        format_line(&mut out, &entry(b"/path?q"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "::ffff:127.0.0.1 - - [24/Nov/2026:02:30:12 +0000] \"GET /path?q HTTP/1.1\" 200 1234 \
             \"referer\" \"user-agent\" \"vhost-identifier\" 0.012 0.011\n"
        );
    }

    #[test]
    fn empty_fields_whole_seconds_and_ipv6() {
        let mut e = entry(b"/");
        e.client = "2001:db8::1".parse().unwrap();
        e.referer = b"";
        e.user_agent = b"";
        e.total = Duration::from_millis(1500);
        e.backend = Duration::ZERO;
        let mut out = Vec::new();
        format_line(&mut out, &e);
        let line = String::from_utf8(out).unwrap();
        assert!(line.starts_with("2001:db8::1 - - ["), "{line}");
        assert!(
            line.ends_with("\"\" \"\" \"vhost-identifier\" 1.5 0\n"),
            "{line}"
        );
    }

    #[test]
    fn fields_from_clients_and_redis_cannot_forge_a_line() {
        let mut e = entry(b"/a\"b\xc3\xa9");
        e.frontend_id = "id\n::ffff:6.6.6.6 - - [x] \"GET /forged HTTP/1.1\" 200 0";
        e.referer = b"r\\\x7f";
        e.user_agent = b"ua\" \"\x1b[2J\r";
        let mut out = Vec::new();
        format_line(&mut out, &e);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "::ffff:127.0.0.1 - - [24/Nov/2026:02:30:12 +0000] \"GET /a\\x22b\\xC3\\xA9 HTTP/1.1\" \
             200 1234 \"r\\x5C\\x7F\" \"ua\\x22 \\x22\\x1B[2J\\x0D\" \
             \"id\\x0A::ffff:6.6.6.6 - - [x] \\x22GET /forged HTTP/1.1\\x22 200 0\" 0.012 0.011\n"
        );
    }

    fn json(entry: &Entry<'_>) -> serde_json::Value {
        let mut out = Vec::new();
        format_json(&mut out, entry);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.ends_with('\n'), "{text}");
        assert!(!text.bytes().any(|b| b < 0x20 && b != b'\n'), "{text}");
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn json_line_has_every_field() {
        let mut e = entry(b"/path?q");
        e.time += Duration::from_millis(45);
        e.tls = Some("TLSv1.3");
        assert_eq!(
            json(&e),
            serde_json::json!({
                "time": "2026-11-24T02:30:12.045Z",
                "client": "127.0.0.1",
                "host": "www.example.com",
                "method": "GET",
                "path": "/path?q",
                "protocol": "HTTP/1.1",
                "status": 200,
                "bytes": 1234,
                "referer": "referer",
                "user_agent": "user-agent",
                "frontend": "vhost-identifier",
                "backend": "http://10.0.0.1:8080",
                "total_seconds": 0.012,
                "backend_seconds": 0.011,
                "tls": "TLSv1.3",
            })
        );
        e.version = "2.0";
        e.backend_url = None;
        e.tls = None;
        let line = json(&e);
        assert_eq!(line["protocol"], "HTTP/2.0");
        assert!(line["backend"].is_null() && line["tls"].is_null(), "{line}");
    }

    /// Quotes, newlines, ESC and bytes that are not UTF-8 stay inside their string: controls
    /// are escaped by serde_json, invalid bytes become U+FFFD.
    #[test]
    fn json_line_keeps_hostile_fields_inside_their_strings() {
        let mut e = entry(b"/a\"b\xc3\xa9\n");
        e.frontend_id = "id\",\"status\":999";
        e.host = b"h\x00\xff";
        e.referer = b"r\\\x7f";
        e.user_agent = b"ua\" \"\x1b[2J\r\n{\"x\":1}\xff\xfe ok";
        let line = json(&e);
        assert_eq!(line["path"], "/a\"b\u{e9}\n");
        assert_eq!(line["frontend"], "id\",\"status\":999");
        assert_eq!(line["status"], 200);
        assert_eq!(line["host"], "h\u{0}\u{fffd}");
        assert_eq!(line["referer"], "r\\\u{7f}");
        assert_eq!(
            line["user_agent"],
            "ua\" \"\u{1b}[2J\r\n{\"x\":1}\u{fffd}\u{fffd} ok"
        );
    }

    #[test]
    fn rfc3339_time_is_utc_with_milliseconds() {
        let at = |ms: u64| rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(&at(0), b"1970-01-01T00:00:00.000Z");
        assert_eq!(&at(951_782_400_999), b"2000-02-29T00:00:00.999Z");
    }

    #[test]
    fn writer_appends_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(&path, AccessLogFormat::Hipache).unwrap();
        log.record(&entry(b"/a"));
        log.flush();
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        log.record(&entry(b"/b"));
        log.reopen();
        log.record(&entry(b"/c"));
        log.flush();
        let old = std::fs::read_to_string(dir.path().join("access.log.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(old.lines().count(), 2, "{old}");
        assert!(new.contains("GET /c ") && new.lines().count() == 1, "{new}");
    }
}
