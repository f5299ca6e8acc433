//! The HTTP/1.x engine at the edges of the protocol: pipelining, chunked and close-delimited
//! answers to both HTTP versions, `100-continue`, smuggling shapes, oversized heads,
//! absolute-form targets, HEAD, stale pooled backend streams, a large chunked upload.
//! Backends the hyper fixture cannot imitate are raw TCP servers (`RawBackend`); the client
//! reads answers byte for byte (`Wire`), so status lines and framing are asserted as sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;

use crate::support::{raw_http, Backend, Body, Config, Hipache, RedisServer, Request};

/// Read and write timeout of every raw socket: a stuck peer fails the test instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const MIB: usize = 1024 * 1024;

/// A chunked answer with a chunk extension and a trailer, for the decoders to walk over.
const CHUNKED_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
    Transfer-Encoding: chunked\r\n\r\n5;note=first\r\nhello\r\n7\r\n, world\r\n0\r\n\
    X-Trailer: t\r\n\r\n";

/// A request or an answer as it crossed the wire, its body's chunk framing decoded.
#[derive(Clone, Debug, Default)]
struct Message {
    /// The request line or the status line.
    line: String,
    /// Names lowercased, in arrival order.
    fields: Vec<(String, String)>,
    body: Vec<u8>,
    /// At a raw backend: which accepted connection carried it (0, 1, ...).
    connection: usize,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        let mut fields = self.fields.iter();
        fields.find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn read_line(reader: &mut impl BufRead) -> Option<String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(n) if n > 0 => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
        _ => None,
    }
}

/// Reads a head and the body it frames; `None` if the peer closed or went quiet first.
/// `answer_to` is the request's method when reading an answer. Without a length or chunking a
/// request has no body and an answer runs to the close; HEAD, 1xx, 204 and 304 answers have none.
fn read_message(reader: &mut impl BufRead, answer_to: Option<&str>) -> Option<Message> {
    let line = read_line(reader)?;
    let mut message = Message {
        line,
        ..Message::default()
    };
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        let field = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
        message.fields.push(field);
    }
    let status = message.line.split(' ').nth(1).unwrap_or_default();
    if answer_to.is_some_and(|method| {
        method == "HEAD" || status.starts_with('1') || matches!(status, "204" | "304")
    }) {
        return Some(message);
    }
    let chunked = message.header("transfer-encoding") == Some("chunked");
    let length = message.header("content-length").map(str::parse);
    let mut body = Vec::new();
    if chunked {
        loop {
            let line = read_line(reader)?;
            let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                while !read_line(reader)?.is_empty() {}
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            (chunk[size..] == *b"\r\n").then_some(())?;
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = length {
        body.resize(length.ok()?, 0);
        reader.read_exact(&mut body).ok()?;
    } else if answer_to.is_some() {
        reader.read_to_end(&mut body).ok()?;
    }
    message.body = body;
    Some(message)
}

/// Asserts an answer's status line and body text.
fn assert_answer(answer: &Message, line: &str, text: &str) {
    assert_eq!(answer.line, line, "{answer:?}");
    assert_eq!(answer.text(), text, "{}", answer.line);
}

/// A client connection to the proxy: raw bytes out, answers read one at a time.
struct Wire(BufReader<TcpStream>);

impl Wire {
    fn open(addr: SocketAddr) -> Wire {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting {addr}: {e}"));
        Wire::over(stream)
    }

    fn over(stream: TcpStream) -> Wire {
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Wire(BufReader::new(stream))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.get_mut().write_all(bytes).expect("write to hipache");
    }

    /// The next answer, to a request of this method.
    fn answer_to(&mut self, method: &str) -> Message {
        read_message(&mut self.0, Some(method)).expect("a whole answer from hipache")
    }

    fn answer(&mut self) -> Message {
        self.answer_to("GET")
    }

    /// The proxy closed the connection: nothing more to read, and no timeout.
    fn assert_closed(&mut self) {
        let mut rest = Vec::new();
        let read = self.0.read_to_end(&mut rest);
        read.expect("hipache to close the connection");
        assert!(rest.is_empty(), "after the answer: {rest:?}");
    }
}

/// One backend connection, handed to the test's script.
struct Peer {
    wire: Wire,
    connection: usize,
    shared: Arc<Shared>,
}

impl Peer {
    /// Reads and records the next request; `None` once the proxy closed or went quiet.
    fn request(&mut self) -> Option<Message> {
        let mut request = read_message(&mut self.wire.0, None)?;
        request.connection = self.connection;
        self.shared.seen.lock().unwrap().push(request.clone());
        Some(request)
    }

    fn write(&mut self, bytes: &[u8]) {
        // The proxy may have gone: what it did with the answer is what the test checks.
        let _ = self.wire.0.get_mut().write_all(bytes);
    }

    /// Answers each request with `answer(request)` until one says `Connection: close`.
    fn answer_each(&mut self, answer: impl Fn(&Message) -> Vec<u8>) {
        while let Some(request) = self.request() {
            self.write(&answer(&request));
            if request.header("connection") == Some("close") {
                return;
            }
        }
    }
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Message>>,
    accepted: AtomicUsize,
    stop: AtomicBool,
}

/// A backend on `127.0.0.1:0` that runs `script` on each connection it accepts (one thread
/// each) and records the requests the script reads. A connection closes when its script returns.
struct RawBackend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl RawBackend {
    fn start(script: impl Fn(&mut Peer) + Send + Sync + 'static) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind raw backend");
        let addr = listener.local_addr().expect("raw backend address");
        let (shared, script) = (Arc::new(Shared::default()), Arc::new(script));
        let accepting = shared.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if accepting.stop.load(Ordering::SeqCst) {
                    return;
                }
                let mut peer = Peer {
                    wire: Wire::over(stream),
                    connection: accepting.accepted.fetch_add(1, Ordering::SeqCst),
                    shared: accepting.clone(),
                };
                let script = script.clone();
                std::thread::spawn(move || script(&mut peer));
            }
        });
        let thread = Some(thread);
        RawBackend {
            addr,
            shared,
            thread,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<Message> {
        self.shared.seen.lock().unwrap().clone()
    }

    fn lines(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.line).collect()
    }

    fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the stop flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An HTTP/1.1 answer with this status, a `Content-Length` and `body`.
