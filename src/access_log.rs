//! The access log: Hipache's line format (pure, byte-exact) and a batching `O_APPEND` writer.
//!
//! ```text
//! ::ffff:127.0.0.1 - - [24/Nov/2026:02:30:12 +0000] "GET /path?q HTTP/1.1" 200 1234 "referer" "user-agent" "frontend-id" 0.012 0.011
//! ```
//! Lines are formatted into one buffer and written with a single `write` per batch (a timer or a
//! full buffer flushes it); `reopen` (SIGUSR1) and `flush` at exit lose nothing.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::routes::Frontend;

/// How long a line may wait in the buffer before it reaches the file.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// A buffer this full is written at once rather than at the next tick.
const FLUSH_BYTES: usize = 64 * 1024;

/// One request as the access log shows it.
pub struct Entry<'a> {
    pub client: IpAddr,
    pub time: SystemTime,
    pub method: &'a [u8],
    pub uri: &'a [u8],
    pub version: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub referer: &'a [u8],
    pub user_agent: &'a [u8],
    pub frontend_id: &'a str,
    pub total: Duration,
    pub backend: Duration,
}

pub(crate) const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Appends one line, newline included, to `out`.
pub fn format_line(out: &mut Vec<u8>, entry: &Entry<'_>) {
    // Writing into a Vec cannot fail; the results below are ignored for that reason.
    match entry.client {
        IpAddr::V4(v4) => {
            let _ = write!(out, "::ffff:{v4}");
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
    out.extend_from_slice(b" - - [");
    write_time(out, entry.time);
    out.extend_from_slice(b" +0000] \"");
    out.extend_from_slice(entry.method);
    out.push(b' ');
    out.extend_from_slice(entry.uri);
    let _ = write!(
        out,
        " HTTP/{}\" {} {} \"",
        entry.version, entry.status, entry.bytes
    );
    out.extend_from_slice(entry.referer);
    out.extend_from_slice(b"\" \"");
    out.extend_from_slice(entry.user_agent);
    out.extend_from_slice(b"\" \"");
    out.extend_from_slice(entry.frontend_id.as_bytes());
    let _ = writeln!(
        out,
        "\" {} {}",
        seconds(entry.total),
        seconds(entry.backend)
    );
}

/// Hipache prints `milliseconds / 1000` as a JavaScript number: `0`, `0.012`, `1.5`.
fn seconds(duration: Duration) -> f64 {
    duration.as_millis() as f64 / 1000.0
}

/// `24/Nov/2026:02:30:12` in UTC.
fn write_time(out: &mut Vec<u8>, time: SystemTime) {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let _ = write!(
        out,
        "{day:02}/{}/{year}:{:02}:{:02}:{:02}",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), Howard Hinnant's algorithm.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A worker's access log file with its pending lines. Single-threaded: owned by one worker.
pub struct AccessLog {
    path: PathBuf,
    file: RefCell<File>,
    pending: RefCell<Vec<u8>>,
}

impl AccessLog {
    /// Opens (creating, mode 0644) `path` for appending.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = open_append(path)?;
        Ok(Self {
            path: path.to_owned(),
            file: RefCell::new(file),
            pending: RefCell::new(Vec::with_capacity(FLUSH_BYTES)),
        })
    }

    pub fn record(&self, entry: &Entry<'_>) {
        let full = {
            let mut pending = self.pending.borrow_mut();
            format_line(&mut pending, entry);
            pending.len() >= FLUSH_BYTES
        };
        if full {
            self.flush();
        }
    }

    /// Writes every pending line; an I/O error is logged and the lines are dropped, so a full
    /// disk never grows the worker's memory.
    pub fn flush(&self) {
        let mut pending = self.pending.borrow_mut();
        if pending.is_empty() {
            return;
        }
        if let Err(error) = self.file.borrow_mut().write_all(&pending) {
            tracing::warn!(path = %self.path.display(), %error, "access log write failed");
        }
        pending.clear();
    }

    /// Flushes, then reopens the file by name (after log rotation moved it away).
    pub fn reopen(&self) {
        self.flush();
        match open_append(&self.path) {
            Ok(file) => {
                *self.file.borrow_mut() = file;
                tracing::info!(path = %self.path.display(), "access log reopened");
            }
            Err(error) => {
                tracing::error!(path = %self.path.display(), %error, "access log reopen failed")
            }
        }
    }
}

/// What a line shows of a request, copied out when it arrives (the request then moves on).
pub struct LoggedRequest {
    log: Rc<AccessLog>,
    client: IpAddr,
    time: SystemTime,
    /// Method, URI, referer and user agent one after the other, split at `ends`.
    text: Vec<u8>,
    ends: [usize; 3],
    version: &'static str,
}

impl LoggedRequest {
    pub fn new(
        log: Rc<AccessLog>,
        client: IpAddr,
        method: &[u8],
        uri: &[u8],
        version: &'static str,
        referer: &[u8],
        user_agent: &[u8],
    ) -> Self {
        let mut text =
            Vec::with_capacity(method.len() + uri.len() + referer.len() + user_agent.len());
        let mut ends = [0; 3];
        for (end, part) in ends.iter_mut().zip([method, uri, referer]) {
            text.extend_from_slice(part);
            *end = text.len();
        }
        text.extend_from_slice(user_agent);
        Self {
            log,
            client,
            time: SystemTime::now(),
            text,
            ends,
            version,
        }
    }

    /// The line once the response status is known; written when the response ends.
    pub fn into_pending(
        self,
        status: u16,
        frontend: Arc<Frontend>,
        start: Instant,
        backend_start: Instant,
    ) -> PendingLine {
        PendingLine {
            request: self,
            status,
            frontend,
            start,
            backend_start,
        }
    }
}

/// A request waiting for its response to end: everything the line needs but the byte count.
pub struct PendingLine {
    request: LoggedRequest,
    status: u16,
    frontend: Arc<Frontend>,
    start: Instant,
    backend_start: Instant,
}

impl PendingLine {
    /// The status the client got after all, when it is not the backend's.
    pub fn set_status(&mut self, status: u16) {
        self.status = status;
    }

    pub fn write(&self, bytes: u64) {
        let now = Instant::now();
        let request = &self.request;
        let [method, uri, referer] = request.ends;
        request.log.record(&Entry {
            client: request.client,
            time: request.time,
            method: &request.text[..method],
            uri: &request.text[method..uri],
            version: request.version,
            status: self.status,
            bytes,
            referer: &request.text[uri..referer],
            user_agent: &request.text[referer..],
            frontend_id: &self.frontend.id,
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
    fn calendar_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_781), (2026, 11, 24));
    }

    #[test]
    fn writer_appends_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(&path).unwrap();
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
