//! Unit tests of the access log: Hipache's line byte for byte, the JSON line, the writer.

use super::*;
use crate::config::AccessLogFormat;

#[test]
fn a_shipping_target_that_fails_in_a_worker_leaves_the_file_log() {
    let dir = tempfile::tempdir().unwrap();
    let file = AccessLog::open(&dir.path().join("access.log"), AccessLogFormat::Hipache).unwrap();
    let log = AccessLog::shipping(
        Some(file),
        "no-such-host.invalid",
        5001,
        AccessLogFormat::Hipache,
    )
    .unwrap();
    assert!(log.file.is_some() && log.udp.is_none());
    assert!(
        AccessLog::shipping(None, "no-such-host.invalid", 5001, AccessLogFormat::Hipache).is_none()
    );
    let shipped = AccessLog::shipping(None, "127.0.0.1", 5001, AccessLogFormat::Hipache).unwrap();
    assert!(shipped.file.is_none() && shipped.udp.is_some());
}

pub(super) fn entry(uri: &[u8]) -> Entry<'_> {
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

/// The JSON format goes through the same writer: batched into the file, reopened by name, and
/// shipped as one datagram per line, the same bytes as the file's.
#[test]
fn json_lines_are_written_reopened_and_shipped_like_hipache_lines() {
    let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
    collector
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let port = collector.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let file = AccessLog::open(&path, AccessLogFormat::Json).unwrap();
    let log = AccessLog::shipping(Some(file), "127.0.0.1", port, AccessLogFormat::Json).unwrap();
    log.record(&entry(b"/a"));
    log.reopen();
    std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
    log.reopen();
    log.record(&entry(b"/b"));
    log.flush();
    let old = std::fs::read_to_string(dir.path().join("access.log.1")).unwrap();
    let new = std::fs::read_to_string(&path).unwrap();
    let mut datagram = [0; 2048];
    for (text, path) in [(&old, "/a"), (&new, "/b")] {
        let line: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(line["path"], path, "{text}");
        let size = collector.recv(&mut datagram).unwrap();
        assert_eq!(&datagram[..size], text.as_bytes());
    }
}
