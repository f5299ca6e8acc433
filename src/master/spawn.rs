//! Starting a worker process: re-execute our own binary with `--worker`, hand it the listening
//! sockets as inherited descriptors and give it a pipe to report readiness on.
//!
//! What the worker is told is `crate::supervision`'s protocol.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::rc::Rc;

use nix::fcntl::OFlag;
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
    #[error("cannot start a worker process")]
    Exec(#[source] io::Error),
}

/// The master's side of the lifeline every worker watches (`supervision::LIFELINE_FD_ENV`).
///
/// A pipe rather than `PR_SET_PDEATHSIG`: the kernel clears the parent-death signal when the
/// worker drops privileges, ties it to the thread that forked rather than to the master, and
/// misses a master that died before the worker asked for it. The lifeline's write end lives in
/// the master alone (close-on-exec, and never named to a child), and the kernel closes it
/// however the master ends (SIGKILL, the OOM killer, an abort): every worker's read end then
/// sees end-of-file, even one that starts watching after the master died.
pub(crate) struct Lifeline {
    read: OwnedFd,
    _write: OwnedFd,
}

impl Lifeline {
    pub(crate) fn new() -> Result<Self, SpawnError> {
        let (read, write) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(SpawnError::Pipe)?;
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

/// What a worker is started from: this very binary (`/proc/self/exe`, never a path that may
/// hold something else by now), unless an upgrade replaced it on disk, as a package manager does
/// (the running file unlinked, a new one renamed to its path): then the new file at that path, so
/// that a reload after an upgrade runs the new version's workers without a restart and without
/// refusing a connection. A new worker that cannot start (a protocol its old master does not
/// speak) fails the reload, and the running generation keeps serving.
fn worker_program() -> PathBuf {
    const RUNNING: &str = "/proc/self/exe";
    let replaced = std::fs::read_link(RUNNING).ok().and_then(|link| {
        let path = replacement(link.to_str()?)?;
        Path::new(path).is_file().then(|| PathBuf::from(path))
    });
    replaced.unwrap_or_else(|| PathBuf::from(RUNNING))
}

/// The path an unlinked running binary had, from its `/proc/self/exe` link (pure).
fn replacement(link: &str) -> Option<&str> {
    link.strip_suffix(" (deleted)")
}

/// Starts a worker; `collector` follows its stats socket.
///
/// Everything the master opens stays close-on-exec (Rust's default), and so, in the worker,
/// does everything the master inherited beyond stdin, stdout and stderr; only the worker being
/// started gets, between its fork and its exec, the descriptors it is named in its environment:
/// its generation's listeners for its slot, its ends of the readiness pipe and of the stats
/// socket, and the lifeline. A descriptor made inheritable in the master would reach every later
/// worker too, such as the listeners of a port a reload dropped, held open by workers that never
/// accept on them.
pub(crate) fn spawn_worker<'a>(
    config: &Path,
    listeners: impl IntoIterator<Item = &'a Listener>,
    id: &str,
    lifeline: &Lifeline,
    collector: &Rc<Collector>,
) -> Result<Spawned, SpawnError> {
    let listeners: Vec<&Listener> = listeners.into_iter().collect();
    let fds = supervision::listen_fds(listeners.iter().copied());
    let (read_end, write_end): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(SpawnError::Pipe)?;
    let (stats, worker_stats) =
        std::os::unix::net::UnixStream::pair().map_err(SpawnError::Stats)?;
    let inherited: Vec<RawFd> = listeners
        .iter()
        .flat_map(|listener| {
            let quic = listener.quic.as_ref().map(AsRawFd::as_raw_fd);
            std::iter::once(listener.socket.as_raw_fd()).chain(quic)
        })
        .chain([
            write_end.as_raw_fd(),
            worker_stats.as_raw_fd(),
            lifeline.read.as_raw_fd(),
        ])
        .collect();
    // argv[0] stays the master's, so `ps` shows `hipache --worker ...`.
    let name = std::env::args_os()
        .next()
        .unwrap_or_else(|| "hipache".into());
    let mut command = Command::new(worker_program());
    command
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
        // Only the master speaks for the service (`notify`).
        .env_remove(super::notify::NOTIFY_SOCKET_ENV)
        .stdin(Stdio::null());
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec; it only makes the close_range(2)
    // and fcntl(2) system calls, which are async-signal-safe, on descriptors the master holds
    // open for the whole spawn, and it allocates nothing (`inherited` is built before the fork).
    unsafe {
        command.pre_exec(move || {
            // What the master itself inherited without close-on-exec (a shell's or a deploy
            // tool's pipe, an open file) stops here too: a worker holding a pipe open would keep
            // its reader waiting for as long as the worker lives. Kernels before 5.11 lack
            // close_range; there only the master's own descriptors are kept from the worker.
            let _ = nix::libc::syscall(
                nix::libc::SYS_close_range,
                3u32,
                u32::MAX,
                nix::libc::CLOSE_RANGE_CLOEXEC,
            );
            for &fd in &inherited {
                if nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(SpawnError::Exec)?;
    drop(write_end);
    drop(worker_stats);
    let ready = pipe::Receiver::from_owned_fd(read_end).map_err(SpawnError::Exec)?;
    let pid = child.id().unwrap_or(0);
    collector.add(pid, stats);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unlinked_binary_has_a_replacement_path() {
        assert_eq!(
            replacement("/usr/bin/hipache (deleted)"),
            Some("/usr/bin/hipache")
        );
        assert_eq!(replacement("/usr/bin/hipache"), None);
    }
}
