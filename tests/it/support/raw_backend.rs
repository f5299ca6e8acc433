//! Backends the hyper fixture cannot imitate, as raw TCP servers (`RawBackend`) that run a
//! script per connection and record what they read, and a byte-exact client (`Wire`): status
//! lines, fields and framing are asserted as they crossed the wire.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Config, Hipache, RedisServer};

/// Read and write timeout of every raw socket: a stuck peer fails the test instead of hanging it.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const MIB: usize = 1024 * 1024;

/// A request or an answer as it crossed the wire, its body's chunk framing decoded.
#[derive(Clone, Debug, Default)]
pub(crate) struct Message {
    /// The request line or the status line.
    pub(crate) line: String,
    /// Names lowercased, in arrival order.
    pub(crate) fields: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// A chunked body's trailer fields, names lowercased.
    pub(crate) trailers: Vec<(String, String)>,
    /// At a raw backend: which accepted connection carried it (0, 1, ...).
    pub(crate) connection: usize,
}

impl Message {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let mut fields = self.fields.iter();
        fields.find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub(crate) fn read_line(reader: &mut impl BufRead) -> Option<String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(n) if n > 0 => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
        _ => None,
    }
}

/// Reads a head and the body it frames; `None` if the peer closed or went quiet first.
/// `answer_to` is the request's method when reading an answer. Without a length or chunking a
/// request has no body and an answer runs to the close; HEAD, 1xx, 204 and 304 answers have none.
pub(crate) fn read_message(reader: &mut impl BufRead, answer_to: Option<&str>) -> Option<Message> {
    let mut message = read_head(reader)?;
    read_body(reader, &mut message, answer_to)?;
    Some(message)
}

/// Reads a head: its line and fields, no body.
pub(crate) fn read_head(reader: &mut impl BufRead) -> Option<Message> {
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
    Some(message)
}

