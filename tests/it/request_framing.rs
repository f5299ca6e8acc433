//! How strictly a client's request is framed on its way to a backend: the one transfer
//! coding accepted, `Content-Length` and chunk-size numbers, chunk lines, and trailers, checked
//! byte for byte at a raw backend that records what crossed its socket.

use std::io::{BufReader, Read};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use crate::support::raw_backend::{ok, proxy_to, read_message, RawBackend, Wire};
use crate::support::{raw_http, Hipache, RedisServer};

/// What a backend socket read, byte for byte, as it was read.
struct Tee {
    stream: TcpStream,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.seen.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// A backend that reads one request per connection, answers `ok`, and keeps the raw bytes of
/// each connection.
fn recording_backend() -> (RawBackend, Arc<Mutex<Vec<Vec<u8>>>>) {
    let raw = Arc::new(Mutex::new(Vec::new()));
    let connections = raw.clone();
    let backend = RawBackend::start(move |peer| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stream = peer.wire.0.get_ref().try_clone().unwrap();
        let mut reader = BufReader::new(Tee {
            stream,
            seen: seen.clone(),
        });
        let read = read_message(&mut reader, None).is_some();
        connections
            .lock()
            .unwrap()
            .push(seen.lock().unwrap().clone());
        if read {
            peer.write(&ok("ok"));
        }
    });
    (backend, raw)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The status line of the proxy's answer to `request`, sent raw on a fresh connection.
fn status_of(hipache: &Hipache, request: &[u8]) -> String {
    let answer = raw_http::send(hipache.addr(), request);
    answer.lines().next().unwrap_or_default().to_owned()
}

/// A chunked POST to `host` (the connection closing after it) with `te` as its coding and
/// `body` after the head.
fn chunked_post(host: &str, te: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "POST /up HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nTransfer-Encoding: {te}\r\n\r\n"
    );
    [head.as_bytes(), body].concat()
}

#[test]
fn transfer_codings_other_than_one_chunked_get_400_and_never_reach_the_backend() {
    let redis = RedisServer::start();
    let (backend, _) = recording_backend();
    let hipache = proxy_to(&redis, "te.local", &backend.url());
    let body = b"5\r\nhello\r\n0\r\n\r\n";
    let shapes = [
        "chunked, chunked",
        "chunked\r\nTransfer-Encoding: chunked",
        "gzip, chunked",
        ",chunked",
        "identity, chunked",
    ];
    let statuses: Vec<_> = shapes
        .iter()
        .map(|te| status_of(&hipache, &chunked_post("te.local", te, body)))
        .collect();
    assert_eq!(statuses, ["HTTP/1.1 400 Bad Request"; 5], "{shapes:?}");
    assert_eq!(
        backend.connections(),
        0,
        "a refused shape reached the backend"
    );
}

#[test]
fn the_backend_gets_exactly_one_canonical_transfer_encoding_field() {
    let redis = RedisServer::start();
    let (backend, raw) = recording_backend();
    let hipache = proxy_to(&redis, "te.local", &backend.url());
    let request = chunked_post("te.local", " CHUNKED ", b"5\r\nhello\r\n0\r\n\r\n");
    assert_eq!(status_of(&hipache, &request), "HTTP/1.1 200 OK");
    let sent = text(&raw.lock().unwrap()[0]);
    let fields: Vec<_> = sent
        .lines()
        .filter(|line| line.to_ascii_lowercase().starts_with("transfer-encoding"))
        .collect();
    assert_eq!(fields, ["Transfer-Encoding: chunked"], "{sent}");
}

#[test]
fn equal_content_lengths_reach_the_backend_as_one() {
    let redis = RedisServer::start();
    let (backend, raw) = recording_backend();
    let hipache = proxy_to(&redis, "cl.local", &backend.url());
    let request = b"POST / HTTP/1.1\r\nHost: cl.local\r\nContent-Length: 5\r\n\
        Content-Length: 5\r\nConnection: close\r\n\r\nhello";
    assert_eq!(status_of(&hipache, request), "HTTP/1.1 200 OK");
    let sent = text(&raw.lock().unwrap()[0]);
    let lengths = sent.to_ascii_lowercase().matches("content-length").count();
    assert_eq!(lengths, 1, "{sent}");
    assert!(sent.ends_with("\r\n\r\nhello"), "{sent}");
}

