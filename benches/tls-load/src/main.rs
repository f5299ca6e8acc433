//! tls-load: full TLS handshakes per second against one loopback HTTPS port, for the https-close
//! rows of benches/load/run.sh. CLIENTS connection loops on one thread (or N), each one connecting,
//! handshaking (never resuming), sending one `GET /` with `Connection: close` and reading the
//! answer to the end, over and over: WARMUP_SECONDS uncounted, then SECONDS counted.
//!
//! Usage: tls-load PORT CLIENTS WARMUP_SECONDS SECONDS HOST [--tls12] [--threads=N]
//!                 [--sni=PATTERN --names=N [--check-name]]
//!
//! `--sni`: each connection sends a server name, PATTERN with `{}` replaced by 0 to N-1, taken
//! in turn, and asks for `/` with that `Host` (HOST is then unused); `--check-name` counts a
//! connection whose certificate does not carry its name as an error (certificates picked by
//! SNI, benches/certs).
//!
//! Prints report.lua's line, `RESULT connections duration_us p50_us p99_us errors non_200` (the
//! latencies are of a whole connection: connect, handshake, request, answer), then
//! `CLIENT provider P version V signature S cpu_us_per_connection N`: the server's handshake
//! signature scheme (which key type answered) and the client's own CPU over the counted seconds.

mod conn;
mod load;
mod tls;

#[cfg(not(any(feature = "ring", feature = "aws-lc")))]
compile_error!(
    "build with the `ring` (default) or `aws-lc` feature: the client needs a crypto provider"
);

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::timeout_at;

use conn::{Outcome, Target};
use tls::Version;

struct Args {
    port: u16,
    clients: usize,
    warmup: Duration,
    seconds: Duration,
    host: String,
    version: Version,
    threads: usize,
    sni: Vec<String>,
    check_name: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut version = Version::Tls13;
    let mut threads = 1;
    let mut pattern = None;
    let mut names = None;
    let mut check_name = false;
    let mut positional = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--tls12" => version = Version::Tls12,
            "--tls13" => version = Version::Tls13,
            s if s.starts_with("--threads=") => {
                threads = s["--threads=".len()..]
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("{s}: a whole number above 0 expected"))?;
            }
            s if s.starts_with("--sni=") => {
                let p = &s["--sni=".len()..];
                if !p.contains("{}") {
                    return Err(format!(
                        "{s}: the pattern needs a {{}} for the name's number"
                    ));
                }
                pattern = Some(p.to_owned());
            }
            s if s.starts_with("--names=") => {
                names = Some(
                    s["--names=".len()..]
                        .parse::<usize>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("{s}: a whole number above 0 expected"))?,
                );
            }
            "--check-name" => check_name = true,
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => positional.push(arg),
        }
    }
    let sni = match (pattern, names) {
        (Some(pattern), Some(n)) => (0..n)
            .map(|i| pattern.replace("{}", &i.to_string()))
            .collect(),
        (None, None) if !check_name => Vec::new(),
        _ => return Err("--sni and --names go together (and --check-name needs them)".into()),
    };
    let [port, clients, warmup, seconds, host] = positional.as_slice() else {
        return Err(
            "expected PORT CLIENTS WARMUP_SECONDS SECONDS HOST [--tls12] [--threads=N]".into(),
        );
    };
    let number = |what: &str, v: &str| -> Result<u64, String> {
        v.parse()
            .map_err(|_| format!("{what} must be a whole number, got {v:?}"))
    };
    let port = u16::try_from(number("PORT", port)?).map_err(|_| "PORT is above 65535")?;
    let clients = number("CLIENTS", clients)?;
    let seconds = number("SECONDS", seconds)?;
    if port == 0 || clients == 0 || seconds == 0 {
        return Err("PORT, CLIENTS and SECONDS must be above 0".into());
    }
    Ok(Args {
        port,
        clients: clients as usize,
        warmup: Duration::from_secs(number("WARMUP_SECONDS", warmup)?),
        seconds: Duration::from_secs(seconds),
        host: host.clone(),
        version,
        threads,
        sni,
        check_name,
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

fn percentile(sorted: &[u32], p: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) * p / 100).min(sorted.len() - 1)]
}

/// One connection before the load: a wrong port, route or certificate fails here with its
/// cause instead of as a count.
fn probe(target: &Target) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let mut buf = vec![0u8; 16 * 1024];
    let port = target.address.port();
    runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + load::CONNECTION_TIMEOUT;
        match timeout_at(deadline, target.once(&mut buf)).await {
            Ok(Ok(Outcome::Ok)) => Ok(()),
            Ok(Ok(Outcome::NotOk(line))) => Err(format!(
                "GET / over TLS on 127.0.0.1:{port} answered {line:?}, not 200"
            )),
            Ok(Err(e)) => Err(format!("GET / over TLS on 127.0.0.1:{port}: {e}")),
            Err(_) => Err(format!("GET / over TLS on 127.0.0.1:{port} timed out")),
        }
    })
}

fn run(args: Args) -> Result<(), String> {
    let (config, seen) = tls::config(args.version, args.check_name)
        .map_err(|e| format!("TLS configuration: {e}"))?;
    let sni_names = args.sni.len();
    let target = Arc::new(Target::new(args.port, &args.host, args.sni, config));
    if target.name_count() < sni_names.max(1) {
        return Err("--sni: the pattern makes names that are not valid DNS names".into());
    }
    probe(&target)?;

    let from = Instant::now() + args.warmup;
    let end = from + args.seconds;
    let threads = args.threads.min(args.clients);
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            // CLIENTS spread evenly: the first CLIENTS % THREADS threads take one more.
            let loops = args.clients / threads + usize::from(i < args.clients % threads);
            let target = target.clone();
            std::thread::spawn(move || load::thread(target, loops, from, end))
        })
        .collect();
    // The main thread runs no tasks: blocking it until the counted window opens stalls nothing.
    #[allow(clippy::disallowed_methods)]
    std::thread::sleep(from.saturating_duration_since(Instant::now()));
    let cpu_before = cpu_us();
    let mut tallies = Vec::new();
    for worker in workers {
        tallies.push(
            worker
                .join()
                .map_err(|_| "a client thread panicked".to_owned())?,
        );
    }
    let cpu = cpu_us().saturating_sub(cpu_before);
    let total = load::merge(tallies);
    let duration_us = end.duration_since(from).as_micros();

    let mut latencies = total.latencies_us;
    latencies.sort_unstable();
    let connections = latencies.len() as u64;
    if let Some(problem) = &total.first_problem {
        eprintln!(
            "tls-load: {} errors, {} answers not 200; first: {problem}",
            total.errors, total.not_200
        );
    }
    println!(
        "RESULT {connections} {duration_us} {} {} {} {}",
        percentile(&latencies, 50),
        percentile(&latencies, 99),
        total.errors,
        total.not_200
    );
    let version = match args.version {
        Version::Tls12 => "1.2",
        Version::Tls13 => "1.3",
    };
    println!(
        "CLIENT provider {} version {version} signature {} cpu_us_per_connection {:.1}",
        tls::PROVIDER,
        seen.get().map_or("none".into(), |s| format!("{s:?}")),
        if connections > 0 {
            cpu as f64 / connections as f64
        } else {
            0.0
        }
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("tls-load: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tls-load: {e}");
            ExitCode::FAILURE
        }
    }
}