fn answer(status: &str, body: &str) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), body.as_bytes()].concat()
}

fn ok(body: &str) -> Vec<u8> {
    answer("200 OK", body)
}

/// `len` bytes without a short period, so a reordered or dropped piece changes the checksum.
fn pattern(len: usize) -> Vec<u8> {
    let byte = |i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8;
    (0..len as u32).map(byte).collect()
}

fn proxy_to(redis: &RedisServer, host: &str, url: &str) -> Hipache {
    redis.frontend(host, host, &[url]);
    Hipache::start(Config::redis(redis))
}

#[test]
fn pipelined_requests_in_one_write_are_answered_in_order() {
    let redis = RedisServer::start();
    let (one, two) = (Backend::named("one"), Backend::named("two"));
    redis.frontend("one.local", "one", &[&one.url()]);
    redis.frontend("two.local", "two", &[&two.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    let mut wire = Wire::open(hipache.addr());
    wire.write(
        b"GET /first HTTP/1.1\r\nHost: one.local\r\n\r\n\
          GET /second HTTP/1.1\r\nHost: two.local\r\n\r\n",
    );

    assert_answer(&wire.answer(), "HTTP/1.1 200 OK", "one");
    assert_answer(&wire.answer(), "HTTP/1.1 200 OK", "two");
    assert_eq!(one.requests()[0].path, "/first");
    assert_eq!(two.requests()[0].path, "/second");
}

#[test]
fn http10_client_gets_a_chunked_answer_decoded_then_a_close() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| peer.answer_each(|_| CHUNKED_ANSWER.to_vec()));
    let hipache = proxy_to(&redis, "chunked.local", &backend.url());

    let mut wire = Wire::open(hipache.addr());
    wire.write(b"GET /doc HTTP/1.0\r\nHost: chunked.local\r\n\r\n");
    let answer = wire.answer();

    // Read to the close: the payload alone, without chunk sizes, extension or trailer.
    assert_answer(&answer, "HTTP/1.0 200 OK", "hello, world");
    assert_eq!(answer.header("transfer-encoding"), None);
    assert_eq!(answer.header("connection"), Some("close"));
    wire.assert_closed();
    assert_eq!(backend.lines(), ["GET /doc HTTP/1.1"]);
}

