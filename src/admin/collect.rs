//! The master's collection of worker snapshots: one stats socket per worker (`supervision`
//! has the frame format), the latest snapshot each sent, and the sum of those of workers that
//! exited, so that totals only grow across crashes, retirements and reloads.
//!
//! The same sockets carry the hand-over that keeps a new worker from starting cold
//! ([`Collector::hand_over`]): the master asks a warm worker for the hosts it has cached and
//! passes them to the new one, which looks them up in the background while it serves.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::watch;

use crate::metrics::names::RESTART_REASONS;
use crate::metrics::Snapshot;
use crate::supervision::{
    self, FRAME_LENGTH_BYTES, HOSTS_ASK, MAX_FRAME_BYTES, SNAPSHOT_ASK, WARM,
};

/// How long a worker has to answer an ask; past it, its previous snapshot is used. A worker
/// answers between two requests, in microseconds; the margin is for a loaded machine.
pub(crate) const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// Every worker's latest snapshot.
#[derive(Default)]
pub(crate) struct Collector {
    workers: RefCell<HashMap<u32, Worker>>,
    /// The last snapshots of workers that exited, gauges left out.
    exited: RefCell<Snapshot>,
    /// Workers replaced after exiting unasked, indexed by [`Restart`].
    restarts: Cell<[u64; RESTART_REASONS.len()]>,
}

/// Why the master replaced a worker of the serving generation; the index into
/// [`RESTART_REASONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restart {
    Crash,
    Retired,
    Stopped,
}

struct Worker {
    /// Taken while a hand-over writes to the worker, so that no ask byte lands inside it.
    ask: Option<OwnedWriteHalf>,
    latest: Option<Snapshot>,
    /// Counts the frames received, for an ask to wait for the next one.
    frames: watch::Receiver<u64>,
    /// The hosts of its latest hosts frame, until a hand-over takes them.
    hosts: Option<Vec<String>>,
}

/// The sum over workers, and how many answered.
pub(crate) struct Totals {
    pub(crate) snapshot: Snapshot,
    pub(crate) workers: usize,
    /// Workers replaced, indexed by [`Restart`].
    pub(crate) restarts: [u64; RESTART_REASONS.len()],
}

impl Collector {
    /// Counts a worker the master replaces.
    pub(crate) fn restarted(&self, why: Restart) {
        let mut restarts = self.restarts.get();
        restarts[why as usize] += 1;
        self.restarts.set(restarts);
    }

    /// Follows the stats socket of worker `pid` until it closes (the worker exited).
    pub(crate) fn add(self: &Rc<Self>, pid: u32, socket: StdUnixStream) {
        let socket = match socket
            .set_nonblocking(true)
            .and_then(|()| UnixStream::from_std(socket))
        {
            Ok(socket) => socket,
            Err(error) => return tracing::warn!(pid, %error, "cannot follow a worker's stats"),
        };
        let (read, ask) = socket.into_split();
        let (frames_sent, frames) = watch::channel(0);
        let worker = Worker {
            ask: Some(ask),
            latest: None,
            frames,
            hosts: None,
        };
        self.workers.borrow_mut().insert(pid, worker);
        tokio::task::spawn_local(self.clone().follow(pid, read, frames_sent));
    }

    async fn follow(self: Rc<Self>, pid: u32, mut read: OwnedReadHalf, frames: watch::Sender<u64>) {
        loop {
            match read_frame(&mut read).await {
                Ok(Some(frame)) => {
                    if let Some(worker) = self.workers.borrow_mut().get_mut(&pid) {
                        match frame {
                            Frame::Snapshot(snapshot) => worker.latest = Some(*snapshot),
                            Frame::Hosts(hosts) => worker.hosts = Some(hosts),
                        }
                    }
                    frames.send_modify(|n| *n += 1);
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(pid, %error, "unreadable stats from a worker");
                    break;
                }
            }
        }
        if let Some(Worker {
            latest: Some(last), ..
        }) = self.workers.borrow_mut().remove(&pid)
        {
            self.exited.borrow_mut().add(&last, false);
        }
    }

