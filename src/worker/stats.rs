//! The worker's end of its stats socket: each byte the master sends asks for a snapshot of
//! this worker's counters (`crate::metrics`), answered with one frame; once drained, the worker
//! sends a last frame unasked, so the master's totals keep what it counted until the end.

use std::os::unix::net::UnixStream as StdUnixStream;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;
use tokio::sync::oneshot;

use crate::metrics;
use crate::proxy::open::OpenCount;
use crate::routes::redis::RedisRoutes;
use crate::supervision;

/// How long the last frame may take to leave: the master may be gone.
const LAST_FRAME_WAIT: Duration = Duration::from_secs(1);

/// Answers asks until the master closes the socket, or `drained` fires (then sends the last).
pub(super) async fn answer(
    socket: StdUnixStream,
    tunnels: OpenCount,
    certificates: Option<RedisRoutes>,
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
                let last = send(&mut socket, &tunnels, certificates.as_ref());
                let _ = tokio::time::timeout(LAST_FRAME_WAIT, last).await;
                return;
            }
        };
        if !asked
            || send(&mut socket, &tunnels, certificates.as_ref())
                .await
                .is_err()
        {
            // The master closed its end: nobody will ask again.
            return;
        }
    }
}

async fn send(
    socket: &mut UnixStream,
    tunnels: &OpenCount,
    certificates: Option<&RedisRoutes>,
) -> std::io::Result<()> {
    let mut snapshot = metrics::snapshot(tunnels.open() as u64);
    if let Some(routes) = certificates {
        snapshot.certificates = routes
            .loaded_certificates()
            .into_iter()
            .filter_map(|(name, certificate)| {
                let not_after = certificate.facts.as_ref()?.not_after;
                Some(metrics::CertificateExpiry { name, not_after })
            })
            .collect();
    }
    let json = serde_json::to_vec(&snapshot).map_err(std::io::Error::other)?;
    socket.write_all(&supervision::snapshot_frame(&json)).await
}