#[test]
fn numbers_and_chunk_lines_a_signed_or_lenient_parser_would_misread_get_400() {
    let redis = RedisServer::start();
    let (backend, _) = recording_backend();
    let hipache = proxy_to(&redis, "num.local", &backend.url());
    let long_extensions = [b"1;".as_slice(), &[b'e'; 4000], b"\r\nx\r\n"]
        .concat()
        .repeat(5);
    let requests = [
        b"POST / HTTP/1.1\r\nHost: num.local\r\nContent-Length: 9223372036854775808\r\n\r\nhello"
            .to_vec(),
        chunked_post("num.local", "chunked", b"ffffffffffffffff\r\nhello\r\n"),
        chunked_post("num.local", "chunked", b"8000000000000000\r\nhello\r\n"),
        chunked_post("num.local", "chunked", b"5 xyz\r\nhello\r\n0\r\n\r\n"),
    ];
    let statuses: Vec<_> = requests.iter().map(|r| status_of(&hipache, r)).collect();
    assert_eq!(statuses, ["HTTP/1.1 400 Bad Request"; 4]);
    assert_eq!(
        backend.connections(),
        0,
        "a refused body reached the backend"
    );

    // Refused some 16 KiB in: a body that long may already be streaming to the backend, which
    // then sees it cut short.
    let request = chunked_post("num.local", "chunked", &long_extensions);
    assert_eq!(status_of(&hipache, &request), "HTTP/1.1 400 Bad Request");
}

#[test]
fn a_chunk_line_over_the_bound_sent_with_the_head_never_reaches_the_backend() {
    let redis = RedisServer::start();
    let (backend, _) = recording_backend();
    let hipache = proxy_to(&redis, "ext.local", &backend.url());
    // One write: the head, and a chunk line whose 100 KB extension passes the 4 KiB bound
    // long before its end.
    let body = [b"1;".as_slice(), &[b'e'; 100 * 1024], b"\r\nx\r\n0\r\n\r\n"].concat();
    let request = chunked_post("ext.local", "chunked", &body);
    assert_eq!(status_of(&hipache, &request), "HTTP/1.1 400 Bad Request");
    // The backend accepts in order: once a later request was answered, any connection the
    // refused one opened has been counted before it.
    let later = b"GET /later HTTP/1.1\r\nHost: ext.local\r\nConnection: close\r\n\r\n";
    assert_eq!(status_of(&hipache, later), "HTTP/1.1 200 OK");
    assert_eq!(
        backend.connections(),
        1,
        "the head of a refused body reached the backend"
    );
}

#[test]
fn trailer_fields_refused_in_a_head_get_400_and_never_reach_the_backend() {
    let redis = RedisServer::start();
    let (backend, _) = recording_backend();
    let hipache = proxy_to(&redis, "trail.local", &backend.url());
    let trailers = [
        &b"GET /smuggled HTTP/1.1\r\n"[..],
        b"X Bad: 1\r\n",
        b"X-Fold: 1\r\n folded\r\n",
        b"X-Nul: a\x00b\r\n",
        b"X-Cr: a\rb\r\n",
    ];
    let statuses: Vec<_> = trailers
        .iter()
        .map(|trailer| {
            let body = [b"5\r\nhello\r\n0\r\n", *trailer, b"\r\n"].concat();
            status_of(&hipache, &chunked_post("trail.local", "chunked", &body))
        })
        .collect();
    assert_eq!(statuses, ["HTTP/1.1 400 Bad Request"; 5]);
    assert_eq!(
        backend.connections(),
        0,
        "a bad trailer reached the backend"
    );
}

#[test]
fn framing_fields_are_dropped_from_trailers_of_small_and_streamed_bodies() {
    let redis = RedisServer::start();
    let (backend, raw) = recording_backend();
    let hipache = proxy_to(&redis, "trail.local", &backend.url());
    let trailers = b"0\r\nContent-Length: 5\r\nX-Kept: k\r\nTransfer-Encoding: chunked\r\n\
        Connection: close\r\n\r\n";
    // 5 bytes (kept whole for retries) and 96 KiB (over the replay limit: streamed).
    for len in [5, 96 * 1024] {
        let mut body = format!("{len:x}\r\n").into_bytes();
        body.resize(body.len() + len, b'x');
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(trailers);
        let mut client = Wire::open(hipache.addr());
        client.write(&chunked_post("trail.local", "chunked", &body));
        assert_eq!(client.answer().line, "HTTP/1.1 200 OK", "{len}");
    }
    let raw = raw.lock().unwrap();
    assert_eq!(raw.len(), 2);
    for sent in raw.iter() {
        let sent = text(sent);
        assert!(
            sent.ends_with("x\r\n0\r\nX-Kept: k\r\n\r\n"),
            "{:?}",
            &sent[sent.len() - 80..]
        );
        let after_head = &sent[sent.find("\r\n\r\n").unwrap()..];
        assert!(!after_head.contains("Content-Length"), "{after_head:.200}");
    }
}