    /// Asks every worker for a fresh snapshot (each has [`ANSWER_WAIT`]) and sums them with
    /// what exited workers had counted.
    pub(crate) async fn totals(&self) -> Totals {
        let mut waits = Vec::new();
        for worker in self.workers.borrow_mut().values_mut() {
            let mut frames = worker.frames.clone();
            frames.mark_unchanged();
            // One byte on an idle socket: it fits, or the worker is far behind and the
            // answer to its previous ask will do (as when a hand-over holds the socket).
            let asked = worker
                .ask
                .as_ref()
                .map(|ask| ask.try_write(&[SNAPSHOT_ASK]));
            if matches!(asked, Some(Ok(_))) {
                waits.push(async move {
                    let _ = frames.changed().await;
                });
            }
        }
        let _ = tokio::time::timeout(ANSWER_WAIT, join_all(waits)).await;
        let mut snapshot = self.exited.borrow().clone();
        let workers = self.workers.borrow();
        for latest in workers.values().filter_map(|w| w.latest.as_ref()) {
            snapshot.add(latest, true);
        }
        Totals {
            snapshot,
            workers: workers.len(),
            restarts: self.restarts.get(),
        }
    }
}

impl Collector {
    /// Asks worker `from` for the hosts it has cached and hands them to worker `to` (just
    /// started), for it to look them up before its clients ask; returns how many were handed.
    /// Nothing is handed when `from` does not answer within [`ANSWER_WAIT`] or either exited.
    pub(crate) async fn hand_over(self: Rc<Self>, from: u32, to: u32) -> usize {
        let frames = {
            let mut workers = self.workers.borrow_mut();
            let Some(donor) = workers.get_mut(&from) else {
                return 0;
            };
            let mut frames = donor.frames.clone();
            frames.mark_unchanged();
            donor.hosts = None;
            match donor.ask.as_ref().map(|ask| ask.try_write(&[HOSTS_ASK])) {
                Some(Ok(_)) => frames,
                _ => return 0,
            }
        };
        let answered = tokio::time::timeout(ANSWER_WAIT, async {
            let mut frames = frames;
            loop {
                if frames.changed().await.is_err() {
                    return None;
                }
                let hosts = self.workers.borrow_mut().get_mut(&from)?.hosts.take();
                if hosts.is_some() {
                    return hosts;
                }
            }
        });
        let Ok(Some(hosts)) = answered.await else {
            return 0;
        };
        let Some(mut ask) = self
            .workers
            .borrow_mut()
            .get_mut(&to)
            .and_then(|w| w.ask.take())
        else {
            return 0;
        };
        let mut message = vec![WARM];
        message.extend(supervision::hosts_frame(&hosts));
        let sent = ask.write_all(&message).await;
        if let Some(worker) = self.workers.borrow_mut().get_mut(&to) {
            worker.ask = Some(ask);
        }
        match sent {
            Ok(()) => hosts.len(),
            Err(_) => 0,
        }
    }
}

/// What a worker sent.
enum Frame {
    Snapshot(Box<Snapshot>),
    Hosts(Vec<String>),
}

/// Awaits every future (they only wait; no result to keep).
async fn join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    for future in futures {
        future.await;
    }
}

/// The next frame, `None` at a clean end of stream.
async fn read_frame(read: &mut OwnedReadHalf) -> std::io::Result<Option<Frame>> {
    let mut length = [0u8; FRAME_LENGTH_BYTES];
    match read.read_exact(&mut length).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let length = u32::from_be_bytes(length) as usize;
    if length > MAX_FRAME_BYTES {
        return Err(std::io::Error::other(format!("frame of {length} bytes")));
    }
    let mut payload = vec![0; length];
    read.read_exact(&mut payload).await?;
    if let Some(hosts) = supervision::hosts_of(&payload) {
        return Ok(Some(Frame::Hosts(hosts)));
    }
    serde_json::from_slice(&payload)
        .map(|snapshot| Some(Frame::Snapshot(Box::new(snapshot))))
        .map_err(std::io::Error::other)
}