#[test]
fn http11_client_gets_a_chunked_answer_and_keeps_its_connection() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| peer.answer_each(|_| CHUNKED_ANSWER.to_vec()));
    let hipache = proxy_to(&redis, "chunked.local", &backend.url());

    let mut wire = Wire::open(hipache.addr());
    for path in ["/first", "/second"] {
        wire.write(format!("GET {path} HTTP/1.1\r\nHost: chunked.local\r\n\r\n").as_bytes());
        let answer = wire.answer();

        assert_answer(&answer, "HTTP/1.1 200 OK", "hello, world");
        assert_eq!(answer.header("transfer-encoding"), Some("chunked"));
        assert_eq!(answer.header("connection"), None);
    }
    let lines = ["GET /first HTTP/1.1", "GET /second HTTP/1.1"];
    assert_eq!(backend.lines(), lines);
}

#[test]
fn http10_backend_answer_without_length_runs_to_its_close() {
    let redis = RedisServer::start();
    let body = pattern(256 * 1024);
    let sent = body.clone();
    let backend = RawBackend::start(move |peer| {
        if peer.request().is_some() {
            peer.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n");
            sent.chunks(100_000).for_each(|piece| peer.write(piece));
        }
    });
    let hipache = proxy_to(&redis, "close.local", &backend.url());

    let mut wire = Wire::open(hipache.addr());
    wire.write(b"GET /stream HTTP/1.1\r\nHost: close.local\r\n\r\n");
    let answer = wire.answer();

    assert_eq!(answer.line, "HTTP/1.1 200 OK");
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(answer.header("content-length"), None);
    assert_eq!(answer.header("transfer-encoding"), None);
    assert_eq!(answer.body.len(), body.len());
    assert!(answer.body == body, "the body arrived altered");
    wire.assert_closed();
}

#[test]
fn expect_100_continue_gets_continue_then_the_body_reaches_the_backend() {
    let redis = RedisServer::start();
    // This backend sends a `100 Continue` of its own too: the client must not get two.
    let backend = RawBackend::start(|peer| {
        peer.answer_each(|request| {
            let created = answer("201 Created", &format!("got {} bytes", request.body.len()));
            [&b"HTTP/1.1 100 Continue\r\n\r\n"[..], &created].concat()
        })
    });
    let hipache = proxy_to(&redis, "continue.local", &backend.url());

    let mut wire = Wire::open(hipache.addr());
    wire.write(
        b"POST /upload HTTP/1.1\r\nHost: continue.local\r\nExpect: 100-continue\r\n\
          Content-Length: 10\r\n\r\n",
    );
    let interim = wire.answer();
    assert_answer(&interim, "HTTP/1.1 100 Continue", "");
    assert!(interim.fields.is_empty(), "{interim:?}");
    wire.write(b"0123456789");

    assert_answer(&wire.answer(), "HTTP/1.1 201 Created", "got 10 bytes");
    let seen = backend.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, b"0123456789");
    assert_eq!(seen[0].header("content-length"), Some("10"));
    assert_eq!(seen[0].header("expect"), None, "the proxy met it");
}

