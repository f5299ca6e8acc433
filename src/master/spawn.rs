//! Starting a worker process: re-execute our own binary with `--worker`, hand it the listening
//! sockets as inherited descriptors and give it a pipe to report readiness on.
//!
//! What the worker is told is `crate::supervision`'s protocol.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use std::rc::Rc;

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use tokio::io::AsyncReadExt as _;
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};

use crate::admin::collect::Collector;
use crate::supervision::{
    self, Listener, LIFELINE_FD_ENV, LISTEN_FDS_ENV, READY_FD_ENV, STATS_FD_ENV, WORKER_ID_ENV,
};

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot create the readiness pipe")]
    Pipe(#[source] nix::Error),
    #[error("cannot create the stats socket")]
    Stats(#[source] io::Error),
    #[error("cannot make descriptor {0} inheritable")]
    Inherit(i32, #[source] nix::Error),
    #[error("cannot start a worker process")]
    Exec(#[source] io::Error),
}

/// The master's side of the lifeline every worker watches (`supervision::LIFELINE_FD_ENV`).
///
/// A pipe rather than `PR_SET_PDEATHSIG`: the kernel clears the parent-death signal when the
/// worker drops privileges, ties it to the thread that forked rather than to the master, and
/// misses a master that died before the worker asked for it. The lifeline's write end lives in
/// the master alone (close-on-exec, so no child gets it), and the kernel closes it however the
/// master ends (SIGKILL, the OOM killer, an abort): every worker's read end then sees
/// end-of-file, even one that starts watching after the master died.
pub(crate) struct Lifeline {
    read: OwnedFd,
    _write: OwnedFd,
}

impl Lifeline {
    pub(crate) fn new() -> Result<Self, SpawnError> {
        let (read, write) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(SpawnError::Pipe)?;
        make_inheritable(&read)?;
        Ok(Self {
            read,
            _write: write,
        })
    }
}

/// A started worker and the end of the pipe it reports readiness on.
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) ready: pipe::Receiver,
}

/// Lets children inherit `fd` (Rust opens everything close-on-exec).
pub(crate) fn make_inheritable(fd: impl AsFd) -> Result<(), SpawnError> {
    let raw = fd.as_fd().as_raw_fd();
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))
        .map(drop)
        .map_err(|e| SpawnError::Inherit(raw, e))
}

/// Starts a worker; `collector` follows its stats socket (metrics or the admin page are on).
pub(crate) fn spawn_worker<'a>(
    config: &Path,
    listeners: impl IntoIterator<Item = &'a Listener>,
    id: &str,
    lifeline: &Lifeline,
    collector: Option<&Rc<Collector>>,
) -> Result<Spawned, SpawnError> {
    let fds = supervision::listen_fds(listeners);
    let (read_end, write_end): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(SpawnError::Pipe)?;
    // Only this child may inherit the write end: it is made inheritable here, and closed in the
    // master right after the spawn, before any other child is started.
    make_inheritable(&write_end)?;
    // Close-on-exec like the pipe; the worker's end is made inheritable and closed here alike.
    let (stats, worker_stats) =
        std::os::unix::net::UnixStream::pair().map_err(SpawnError::Stats)?;
    make_inheritable(&worker_stats)?;
    // /proc/self/exe, not argv[0]: a binary replaced on disk by an upgrade still starts itself.
    // argv[0] stays the master's, so `ps` shows `hipache --worker ...`.
    let name = std::env::args_os()
        .next()
        .unwrap_or_else(|| "hipache".into());
    let child = Command::new("/proc/self/exe")
        .arg0(name)
        .arg("--worker")
        .arg("--config")
        .arg(config)
        .env(LISTEN_FDS_ENV, fds)
        .env(READY_FD_ENV, write_end.as_raw_fd().to_string())
        .env(STATS_FD_ENV, worker_stats.as_raw_fd().to_string())
        .env(LIFELINE_FD_ENV, lifeline.read.as_raw_fd().to_string())
        .env(WORKER_ID_ENV, id)
        .env(supervision::NODE_SECRET_ENV, supervision::node_secret())
        .stdin(Stdio::null())
        .spawn()
        .map_err(SpawnError::Exec)?;
    drop(write_end);
    drop(worker_stats);
    let ready = pipe::Receiver::from_owned_fd(read_end).map_err(SpawnError::Exec)?;
    let pid = child.id().unwrap_or(0);
    if let Some(collector) = collector {
        collector.add(pid, stats);
    }
    Ok(Spawned { child, pid, ready })
}

/// The next byte a worker reports (`supervision::READY`, `RETIRING`); `None` once it exited.
pub(crate) async fn next_report(pipe: &mut pipe::Receiver) -> Option<u8> {
    let mut byte = [0u8; 1];
    match pipe.read(&mut byte).await {
        Ok(1) => Some(byte[0]),
        _ => None,
    }
}
