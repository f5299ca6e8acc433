//! The access log's JSON format (`server.accessLogFormat: "json"`): one object per line,
//! written by serde_json from the same [`Entry`] as Hipache's line.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

use super::Entry;
use crate::ascii;

/// One line of the JSON format; text a client sent is written as UTF-8, its invalid bytes as
/// U+FFFD.
#[derive(Serialize)]
struct JsonLine<'a> {
    time: &'a str,
    client: IpAddr,
    host: Cow<'a, str>,
    method: Cow<'a, str>,
    path: Cow<'a, str>,
    protocol: Protocol<'a>,
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
    let line = JsonLine {
        // The buffer holds ASCII digits and separators only.
        time: std::str::from_utf8(&time).unwrap_or_default(),
        client: entry.client,
        host: String::from_utf8_lossy(entry.host),
        method: String::from_utf8_lossy(entry.method),
        path: String::from_utf8_lossy(entry.uri),
        protocol: Protocol(entry.version),
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

/// `HTTP/1.1` from `1.1`, written without a `String`.
struct Protocol<'a>(&'a str);

impl Serialize for Protocol<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("HTTP/{}", self.0))
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::access_log::tests::entry;

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
}
