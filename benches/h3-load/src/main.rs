//! h3-load: HTTP/3 requests per second against one loopback QUIC port, the HTTP/3 rows of
//! benches/h3/run.sh. CONNECTIONS QUIC connections (spread over THREADS threads, each its own
//! current-thread runtime and UDP socket), each carrying STREAMS request loops at once: a
//! `GET /` with `:authority` HOST, the answer read to its end, again. WARMUP_SECONDS uncounted,
//! then SECONDS counted, as h2load's `-c CONNECTIONS -m STREAMS` does for HTTP/2.
//!
//! Usage: h3-load PORT CONNECTIONS STREAMS WARMUP_SECONDS SECONDS HOST [--threads=N] [--ca=PEM]
//!
//! Prints `RESULT requests duration_us p50_us p99_us errors non_200` (latencies of one
//! request, stream opened to answer read) and `CLIENT cpu_us_per_request N`. Without `--ca`
//! the server's certificate is not checked (a loopback benchmark against a throw-away one).

mod tls;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Buf;

struct Args {
    port: u16,
    connections: usize,
    streams: usize,
    warmup: Duration,
    seconds: Duration,
    host: String,
    threads: usize,
    ca: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut threads = 1;
    let mut ca = None;
    let mut positional = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            s if s.starts_with("--threads=") => {
                threads = s["--threads=".len()..]
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("{s}: a whole number above 0 expected"))?;
            }
            s if s.starts_with("--ca=") => ca = Some(s["--ca=".len()..].to_owned()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => positional.push(arg),
        }
    }
    let [port, connections, streams, warmup, seconds, host] = positional.as_slice() else {
        return Err("expected PORT CONNECTIONS STREAMS WARMUP_SECONDS SECONDS HOST [--threads=N] [--ca=PEM]".into());
    };
    let number = |what: &str, v: &str| -> Result<u64, String> {
        v.parse()
            .map_err(|_| format!("{what} must be a whole number, got {v:?}"))
    };
    let port = u16::try_from(number("PORT", port)?).map_err(|_| "PORT is above 65535")?;
    let connections = number("CONNECTIONS", connections)? as usize;
    let streams = number("STREAMS", streams)? as usize;
    let seconds = number("SECONDS", seconds)?;
    if port == 0 || connections == 0 || streams == 0 || seconds == 0 {
        return Err("PORT, CONNECTIONS, STREAMS and SECONDS must be above 0".into());
    }
    Ok(Args {
        port,
        connections,
        streams,
        warmup: Duration::from_secs(number("WARMUP_SECONDS", warmup)?),
        seconds: Duration::from_secs(seconds),
        host: host.clone(),
        threads: threads.min(connections),
        ca,
    })
}

/// User + system CPU of this process so far, in microseconds.
fn cpu_us() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given, which points to one.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return 0;
        }
        usage.assume_init()
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// What the loops of one thread counted in the measured seconds.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    not_200: u64,
    first_problem: Option<String>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        self.not_200 += other.not_200;
        if self.first_problem.is_none() {
            self.first_problem = other.first_problem;
        }
    }

    fn problem(&mut self, text: String) {
        self.errors += 1;
        self.first_problem.get_or_insert(text);
    }
}

type Sender = h3::client::SendRequest<h3_quinn::OpenStreams, bytes::Bytes>;

/// One request on `sender`: `Ok(true)` for a 200 read to its end.
async fn request(sender: &mut Sender, uri: &http::Uri) -> Result<bool, String> {
    let req = http::Request::get(uri.clone())
        .body(())
        .map_err(|e| e.to_string())?;
    let mut stream = sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    stream.finish().await.map_err(|e| format!("finish: {e}"))?;
    let answer = stream
        .recv_response()
        .await
        .map_err(|e| format!("answer: {e}"))?;
    while let Some(mut chunk) = stream.recv_data().await.map_err(|e| format!("body: {e}"))? {
        chunk.advance(chunk.remaining());
    }
    Ok(answer.status() == http::StatusCode::OK)
}

async fn stream_loop(
    mut sender: Sender,
    uri: Arc<http::Uri>,
    from: Instant,
    end: Instant,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        let start = Instant::now();
        if start >= end {
            return tally;
        }
        let result =
            tokio::time::timeout(Duration::from_secs(10), request(&mut sender, &uri)).await;
        let done = Instant::now();
        if done >= end {
            return tally;
        }
        if done < from {
            continue;
        }
        let us = u32::try_from(done.duration_since(start).as_micros()).unwrap_or(u32::MAX);
        match result {
            Ok(Ok(true)) => tally.latencies_us.push(us),
            Ok(Ok(false)) => {
                tally.latencies_us.push(us);
                tally.not_200 += 1;
                tally
                    .first_problem
                    .get_or_insert("an answer not 200".into());
            }
            Ok(Err(e)) => {
                tally.problem(e);
                return tally; // the connection is likely gone: stop this loop
            }
            Err(_) => tally.problem("timed out".into()),
        }
    }
}

