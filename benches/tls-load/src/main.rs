//! tls-load: full TLS handshakes per second against one loopback HTTPS port, for the https-close
//! rows of benches/load/run.sh. CLIENTS connection loops on one thread, each one connecting,
//! handshaking (never resuming), sending one `GET /` with `Connection: close` and reading the
//! answer to the end, over and over: WARMUP_SECONDS uncounted, then SECONDS counted.
//!
//! Usage: tls-load PORT CLIENTS WARMUP_SECONDS SECONDS HOST [--tls12]
//!
//! Prints report.lua's line, `RESULT connections duration_us p50_us p99_us errors non_200` (the
//! latencies are of a whole connection: connect, handshake, request, answer), then
//! `CLIENT provider P version V cpu_us_per_connection N`, its own CPU over the counted seconds.

mod conn;
mod tls;

#[cfg(not(any(feature = "ring", feature = "aws-lc")))]
compile_error!(
    "build with the `ring` (default) or `aws-lc` feature: the client needs a crypto provider"
);

use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use tokio::time::{timeout_at, Instant};

use conn::{Outcome, Target};
use tls::Version;

/// A connection still going after this is counted as failed.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

struct Args {
    port: u16,
    clients: usize,
    warmup: Duration,
    seconds: Duration,
    host: String,
    version: Version,
}

fn parse_args() -> Result<Args, String> {
    let mut version = Version::Tls13;
    let mut positional = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--tls12" => version = Version::Tls12,
            "--tls13" => version = Version::Tls13,
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => positional.push(arg),
        }
    }
    let [port, clients, warmup, seconds, host] = positional.as_slice() else {
        return Err("expected PORT CLIENTS WARMUP_SECONDS SECONDS HOST [--tls12]".into());
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
    })
}

/// What one connection loop counted in the measured seconds.
#[derive(Default)]
struct Tally {
    /// Microseconds per connection that got its answer (any status).
    latencies_us: Vec<u32>,
    errors: u64,
    not_200: u64,
    /// The first error and the first unexpected status line, for the message on stderr.
    first_problem: Option<String>,
}

/// Connections back to back until `end`; those that finish in [`counted_from`, `end`] are counted.
async fn client_loop(target: Rc<Target>, counted_from: Instant, end: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let start = Instant::now();
        if start >= end {
            return tally;
        }
        // Cut at `end`: a connection in flight then is neither counted nor waited for.
        let deadline = end.min(start + CONNECTION_TIMEOUT);
        let result = timeout_at(deadline, target.once(&mut buf)).await;
        let done = Instant::now();
        if done >= end {
            return tally;
        }
        let counted = done >= counted_from;
        let us = u32::try_from(done.duration_since(start).as_micros()).unwrap_or(u32::MAX);
        let failed = match result {
            Ok(Ok(Outcome::Ok)) => {
                if counted {
                    tally.latencies_us.push(us);
                }
                false
            }
            Ok(Ok(Outcome::NotOk(line))) => {
                if counted {
                    tally.latencies_us.push(us);
                    tally.not_200 += 1;
                    tally
                        .first_problem
                        .get_or_insert(format!("answer: {line:?}"));
                }
                false
            }
            Ok(Err(e)) => {
                if counted {
                    tally.errors += 1;
                    tally.first_problem.get_or_insert(format!("error: {e}"));
                }
                true
            }
            Err(_) => {
                if counted {
                    tally.errors += 1;
                    tally.first_problem.get_or_insert("error: timed out".into());
                }
                true
            }
        };
        if failed {
            // No hot loop of instant failures against a port that refuses.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
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

async fn run(args: Args) -> Result<(), String> {
    let config = tls::config(args.version).map_err(|e| format!("TLS configuration: {e}"))?;
    let target = Rc::new(Target::new(args.port, &args.host, config)?);
    // One connection first: a wrong port or route fails here with its cause, not as a count.
    let mut buf = vec![0u8; 16 * 1024];
    let probe = timeout_at(Instant::now() + CONNECTION_TIMEOUT, target.once(&mut buf)).await;
    match probe {
        Ok(Ok(Outcome::Ok)) => {}
        Ok(Ok(Outcome::NotOk(line))) => {
            return Err(format!(
                "GET / on 127.0.0.1:{} answered {line:?}, not 200",
                args.port
            ))
        }
        Ok(Err(e)) => return Err(format!("GET / over TLS on 127.0.0.1:{}: {e}", args.port)),
        Err(_) => {
            return Err(format!(
                "GET / over TLS on 127.0.0.1:{} timed out",
                args.port
            ))
        }
    }

    let counted_from = Instant::now() + args.warmup;
    let end = counted_from + args.seconds;
    let loops: Vec<_> = (0..args.clients)
        .map(|_| tokio::task::spawn_local(client_loop(target.clone(), counted_from, end)))
        .collect();
    tokio::time::sleep_until(counted_from).await;
    let cpu_before = cpu_us();
    let mut total = Tally::default();
    for handle in loops {
        let tally = handle
            .await
            .map_err(|e| format!("a client loop failed: {e}"))?;
        total.latencies_us.extend(tally.latencies_us);
        total.errors += tally.errors;
        total.not_200 += tally.not_200;
        if total.first_problem.is_none() {
            total.first_problem = tally.first_problem;
        }
    }
    let cpu = cpu_us().saturating_sub(cpu_before);
    let duration_us = end.duration_since(counted_from).as_micros();

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
        "CLIENT provider {} version {version} cpu_us_per_connection {:.1}",
        tls::PROVIDER,
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
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tls-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tls-load: {e}");
            ExitCode::FAILURE
        }
    }
}