#[test]
fn request_smuggling_shapes_get_400_and_never_reach_the_backend() {
    let redis = RedisServer::start();
    let backend = Backend::named("inner");
    let hipache = proxy_to(&redis, "smuggle.local", &backend.url());
    let shapes: [&[u8]; 3] = [
        b"POST / HTTP/1.1\r\nHost: smuggle.local\r\nContent-Length: 6\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
          GET /smuggled HTTP/1.1\r\nHost: smuggle.local\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: smuggle.local\r\nContent-Length: 0\r\n\
          Content-Length: 47\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: smuggle.local\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: smuggle.local\r\nTransfer-Encoding: chunked, identity\r\n\
          \r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: smuggle.local\r\n\r\n",
    ];

    for shape in shapes {
        let answer = raw_http::send(hipache.addr(), shape);
        let status_line = answer.lines().next().unwrap_or_default();
        assert_eq!(status_line, "HTTP/1.1 400 Bad Request", "{answer:?}");
        assert!(answer.contains("\r\nConnection: close\r\n"), "{answer:?}");
    }

    assert_eq!(backend.connections(), 0, "a shape reached the backend");
    assert_eq!(hipache.get("smuggle.local", "/after").status, 200);
    let paths: Vec<_> = backend.requests().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/after"]);
}

/// `GET /` for `host` whose head is `len` bytes long, most of them one `X-Big` value.
fn long_head(host: &str, len: usize) -> Vec<u8> {
    let mut head = format!("GET / HTTP/1.1\r\nHost: {host}\r\nX-Big: ").into_bytes();
    head.resize(len - 4, b'a');
    head.extend_from_slice(b"\r\n\r\n");
    head
}

#[test]
fn a_100_kib_header_gets_431_and_the_proxy_keeps_serving() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let hipache = proxy_to(&redis, "big.local", &backend.url());

    let answer = raw_http::send(hipache.addr(), &long_head("big.local", 100 * 1024 + 64));

    let status_line = answer.lines().next().unwrap_or_default();
    assert_eq!(status_line, "HTTP/1.1 431 Request Header Fields Too Large");
    assert_eq!(backend.connections(), 0);
    let ping = hipache.get("__ping__", "/");
    assert_eq!((ping.status, ping.text().as_str()), (200, "ok"));
}

#[test]
fn absolute_form_target_is_routed_by_its_authority_and_sent_in_origin_form() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| peer.answer_each(|_| ok("abs")));
    let hipache = proxy_to(&redis, "abs.local", &backend.url());

    let mut wire = Wire::open(hipache.addr());
    wire.write(b"GET http://abs.local/path?q HTTP/1.1\r\n\r\n");

    assert_answer(&wire.answer(), "HTTP/1.1 200 OK", "abs");
    let seen = &backend.requests()[0];
    assert_eq!(seen.line, "GET /path?q HTTP/1.1");
    let hosts: Vec<_> = seen.fields.iter().filter(|(n, _)| n == "host").collect();
    assert_eq!(hosts, [&("host".to_owned(), "abs.local".to_owned())]);
}

#[test]
fn head_answer_keeps_its_content_length_without_a_body() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| {
        peer.answer_each(|request| match request.line.starts_with("HEAD ") {
            true => b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n".to_vec(),
            false => ok("after"),
        })
    });
    let hipache = proxy_to(&redis, "head.local", &backend.url());

    let mut wire = Wire::open(hipache.addr());
    wire.write(b"HEAD /doc HTTP/1.1\r\nHost: head.local\r\n\r\n");
    let head = wire.answer_to("HEAD");
    wire.write(b"GET /next HTTP/1.1\r\nHost: head.local\r\n\r\n");

    assert_eq!(head.line, "HTTP/1.1 200 OK");
    assert_eq!(head.header("content-length"), Some("1234"));
    // A body byte after the HEAD answer would be read here as the status line.
    assert_answer(&wire.answer(), "HTTP/1.1 200 OK", "after");
    let lines = ["HEAD /doc HTTP/1.1", "GET /next HTTP/1.1"];
    assert_eq!(backend.lines(), lines);
}

