//! The worker's side of the master's hand-off: adopt the listening sockets named in
//! `HIPACHE_LISTEN_FDS` and the stats socket named in `HIPACHE_STATS_FD`, and tell the master
//! on the `HIPACHE_READY_FD` pipe when this worker serves and when it starts retiring, and
//! watch the master's lifeline (`HIPACHE_LIFELINE_FD`) for the master's end
//! (`crate::supervision` has the protocol).

use std::io::Write as _;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};

use nix::sys::socket::{getsockname, SockaddrStorage};
use tokio::io::AsyncReadExt as _;
use tokio::net::unix::pipe;

use crate::supervision::{
    self, Listener, MalformedEntry, LIFELINE_FD_ENV, LISTEN_FDS_ENV, READY, READY_FD_ENV, RETIRING,
    STATS_FD_ENV,
};

/// Why the master's sockets could not be adopted.
#[derive(Debug, thiserror::Error)]
pub enum InheritError {
    /// Not started by a master.
    #[error("{LISTEN_FDS_ENV} is missing: workers are started by the master, not by hand")]
    Missing,
    /// An entry of the hand-over cannot be read.
    #[error("{LISTEN_FDS_ENV} entry {0:?} is malformed")]
    Malformed(String),
    /// A named descriptor is no socket.
    #[error("inherited descriptor {0} is not a listening socket")]
    NotASocket(RawFd),
}

/// Adopts the listening sockets the master handed over.
pub fn listeners() -> Result<Vec<Listener>, InheritError> {
    let spec = std::env::var(LISTEN_FDS_ENV).map_err(|_| InheritError::Missing)?;
    let mut adopted = Vec::new();
    let entries = supervision::parse_listen_fds(&spec)
        .map_err(|MalformedEntry(entry)| InheritError::Malformed(entry))?;
    for entry in entries {
        // Checked first so that a wrong number never becomes an owned socket.
        for fd in std::iter::once(entry.fd).chain(entry.quic) {
            getsockname::<SockaddrStorage>(fd).map_err(|_| InheritError::NotASocket(fd))?;
        }
        adopted.push(Listener {
            socket: TcpListener::from(own(entry.fd)),
            address: entry.address,
            https: entry.https,
            quic: entry.quic.map(|fd| UdpSocket::from(own(fd))),
        });
    }
    Ok(adopted)
}

/// The worker's end of its pipe to the master and of the master's lifeline (both absent when
/// started by hand, as in tests).
pub struct MasterLink {
    pipe: Option<std::fs::File>,
    lifeline: Option<OwnedFd>,
}

/// The open descriptor named in `env`, taken into ownership (once: the variable is read at
/// startup only).
fn inherited_fd(env: &str) -> Option<OwnedFd> {
    std::env::var(env)
        .ok()
        .and_then(|fd| fd.parse::<RawFd>().ok())
        .and_then(|fd| {
            let is_open =
                fd >= 0 && nix::fcntl::fcntl(borrow(fd), nix::fcntl::FcntlArg::F_GETFD).is_ok();
            is_open.then(|| own(fd))
        })
}

/// The worker's end of its stats socket (`None` when started by hand).
pub fn stats_socket() -> Option<std::os::unix::net::UnixStream> {
    let fd = inherited_fd(STATS_FD_ENV)?;
    // Checked so that a wrong number never becomes a socket we write frames to.
    getsockname::<SockaddrStorage>(std::os::fd::AsRawFd::as_raw_fd(&fd)).ok()?;
    Some(std::os::unix::net::UnixStream::from(fd))
}

impl MasterLink {
    /// The pipe the master named in `HIPACHE_READY_FD`, if any.
    pub fn inherited() -> Self {
        let pipe = inherited_fd(READY_FD_ENV).map(std::fs::File::from);
        let lifeline = inherited_fd(LIFELINE_FD_ENV);
        Self { pipe, lifeline }
    }

    /// Resolves once the master is gone (its lifeline reads end-of-file); never without a
    /// lifeline, or when it cannot be watched (logged).
    pub(crate) async fn master_gone(&self) {
        let watched = self
            .lifeline
            .as_ref()
            .map(|fd| fd.try_clone().and_then(pipe::Receiver::from_owned_fd));
        let mut lifeline = match watched {
            Some(Ok(lifeline)) => lifeline,
            Some(Err(error)) => {
                tracing::error!(%error, "cannot watch the master's lifeline");
                return std::future::pending().await;
            }
            None => return std::future::pending().await,
        };
        // Nothing is ever written: the only outcome is end-of-file (or an error, which says
        // nothing about the master).
        let mut byte = [0u8; 1];
        loop {
            match lifeline.read(&mut byte).await {
                Ok(0) => return,
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(%error, "cannot watch the master's lifeline");
                    return std::future::pending().await;
                }
            }
        }
    }

    pub(crate) fn report_ready(&self) {
        self.send(READY);
    }

    pub(crate) fn report_retiring(&self) {
        self.send(RETIRING);
    }

    fn send(&self, byte: u8) {
        if let Some(mut pipe) = self.pipe.as_ref() {
            if let Err(error) = pipe.write_all(&[byte]) {
                tracing::warn!(%error, "cannot report to the master");
            }
        }
    }
}

#[allow(unsafe_code)]
fn borrow(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: used only for the F_GETFD probe right below, while `fd` (inherited from the master)
    // is still open and unowned in this process.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

#[allow(unsafe_code)]
fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: the master passed this descriptor (a pipe end, or a socket named in
    // HIPACHE_LISTEN_FDS) for this process alone; F_GETFD or getsockname confirmed it is open,
    // and each is taken into ownership exactly once, at startup.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
