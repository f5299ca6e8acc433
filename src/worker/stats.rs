//! The worker's end of its stats socket: each byte the master sends asks for a snapshot of
//! this worker's counters (`crate::metrics`), answered with one frame; once drained, the worker
//! sends a last frame unasked, so the master's totals keep what it counted until the end.

use std::os::unix::net::UnixStream as StdUnixStream;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;
use tokio::sync::oneshot;

use crate::metrics;
use crate::proxy::open::OpenCount;
use crate::routes::redis::RedisRoutes;
use crate::supervision;
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
pub(super) async fn answer(
    socket: StdUnixStream,
    tunnels: OpenCount,
    certificates: Expiries,
    drained: oneshot::Receiver<()>,
) {
    let socket = match socket
        .set_nonblocking(true)
        .and_then(|()| UnixStream::from_std(socket))
    {
        Ok(socket) => socket,
        Err(error) => return tracing::warn!(%error, "cannot use the stats socket"),
    };
    let mut socket = socket;
    let mut drained = drained;
    let mut asks = [0u8; 64];
    loop {
        let asked = tokio::select! {
            read = socket.read(&mut asks) => matches!(read, Ok(n) if n > 0),
            _ = &mut drained => {
                let last = send(&mut socket, &tunnels, &certificates);
                let _ = tokio::time::timeout(LAST_FRAME_WAIT, last).await;
                return;
            }
        };
        if !asked || send(&mut socket, &tunnels, &certificates).await.is_err() {
            // The master closed its end: nobody will ask again.
            return;
        }
    }
}

async fn send(
    socket: &mut UnixStream,
    tunnels: &OpenCount,
    certificates: &Expiries,
) -> std::io::Result<()> {
    let mut snapshot = metrics::snapshot(tunnels.open() as u64);
    snapshot.certificates = certificates.read();
    let json = serde_json::to_vec(&snapshot).map_err(std::io::Error::other)?;
    socket.write_all(&supervision::snapshot_frame(&json)).await
}
