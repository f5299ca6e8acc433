//! The worker's side of the master's hand-off: adopt the listening sockets named in
//! `HIPACHE_LISTEN_FDS`, and tell the master on the `HIPACHE_READY_FD` pipe when this worker
//! serves and when it starts retiring (see `master::spawn`).

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};

use nix::sys::socket::{getsockname, SockaddrStorage};

use crate::master::listeners::Listener;
use crate::master::spawn::{LISTEN_FDS_ENV, READY_FD_ENV};

#[derive(Debug, thiserror::Error)]
pub enum InheritError {
    #[error("{LISTEN_FDS_ENV} is missing: workers are started by the master, not by hand")]
    Missing,
    #[error("{LISTEN_FDS_ENV} entry {0:?} is malformed")]
    Malformed(String),
    #[error("inherited descriptor {0} is not a listening socket")]
    NotASocket(RawFd),
}

/// Parses `3=http@127.0.0.1:80` and `4=https.0@[::1]:443` entries (pure).
pub fn parse(spec: &str) -> Result<Vec<(RawFd, Option<usize>, SocketAddr)>, InheritError> {
    spec.split(',')
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let malformed = || InheritError::Malformed(entry.to_owned());
            let (fd, rest) = entry.split_once('=').ok_or_else(malformed)?;
            let (scheme, address) = rest.split_once('@').ok_or_else(malformed)?;
            let https = match scheme.split_once('.') {
                None if scheme == "http" => None,
                Some(("https", index)) => Some(index.parse().map_err(|_| malformed())?),
                _ => return Err(malformed()),
            };
            Ok((
                fd.parse().map_err(|_| malformed())?,
                https,
                address.parse().map_err(|_| malformed())?,
            ))
        })
        .collect()
}

/// Adopts the listening sockets the master handed over.
pub fn listeners() -> Result<Vec<Listener>, InheritError> {
    let spec = std::env::var(LISTEN_FDS_ENV).map_err(|_| InheritError::Missing)?;
    let mut adopted = Vec::new();
    for (fd, https, address) in parse(&spec)? {
        // Checked first so that a wrong number never becomes an owned socket.
        getsockname::<SockaddrStorage>(fd).map_err(|_| InheritError::NotASocket(fd))?;
        let socket = adopt(fd);
        adopted.push(Listener {
            socket,
            address,
            https,
        });
    }
    Ok(adopted)
}

#[allow(unsafe_code)]
fn adopt(fd: RawFd) -> TcpListener {
    // SAFETY: `fd` was inherited open from the master, which named it in HIPACHE_LISTEN_FDS for
    // this process alone; nothing else in this process has taken ownership of it (it is adopted
    // once, at startup), and getsockname just confirmed it is a socket.
    unsafe { TcpListener::from_raw_fd(fd) }
}

/// One byte on the pipe: this worker accepts connections.
pub const READY: u8 = b'R';
/// One byte on the pipe: this worker stops accepting and drains; start its replacement now.
pub const RETIRING: u8 = b'D';

/// The worker's end of its pipe to the master (absent when started by hand, as in tests).
pub struct MasterLink {
    pipe: Option<std::fs::File>,
}

impl MasterLink {
    /// The pipe the master named in `HIPACHE_READY_FD`, if any.
    pub fn inherited() -> Self {
        let pipe = std::env::var(READY_FD_ENV)
            .ok()
            .and_then(|fd| fd.parse::<RawFd>().ok())
            .and_then(|fd| {
                let is_open =
                    fd >= 0 && nix::fcntl::fcntl(borrow(fd), nix::fcntl::FcntlArg::F_GETFD).is_ok();
                is_open.then(|| std::fs::File::from(own(fd)))
            });
        Self { pipe }
    }

    pub fn report_ready(&self) {
        self.send(READY);
    }

    pub fn report_retiring(&self) {
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
    // SAFETY: the master passed this pipe end for this process alone, F_GETFD confirmed it is
    // open, and it is taken into ownership exactly once, here.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_spec_round_trips() {
        let parsed = parse("3=http@127.0.0.1:80,4=https.2@[::1]:443").unwrap();
        assert_eq!(parsed[0], (3, None, "127.0.0.1:80".parse().unwrap()));
        assert_eq!(parsed[1], (4, Some(2), "[::1]:443".parse().unwrap()));
        assert!(parse("4=https@[::1]:443").is_err());
        assert!(parse("3=ftp@1.2.3.4:21").is_err());
        assert!(parse("x=http@1.2.3.4:80").is_err());
        assert!(parse("").unwrap().is_empty());
    }
}
