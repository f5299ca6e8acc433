//! Binding the listening sockets, once, before any worker runs.
//!
//! Owned here so that the master can bind port 80/443 before privileges are dropped and report a
//! taken port once, clearly; workers only adopt the sockets this module made.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use super::port_holder::{self, Holder};
use crate::supervision::Listener;

/// Connections the kernel queues before a worker accepts them (nginx's default is 511).
const BACKLOG: i32 = 1024;

/// Why an address cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The socket could not be set up, bound or put to listen.
    #[error("cannot listen on {address}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another process listens on the port already.
    #[error("cannot listen on {address}: port {} is already in use by {}", address.port(),
        holder.as_ref().map_or("another process".to_owned(), Holder::to_string))]
    Taken {
        /// The configured address.
        address: SocketAddr,
        /// Who holds it, where /proc tells.
        holder: Option<Holder>,
    },
}

/// Refuses `address` when some process listens on its port already, before the master binds it
/// with `SO_REUSEPORT`: with that option two independent instances (same user) would both bind
/// and share the connections without a word. A plain bind (`SO_REUSEADDR` only, so that
/// connections in TIME_WAIT do not count) fails on a port anything listens on, as nginx's does.
/// Port 0 is never taken. Only for addresses this master does not serve yet: its own sockets,
/// shared across a reload, would fail the probe.
pub(crate) fn probe(address: SocketAddr) -> Result<(), ListenError> {
    if address.port() == 0 {
        return Ok(());
    }
    let fail = |source| ListenError::Bind { address, source };
    let socket = tcp_socket(address, false).map_err(fail)?;
    match socket.bind(&address.into()) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AddrInUse => Err(ListenError::Taken {
            address,
            holder: port_holder::find(address.port()),
        }),
        Err(source) => Err(ListenError::Bind { address, source }),
    }
}

/// Binds `address` with `SO_REUSEADDR` (restarts do not wait for TIME_WAIT), `SO_REUSEPORT` (one
/// socket per worker on the same address: the kernel spreads connections evenly, where workers
/// sharing one socket let whichever wakes first take a whole burst) and, for IPv6,
/// `IPV6_V6ONLY` so that `0.0.0.0` and `::` can both be listed.
/// With `http3`, a UDP socket is bound beside it on the same address (port 0 resolved by the
/// TCP socket), for QUIC.
pub(crate) fn bind(
    address: SocketAddr,
    https: Option<usize>,
    http3: bool,
) -> Result<Listener, ListenError> {
    let fail = |source| ListenError::Bind { address, source };
    let socket = tcp_socket(address, true).map_err(fail)?;
    socket.bind(&address.into()).map_err(fail)?;
    socket.listen(BACKLOG).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    let socket: TcpListener = socket.into();
    let address = socket.local_addr().map_err(fail)?;
    let quic = http3.then(|| bind_udp(address)).transpose()?;
    Ok(Listener {
        socket,
        address,
        https,
        quic,
    })
}

/// Binds the UDP socket HTTP/3 is served on at `address`, with the options of the TCP ones:
/// `SO_REUSEPORT` gives each worker a socket of its own, which the kernel hands datagrams by
/// their addresses, so that a client's datagrams keep reaching the worker that has its
/// connection.
pub(crate) fn bind_udp(address: SocketAddr) -> Result<UdpSocket, ListenError> {
    let fail = |source| ListenError::Bind { address, source };
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    socket.set_reuse_port(true).map_err(fail)?;
    if address.is_ipv6() {
        socket.set_only_v6(true).map_err(fail)?;
    }
    socket.bind(&address.into()).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    Ok(socket.into())
}

/// A TCP socket for `address`, not bound yet: `SO_REUSEADDR` (connections in TIME_WAIT never
/// count), `SO_REUSEPORT` when asked, and `IPV6_V6ONLY` for an IPv6 address.
fn tcp_socket(address: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    Ok(socket)
}
