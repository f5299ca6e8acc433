//! uring-spike: one minimal HTTP/1.1 keep-alive reverse proxy loop in two variants, `epoll`
//! (tokio, hipache's shape) and `uring` (one ring per worker, batched submissions), so that the
//! kernel crossings per request can be compared side by side. See README.md.
//!
//! Usage: uring-spike epoll|uring --listen 127.0.0.1:PORT --backend 127.0.0.1:PORT [--workers N]
//!        [--poll-first on|off] [--fixed-files on|off]   (both on by default, uring only)
//!
//! Each worker is a process with its own SO_REUSEPORT listener on the same address, as hipache's
//! workers are, and the kernel spreads the connections between them.

mod epoll;
mod framing;
mod uring;

use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::process::ExitCode;

/// Bytes buffered per side of a connection (hipache takes 16 KiB per side while busy).
pub const BUF_SIZE: usize = 16 * 1024;

#[derive(Clone, Copy)]
pub struct Config {
    pub backend: SocketAddr,
    /// uring only: receives skip their first attempt and wait for data (see uring.rs).
    pub poll_first: bool,
    /// uring only: sockets as registered files.
    pub fixed_files: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Epoll,
    Uring,
}

struct Args {
    variant: Variant,
    listen: SocketAddr,
    config: Config,
    workers: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let variant = match args.next().as_deref() {
        Some("epoll") => Variant::Epoll,
        Some("uring") => Variant::Uring,
        other => {
            return Err(format!(
                "first argument must be epoll or uring, got {other:?}"
            ))
        }
    };
    let (mut listen, mut backend, mut workers) = (None, None, 1);
    let (mut poll_first, mut fixed_files) = (true, true);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--listen" => listen = Some(value.parse().map_err(|e| bad(&e))?),
            "--backend" => backend = Some(value.parse().map_err(|e| bad(&e))?),
            "--workers" => workers = value.parse().map_err(|e| bad(&e))?,
            "--poll-first" => poll_first = on_off(&value).ok_or_else(|| bad(&"on or off"))?,
            "--fixed-files" => fixed_files = on_off(&value).ok_or_else(|| bad(&"on or off"))?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if workers == 0 {
        return Err("--workers must be at least 1".into());
    }
    Ok(Args {
        variant,
        listen: listen.ok_or("--listen is required")?,
        config: Config {
            backend: backend.ok_or("--backend is required")?,
            poll_first,
            fixed_files,
        },
        workers,
    })
}

fn on_off(value: &str) -> Option<bool> {
    match value {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

fn listener(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&address.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("uring-spike: {message}");
            return ExitCode::from(2);
        }
    };
    // Processes, as hipache's workers are: threads would share one descriptor table, which
    // makes every fdget in the kernel take an atomic reference and would tilt the comparison.
    let mut worker = 0;
    for child in 1..args.workers {
        // SAFETY: no thread has been started yet, so the child is a full copy of this process.
        match unsafe { libc::fork() } {
            -1 => {
                eprintln!("uring-spike: fork: {}", std::io::Error::last_os_error());
                return ExitCode::FAILURE;
            }
            0 => {
                // SAFETY: prctl with constant arguments; the worker ends with its parent.
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
                worker = child;
                break;
            }
            _ => {}
        }
    }
    let socket = match listener(args.listen) {
        Ok(socket) => socket,
        Err(e) => {
            eprintln!(
                "uring-spike: worker {worker}: cannot listen on {}: {e}",
                args.listen
            );
            return ExitCode::FAILURE;
        }
    };
    if worker == 0 {
        eprintln!(
            "uring-spike: listening on {} ({} workers)",
            args.listen, args.workers
        );
    }
    let result = match args.variant {
        Variant::Epoll => socket
            .set_nonblocking(true)
            .and_then(|()| epoll::run(socket, args.config)),
        Variant::Uring => uring::run(socket, args.config),
    };
    if let Err(e) = result {
        eprintln!("uring-spike: worker {worker} stopped: {e}");
    }
    ExitCode::FAILURE
}
