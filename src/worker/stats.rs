//! The worker's end of its stats socket: each byte the master sends asks for a snapshot of
//! this worker's counters (`crate::metrics`), answered with one frame; once drained, the worker
//! sends a last frame unasked, so the master's totals keep what it counted until the end.
//!
//! The same socket carries the hand-over of cached hosts (`crate::supervision`): asked with
//! `HOSTS_ASK`, the worker answers with the hosts its Redis route cache holds; told `WARM` and a
//! hosts frame (just started), it looks those hosts up in the background while it serves.

use std::os::unix::net::UnixStream as StdUnixStream;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;
use tokio::sync::oneshot;

use crate::metrics;
use crate::proxy::open::OpenCount;
use crate::routes::redis::RedisRoutes;
use crate::supervision::{
    self, FRAME_LENGTH_BYTES, HOSTS_ASK, MAX_FRAME_BYTES, MAX_WARM_HOSTS, WARM,
};
use crate::tls::Certificates;

/// The certificates whose expiry the snapshot carries: the files', and Redis's when read.
pub(super) struct Expiries {
    pub(super) files: Option<Rc<Certificates>>,
    pub(super) redis: Option<RedisRoutes>,
}

impl Expiries {
    fn read(&self) -> Vec<metrics::CertificateExpiry> {
        let expiry = |source: &str, name: String, not_after: i64| metrics::CertificateExpiry {
            name,
            source: source.to_owned(),
            not_after,
        };
        let mut all: Vec<_> = (self.files.iter())
            .flat_map(|files| files.expiries())
            .map(|(name, not_after)| expiry("file", name, not_after))
            .collect();
        for (name, certificate) in self.redis.iter().flat_map(|r| r.loaded_certificates()) {
            if let Some(facts) = &certificate.facts {
                all.push(expiry("redis", name, facts.not_after));
            }
        }
        all
    }
}

/// How long the last frame may take to leave: the master may be gone.
const LAST_FRAME_WAIT: Duration = Duration::from_secs(1);

/// Answers asks until the master closes the socket, or `drained` fires (then sends the last).
/// `redis`: the route source whose cache hosts are handed over, when routes come from Redis.
pub(super) async fn answer(
    socket: StdUnixStream,
    tunnels: OpenCount,
    certificates: Expiries,
    redis: Option<RedisRoutes>,
    drained: oneshot::Receiver<()>,
) {
    let socket = match socket
        .set_nonblocking(true)
        .and_then(|()| UnixStream::from_std(socket))
    {
        Ok(socket) => socket,
        Err(error) => return tracing::warn!(%error, "cannot use the stats socket"),
    };
    let (read, mut socket) = socket.into_split();
    let mut read = BufReader::new(read);
    let mut drained = drained;
    loop {
        // Reading one byte is cancel-safe: it is either read or left in the socket.
        let ask = tokio::select! {
            read = read.read_u8() => read.ok(),
            _ = &mut drained => {
                let last = send(&mut socket, &tunnels, &certificates);
                let _ = tokio::time::timeout(LAST_FRAME_WAIT, last).await;
                return;
            }
        };
        let sent = match ask {
            // The master closed its end: nobody will ask again.
            None => return,
            Some(HOSTS_ASK) => {
                let hosts = (redis.iter())
                    .flat_map(|redis| redis.recent_hosts(MAX_WARM_HOSTS))
                    .collect::<Vec<_>>();
                socket.write_all(&supervision::hosts_frame(&hosts)).await
            }
            Some(WARM) => {
                let Ok(hosts) = read_hosts(&mut read).await else {
                    return;
                };
                if let Some(redis) = redis.clone() {
                    tokio::task::spawn_local(async move { redis.preload(hosts).await });
                }
                Ok(())
            }
            // `SNAPSHOT_ASK`, or any byte from a master that knows no other.
            Some(_) => send(&mut socket, &tunnels, &certificates).await,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// The hosts frame that follows `WARM`.
async fn read_hosts(
    read: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
) -> std::io::Result<Vec<String>> {
    let mut length = [0u8; FRAME_LENGTH_BYTES];
    read.read_exact(&mut length).await?;
    let length = u32::from_be_bytes(length) as usize;
    if length > MAX_FRAME_BYTES {
        return Err(std::io::Error::other(format!("frame of {length} bytes")));
    }
    let mut payload = vec![0; length];
    read.read_exact(&mut payload).await?;
    supervision::hosts_of(&payload).ok_or_else(|| std::io::Error::other("not a hosts frame"))
}

async fn send(
    socket: &mut tokio::net::unix::OwnedWriteHalf,
    tunnels: &OpenCount,
    certificates: &Expiries,
) -> std::io::Result<()> {
    let mut snapshot = metrics::snapshot(tunnels.open() as u64);
    snapshot.certificates = certificates.read();
    let json = serde_json::to_vec(&snapshot).map_err(std::io::Error::other)?;
    socket.write_all(&supervision::snapshot_frame(&json)).await
}