#[test]
fn pooled_streams_the_backend_closed_are_replaced_by_fresh_ones() {
    let redis = RedisServer::start();
    // Every answer has a length and no `Connection: close`. The first stream is closed right
    // after its answer; the second stays idle and is closed when the next request arrives on
    // it, without a byte of answer: the idle close that races the proxy's reuse.
    let backend = RawBackend::start(|peer| {
        if let Some(request) = peer.request() {
            peer.write(&ok(&format!("connection {}", request.connection)));
        }
        if peer.connection == 1 {
            let _ = peer.request();
        }
    });
    redis.frontend("stale.local", "stale", &[&backend.url()]);
    let config = Config::redis(&redis).with(json!({"server": {"httpKeepAlive": true}}));
    let hipache = Hipache::start(config);

    for (path, answered_on) in [("/one", 0), ("/two", 1), ("/three", 2)] {
        let response = hipache.get("stale.local", path);
        let text = format!("connection {answered_on}");
        assert_eq!((response.status, response.text()), (200, text), "{path}");
    }

    let seen = backend.requests();
    assert_eq!(seen[0].header("connection"), None, "asked to keep it");
    let (one, two, three) = (
        "GET /one HTTP/1.1",
        "GET /two HTTP/1.1",
        "GET /three HTTP/1.1",
    );
    assert_eq!(backend.lines(), [one, two, three, three]);
    let carried_on: Vec<_> = seen.iter().map(|r| r.connection).collect();
    assert_eq!(carried_on, [0, 1, 1, 2], "/three was dropped, then resent");
    assert_eq!(backend.connections(), 3);
    assert_eq!(redis.smembers("dead:stale.local"), Vec::<String>::new());
}

#[test]
fn one_mib_chunked_upload_reaches_the_backend_intact() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| {
        peer.answer_each(|request| ok(&format!("{} bytes", request.body.len())))
    });
    let hipache = proxy_to(&redis, "upload.local", &backend.url());
    let payload = pattern(MIB);
    let chunks = payload.chunks(100_003).map(<[u8]>::to_vec).collect();

    let request = Request::new("POST", "upload.local", "/up").body(Body::Chunked(chunks));
    let response = hipache.send(&request);

    assert_eq!(response.status, 200);
    assert_eq!(response.text(), format!("{MIB} bytes"));
    let seen = &backend.requests()[0];
    assert_eq!(seen.header("transfer-encoding"), Some("chunked"));
    assert_eq!(seen.header("content-length"), None);
    assert!(seen.body == payload, "the backend got other bytes");
}

#[test]
fn unknown_host_with_a_body_gets_the_400_page_and_a_close() {
    let redis = RedisServer::start();
    let hipache = Hipache::start(Config::redis(&redis));

    let mut wire = Wire::open(hipache.addr());
    wire.write(b"POST /form HTTP/1.1\r\nHost: nobody.local\r\nContent-Length: 5\r\n\r\nhello");
    let answer = wire.answer();

    assert_eq!(answer.line, "HTTP/1.1 400 Bad Request");
    let page = answer.text();
    assert!(page.contains("No Application Configured"), "{page}");
    assert_eq!(answer.header("connection"), Some("close"));
    wire.assert_closed();
}

#[test]
fn backend_length_beside_chunked_is_dropped_for_both_versions() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| {
        let both = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\
                       \r\n5\r\nhello\r\n0\r\n\r\n";
        peer.answer_each(|_| both.to_vec())
    });
    let hipache = proxy_to(&redis, "both.local", &backend.url());

    for version in ["1.1", "1.0"] {
        let mut wire = Wire::open(hipache.addr());
        wire.write(format!("GET / HTTP/{version}\r\nHost: both.local\r\n\r\n").as_bytes());
        let answer = wire.answer();

        // RFC 9112 §6.3: an intermediary forwarding such a message removes Content-Length.
        assert_eq!(answer.header("content-length"), None, "{answer:?}");
        assert_eq!(answer.text(), "hello", "{answer:?}");
    }
}

#[test]
fn invalid_chunks_get_400_from_a_client_and_502_from_a_backend() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| {
        if peer.request().is_some() {
            peer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
            );
        }
    });
    let hipache = proxy_to(&redis, "chunks.local", &backend.url());

    let mut client = Wire::open(hipache.addr());
    client.write(
        b"POST / HTTP/1.1\r\nHost: chunks.local\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    );
    let refused = client.answer();
    assert_eq!(refused.line, "HTTP/1.1 400 Bad Request");
    client.assert_closed();
    assert_eq!(
        backend.connections(),
        0,
        "the backend never saw the bad body"
    );

    let mut client = Wire::open(hipache.addr());
    client.write(b"GET / HTTP/1.1\r\nHost: chunks.local\r\n\r\n");
    let answer = client.answer();
    assert_eq!(answer.line, "HTTP/1.1 502 Bad Gateway");
    assert!(
        answer.text().contains("Application Not Responding"),
        "{}",
        answer.text()
    );
    assert_eq!(answer.header("connection"), Some("close"));
    client.assert_closed();
}

