//! Binding the listening sockets, once, before any worker runs.
//!
//! Owned here so that the master can bind port 80/443 before privileges are dropped and report a
//! taken port once, clearly; workers only adopt the sockets this module made.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use crate::supervision::Listener;

/// Connections the kernel queues before a worker accepts them (nginx's default is 511).
const BACKLOG: i32 = 1024;

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {address}")]
pub struct ListenError {
    pub(crate) address: SocketAddr,
    #[source]
    pub(crate) source: io::Error,
}

/// Binds `address` with `SO_REUSEADDR` (restarts do not wait for TIME_WAIT), `SO_REUSEPORT` (one
/// socket per worker on the same address: the kernel spreads connections evenly, where workers
/// sharing one socket let whichever wakes first take a whole burst) and, for IPv6,
/// `IPV6_V6ONLY` so that `0.0.0.0` and `::` can both be listed.
pub(crate) fn bind(address: SocketAddr, https: Option<usize>) -> Result<Listener, ListenError> {
    let fail = |source| ListenError { address, source };
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    socket.set_reuse_port(true).map_err(fail)?;
    if address.is_ipv6() {
        socket.set_only_v6(true).map_err(fail)?;
    }
    socket.bind(&address.into()).map_err(fail)?;
    socket.listen(BACKLOG).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    let socket: TcpListener = socket.into();
    let address = socket.local_addr().map_err(fail)?;
    Ok(Listener {
        socket,
        address,
        https,
    })
}
