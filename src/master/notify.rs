//! Telling a service manager where the master stands, by systemd's notification protocol
//! (`sd_notify`): a datagram to the socket named in `NOTIFY_SOCKET`, when it is set.
//!
//! `READY=1` goes once every worker of the first generation reported ready, so that
//! `systemctl start` (with `Type=notify`) returns when the ports are served, not when they are
//! bound; `RELOADING=1` and `READY=1` frame a reload, `STOPPING=1` opens a stop. Each message
//! carries a `STATUS=` line that `systemctl status` shows and that tests read to learn the real
//! addresses (`port: 0` binds a free port):
//!
//! ```text
//! STATUS=serving http://127.0.0.1:8080 https://127.0.0.1:8443
//! ```
//!
//! The workers do not inherit `NOTIFY_SOCKET` (`spawn`): only the master speaks for the service.
//! A manager that is gone or a socket that refuses the datagram costs a debug line, never the
//! service.

use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// The environment variable naming the manager's socket.
pub(crate) const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// Where notifications go; `None` when no manager asked for them.
pub(crate) struct Notifier {
    socket: UnixDatagram,
    target: String,
}

/// What the master says.
pub(crate) enum State<'a> {
    /// Every worker of the current generation serves `listening`.
    Ready { listening: &'a [String] },
    /// A reload began (`MONOTONIC_USEC` as systemd asks for it).
    Reloading,
    /// The master is stopping its workers.
    Stopping,
}

impl Notifier {
    /// The manager's socket from the environment, read once at start.
    pub(crate) fn from_env() -> Option<Self> {
        let target = std::env::var(NOTIFY_SOCKET_ENV).ok()?;
        if target.is_empty() {
            return None;
        }
        match UnixDatagram::unbound() {
            Ok(socket) => Some(Self { socket, target }),
            Err(error) => {
                tracing::warn!(%error, "cannot open a socket to notify the service manager");
                None
            }
        }
    }

    pub(crate) fn send(&self, state: State<'_>) {
        let message = message(&state, std::process::id(), monotonic_usec());
        if let Err(error) = self.send_bytes(message.as_bytes()) {
            tracing::debug!(%error, socket = %self.target, "service manager notification not sent");
        }
    }

    fn send_bytes(&self, bytes: &[u8]) -> std::io::Result<usize> {
        // `@name` is a socket in Linux's abstract namespace.
        if let Some(name) = self.target.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt as _;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            return self.socket.send_to_addr(bytes, &address);
        }
        self.socket.send_to(bytes, Path::new(&self.target))
    }
}

/// The datagram for `state`, one `KEY=value` per line.
fn message(state: &State<'_>, pid: u32, monotonic_usec: u64) -> String {
    match state {
        State::Ready { listening } => {
            format!(
                "READY=1\nMAINPID={pid}\nSTATUS=serving {}\n",
                listening.join(" ")
            )
        }
        State::Reloading => {
            format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}\nSTATUS=reloading\n")
        }
        State::Stopping => "STOPPING=1\nSTATUS=stopping\n".to_owned(),
    }
}

/// `CLOCK_MONOTONIC` in microseconds, the clock `RELOADING=1` is stamped with.
fn monotonic_usec() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(now) => now.tv_sec() as u64 * 1_000_000 + now.tv_nsec() as u64 / 1_000,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_names_every_address_on_one_status_line() {
        let listening = [
            "http://127.0.0.1:80".to_owned(),
            "https://[::1]:443".to_owned(),
        ];
        assert_eq!(
            message(
                &State::Ready {
                    listening: &listening
                },
                42,
                0
            ),
            "READY=1\nMAINPID=42\nSTATUS=serving http://127.0.0.1:80 https://[::1]:443\n"
        );
        assert_eq!(
            message(&State::Reloading, 42, 7),
            "RELOADING=1\nMONOTONIC_USEC=7\nSTATUS=reloading\n"
        );
    }

    #[test]
    fn a_datagram_reaches_the_named_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let manager = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier {
            socket: UnixDatagram::unbound().unwrap(),
            target: path.display().to_string(),
        };
        notifier.send(State::Stopping);
        let mut buf = [0u8; 256];
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1\nSTATUS=stopping\n");
    }
}