#[test]
fn connect_is_refused_with_405_and_reaches_no_backend() {
    let redis = RedisServer::start();
    let backend = Backend::named("inner");
    let hipache = proxy_to(&redis, "connect.local", &backend.url());
    let mut client = Wire::open(hipache.addr());
    client.write(b"CONNECT connect.local:443 HTTP/1.1\r\nHost: connect.local:443\r\n\r\n");
    assert_eq!(client.answer().line, "HTTP/1.1 405 Method Not Allowed");
    client.assert_closed();
    assert_eq!(backend.request_count(), 0);
}

#[test]
fn a_post_the_backend_dropped_unanswered_is_not_sent_twice() {
    let redis = RedisServer::start();
    // The first stream answers once, then takes the next request and closes without a word:
    // the backend may have acted on it, so the proxy must not send it again.
    let backend = RawBackend::start(|peer| {
        if peer.request().is_some() {
            peer.write(&ok("first"));
        }
        if peer.connection == 0 {
            let _ = peer.request();
        }
    });
    redis.frontend("once.local", "once", &[&backend.url()]);
    let config = Config::redis(&redis).with(json!({"server": {"httpKeepAlive": true}}));
    let hipache = Hipache::start(config);

    assert_eq!(hipache.get("once.local", "/").status, 200);
    let charge = Request::new("POST", "once.local", "/charge").body(Body::Bytes(b"1".to_vec()));
    assert_eq!(hipache.send(&charge).status, 502);
    assert_eq!(backend.lines(), ["GET / HTTP/1.1", "POST /charge HTTP/1.1"]);
}

#[test]
fn requests_waiting_for_max_sockets_get_the_stream_that_goes_idle() {
    let redis = RedisServer::start();
    let backend = Backend::builder()
        .name("slow")
        .delay(Duration::from_millis(300))
        .start();
    redis.frontend("one-socket.local", "one", &[&backend.url()]);
    let config = Config::redis(&redis).with(json!({
        "server": {"httpKeepAlive": true, "maxSockets": 1, "tcpTimeout": 5, "workers": 1}
    }));
    let hipache = Arc::new(Hipache::start(config));

    let clients: Vec<_> = (0..3)
        .map(|_| {
            let hipache = hipache.clone();
            std::thread::spawn(move || hipache.get("one-socket.local", "/").status)
        })
        .collect();
    let statuses: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(statuses, [200, 200, 200]);
    assert_eq!(backend.connections(), 1, "one stream, taken in turn");
}

#[test]
fn an_early_answer_to_a_large_upload_reaches_the_client() {
    let redis = RedisServer::start();
    // Reads the head only, refuses the body and closes: what a size limit does.
    let backend = RawBackend::start(|peer| {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && peer.wire.0.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        peer.write(&answer("413 Payload Too Large", "too big"));
    });
    let hipache = proxy_to(&redis, "limit.local", &backend.url());

    let stream = TcpStream::connect(hipache.addr()).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut sending = stream.try_clone().unwrap();
    let length = 8 * MIB;
    let uploader = std::thread::spawn(move || {
        let head =
            format!("POST /up HTTP/1.1\r\nHost: limit.local\r\nContent-Length: {length}\r\n\r\n");
        let _ = sending.write_all(head.as_bytes());
        let piece = vec![b'x'; 64 * 1024];
        for _ in 0..length / piece.len() {
            if sending.write_all(&piece).is_err() {
                break;
            }
        }
    });
    let mut client = Wire::over(stream);
    let refused = client.answer();
    assert_eq!(refused.line, "HTTP/1.1 413 Payload Too Large");
    assert_eq!(refused.text(), "too big");
    assert_eq!(refused.header("connection"), Some("close"));
    uploader.join().unwrap();
}