/// Reads the body `message`'s head frames (see [`read_message`]).
pub(crate) fn read_body(
    reader: &mut impl BufRead,
    message: &mut Message,
    answer_to: Option<&str>,
) -> Option<()> {
    let status = message.line.split(' ').nth(1).unwrap_or_default();
    if answer_to.is_some_and(|method| {
        method == "HEAD" || status.starts_with('1') || matches!(status, "204" | "304")
    }) {
        return Some(());
    }
    let chunked = message.header("transfer-encoding") == Some("chunked");
    let length = message.header("content-length").map(str::parse);
    let mut body = Vec::new();
    if chunked {
        loop {
            let line = read_line(reader)?;
            let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                loop {
                    let line = read_line(reader)?;
                    if line.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        let field = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
                        message.trailers.push(field);
                    }
                }
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
    Some(())
}

/// Asserts an answer's status line and body text.
pub(crate) fn assert_answer(answer: &Message, line: &str, text: &str) {
    assert_eq!(answer.line, line, "{answer:?}");
    assert_eq!(answer.text(), text, "{}", answer.line);
}

/// A client connection to the proxy: raw bytes out, answers read one at a time.
pub(crate) struct Wire(pub(crate) BufReader<TcpStream>);

impl Wire {
    pub(crate) fn open(addr: SocketAddr) -> Wire {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting {addr}: {e}"));
        Wire::over(stream)
    }

    pub(crate) fn over(stream: TcpStream) -> Wire {
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Wire(BufReader::new(stream))
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        self.0.get_mut().write_all(bytes).expect("write to hipache");
    }

    /// The next answer, to a request of this method.
    pub(crate) fn answer_to(&mut self, method: &str) -> Message {
        read_message(&mut self.0, Some(method)).expect("a whole answer from hipache")
    }

    pub(crate) fn answer(&mut self) -> Message {
        self.answer_to("GET")
    }

    /// The proxy closed the connection: nothing more to read, and no timeout.
    pub(crate) fn assert_closed(&mut self) {
        let mut rest = Vec::new();
        let read = self.0.read_to_end(&mut rest);
        read.expect("hipache to close the connection");
        assert!(rest.is_empty(), "after the answer: {rest:?}");
    }
}

/// One backend connection, handed to the test's script.
pub(crate) struct Peer {
    pub(crate) wire: Wire,
    pub(crate) connection: usize,
    pub(crate) shared: Arc<Shared>,
}

impl Peer {
    /// Reads and records the next request; `None` once the proxy closed or went quiet.
    pub(crate) fn request(&mut self) -> Option<Message> {
        let mut request = read_message(&mut self.wire.0, None)?;
        request.connection = self.connection;
        self.shared.seen.lock().unwrap().push(request.clone());
        Some(request)
    }

    /// Like [`Peer::request`], but writes `interim` between the head and the body when the
    /// head says `Expect: 100-continue`, as a server that wants the body does.
    pub(crate) fn request_meeting_expect(&mut self, interim: &[u8]) -> Option<Message> {
        let mut request = read_head(&mut self.wire.0)?;
        if request.header("expect") == Some("100-continue") {
            self.write(interim);
        }
        read_body(&mut self.wire.0, &mut request, None)?;
        request.connection = self.connection;
        self.shared.seen.lock().unwrap().push(request.clone());
        Some(request)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        // The proxy may have gone: what it did with the answer is what the test checks.
        let _ = self.wire.0.get_mut().write_all(bytes);
    }

    /// Answers each request with `answer(request)` until one says `Connection: close`.
    pub(crate) fn answer_each(&mut self, answer: impl Fn(&Message) -> Vec<u8>) {
        while let Some(request) = self.request() {
            self.write(&answer(&request));
            if request.header("connection") == Some("close") {
                return;
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct Shared {
    seen: Mutex<Vec<Message>>,
    accepted: AtomicUsize,
    stop: AtomicBool,
}

/// A backend on `127.0.0.1:0` that runs `script` on each connection it accepts (one thread
/// each) and records the requests the script reads. A connection closes when its script returns.
pub(crate) struct RawBackend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl RawBackend {
    pub(crate) fn start(script: impl Fn(&mut Peer) + Send + Sync + 'static) -> RawBackend {
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

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn requests(&self) -> Vec<Message> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.line).collect()
    }

    pub(crate) fn connections(&self) -> usize {
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
pub(crate) fn answer(status: &str, body: &str) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), body.as_bytes()].concat()
}

pub(crate) fn ok(body: &str) -> Vec<u8> {
    answer("200 OK", body)
}

/// `len` bytes without a short period, so a reordered or dropped piece changes the checksum.
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    let byte = |i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8;
    (0..len as u32).map(byte).collect()
}

/// A backend that answers a request with `103 Early Hints` (a `Link` field and a hop-by-hop
/// `Connection` one), then with `200` and `final` once the test sends on the returned channel that
/// its client has read the 103: a proxy that held the 103 back would leave both sides waiting.
pub(crate) fn early_hints_backend() -> (RawBackend, mpsc::Sender<()>) {
    let (seen_hints, hints_seen) = mpsc::channel::<()>();
    let hints_seen = Mutex::new(hints_seen);
    let backend = RawBackend::start(move |peer| {
        if peer.request().is_none() {
            return;
        }
        peer.write(
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\
              Connection: keep-alive\r\n\r\n",
        );
        if hints_seen.lock().unwrap().recv_timeout(IO_TIMEOUT).is_ok() {
            peer.write(&ok("final"));
        }
    });
    (backend, seen_hints)
}

pub(crate) fn proxy_to(redis: &RedisServer, host: &str, url: &str) -> Hipache {
    redis.frontend(host, host, &[url]);
    Hipache::start(Config::redis(redis))
}

/// [`proxy_to`] in the shape production runs: a root master, workers as `nobody`.
pub(crate) fn unprivileged_proxy_to(redis: &RedisServer, host: &str, url: &str) -> Hipache {
    redis.frontend(host, host, &[url]);
    let hipache =
        Hipache::start(Config::redis(redis).with(serde_json::json!({ "user": "nobody" })));
    let workers = hipache.worker_pids();
    assert!(!workers.is_empty(), "hipache has workers");
    for pid in workers {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"));
        let real = uid.and_then(|ids| ids.split_whitespace().next());
        assert_ne!(real, Some("0"), "worker {pid} runs as root");
    }
    hipache
}