/// The connections of one thread, each with `streams` loops.
fn thread(
    args: Arc<Args>,
    client: quinn::ClientConfig,
    connections: usize,
    from: Instant,
    end: Instant,
) -> Tally {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let mut tally = Tally::default();
            tally.problem(format!("cannot start a runtime: {e}"));
            return tally;
        }
    };
    runtime.block_on(async move {
        let mut total = Tally::default();
        let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        let mut endpoint = match quinn::Endpoint::client(local) {
            Ok(e) => e,
            Err(e) => {
                total.problem(format!("UDP socket: {e}"));
                return total;
            }
        };
        endpoint.set_default_client_config(client);
        let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), args.port);
        let uri: Arc<http::Uri> = match format!("https://{}/", args.host).parse() {
            Ok(uri) => Arc::new(uri),
            Err(e) => {
                total.problem(format!("HOST: {e}"));
                return total;
            }
        };
        let mut loops = Vec::new();
        let mut drivers = Vec::new();
        for _ in 0..connections {
            let connecting = match endpoint.connect(server, &args.host) {
                Ok(c) => c,
                Err(e) => {
                    total.problem(format!("connect: {e}"));
                    continue;
                }
            };
            let conn = match connecting.await {
                Ok(c) => c,
                Err(e) => {
                    total.problem(format!("QUIC handshake: {e}"));
                    continue;
                }
            };
            let (mut driver, sender) = match h3::client::new(h3_quinn::Connection::new(conn)).await
            {
                Ok(pair) => pair,
                Err(e) => {
                    total.problem(format!("HTTP/3 set-up: {e}"));
                    continue;
                }
            };
            drivers.push(tokio::spawn(async move {
                std::future::poll_fn(|cx| driver.poll_close(cx)).await
            }));
            for _ in 0..args.streams {
                loops.push(tokio::spawn(stream_loop(
                    sender.clone(),
                    uri.clone(),
                    from,
                    end,
                )));
            }
        }
        for handle in loops {
            match handle.await {
                Ok(tally) => total.add(tally),
                Err(e) => total.problem(format!("a request loop failed: {e}")),
            }
        }
        for driver in drivers {
            driver.abort();
        }
        endpoint.close(0u32.into(), b"done");
        total
    })
}

fn percentile(sorted: &[u32], p: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) * p / 100).min(sorted.len() - 1)]
}

fn run(args: Args) -> Result<(), String> {
    let tls = tls::config(args.ca.as_deref())?;
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
    let client = quinn::ClientConfig::new(Arc::new(quic));
    let args = Arc::new(args);
    // The connections are made before the clock starts; give them a second.
    let from = Instant::now() + Duration::from_secs(1) + args.warmup;
    let end = from + args.seconds;
    let workers: Vec<_> = (0..args.threads)
        .map(|i| {
            let share =
                args.connections / args.threads + usize::from(i < args.connections % args.threads);
            let (args, client) = (args.clone(), client.clone());
            std::thread::spawn(move || thread(args, client, share, from, end))
        })
        .collect();
    // The main thread runs no tasks: blocking it until the counted window opens stalls nothing.
    #[allow(clippy::disallowed_methods)]
    std::thread::sleep(from.saturating_duration_since(Instant::now()));
    let cpu_before = cpu_us();
    let mut total = Tally::default();
    for worker in workers {
        total.add(
            worker
                .join()
                .map_err(|_| "a client thread panicked".to_owned())?,
        );
    }
    let cpu = cpu_us().saturating_sub(cpu_before);
    let mut latencies = total.latencies_us;
    latencies.sort_unstable();
    let requests = latencies.len() as u64;
    if let Some(problem) = &total.first_problem {
        eprintln!(
            "h3-load: {} errors, {} answers not 200; first: {problem}",
            total.errors, total.not_200
        );
    }
    println!(
        "RESULT {requests} {} {} {} {} {}",
        end.duration_since(from).as_micros(),
        percentile(&latencies, 50),
        percentile(&latencies, 99),
        total.errors,
        total.not_200
    );
    println!(
        "CLIENT cpu_us_per_request {:.1}",
        if requests > 0 {
            cpu as f64 / requests as f64
        } else {
            0.0
        }
    );
    if requests == 0 {
        return Err("no request was answered".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("h3-load: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("h3-load: {e}");
            ExitCode::FAILURE
        }
    }
}
