//! What the master and its workers say to each other, and nothing else: the listening sockets
//! handed over (`HIPACHE_LISTEN_FDS`, written by the master, read by a worker), the bytes a
//! worker reports on its pipe (`HIPACHE_READY_FD`), the master's lifeline whose end tells a
//! worker that the master is gone (`HIPACHE_LIFELINE_FD`), the metrics snapshots it sends when
//! asked on its stats socket (`HIPACHE_STATS_FD`), the cached hosts handed from a warm worker to
//! a new one over the same sockets, and the exit codes that say why a worker left.
//! Both `master` and `worker` import this module; neither imports the other.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd as _, RawFd};

/// `3=http@127.0.0.1:80,4=https.0@[::]:443,5=https.1+6@[::]:8443`: each inherited descriptor,
/// its scheme (with the index of its entry in `Config::https`, which names its certificates),
/// after a `+` the UDP socket of the same address that serves HTTP/3 (`https.http3`), and its
/// address.
pub(crate) const LISTEN_FDS_ENV: &str = "HIPACHE_LISTEN_FDS";
/// The write end of the worker's pipe to the master.
pub(crate) const READY_FD_ENV: &str = "HIPACHE_READY_FD";
/// The read end of the master's lifeline: a pipe whose only write end the master holds and never
/// hands on, so that the read end sees end-of-file once the master is gone, however it went.
pub(crate) const LIFELINE_FD_ENV: &str = "HIPACHE_LIFELINE_FD";
/// `<generation>.<slot>`, for the worker's log lines.
pub(crate) const WORKER_ID_ENV: &str = "HIPACHE_WORKER_ID";

/// The worker's end of a Unix socket pair with the master, for metrics snapshots.
pub(crate) const STATS_FD_ENV: &str = "HIPACHE_STATS_FD";
/// One byte from the master on the stats socket: answer with a snapshot frame.
pub(crate) const SNAPSHOT_ASK: u8 = b'S';
/// A snapshot frame is this many bytes of big-endian length, then that many bytes of JSON
/// (the metrics `Snapshot`). A worker also sends one, unasked, when it has drained.
pub(crate) const FRAME_LENGTH_BYTES: usize = 4;
/// Larger frames are refused: a worker's table of frontends is bounded well below this.
pub(crate) const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// One byte from the master on the stats socket: answer with a hosts frame, the hosts this
/// worker's route cache holds (at most [`MAX_WARM_HOSTS`], the most recently used first).
pub(crate) const HOSTS_ASK: u8 = b'H';
/// From the master to a new worker: this byte, then a hosts frame, the hosts a warm sibling has
/// cached, for the new worker to look up before its clients ask (`RedisRoutes::preload`).
pub(crate) const WARM: u8 = b'W';
/// A hosts frame is a frame (length, then payload) whose payload is this byte, then the host
/// names, each followed by `\n`. A snapshot's JSON payload starts with `{`, never with this.
pub(crate) const HOSTS_TAG: u8 = b'H';
/// Most hosts handed over: bounds the frame (host names are short: about 2 MB) and the new
/// worker's preload (a few seconds of lookups, in the background).
pub(crate) const MAX_WARM_HOSTS: usize = 100_000;

/// `hosts` as one hosts frame (names holding a line break, which no normalised host has, are
/// left out).
pub(crate) fn hosts_frame<S: AsRef<str>>(hosts: &[S]) -> Vec<u8> {
    let mut payload = vec![HOSTS_TAG];
    for host in hosts
        .iter()
        .map(AsRef::as_ref)
        .filter(|h| !h.contains('\n'))
    {
        payload.extend_from_slice(host.as_bytes());
        payload.push(b'\n');
    }
    snapshot_frame(&payload)
}

/// The host names of a hosts frame's payload; `None` for any other payload (pure).
pub(crate) fn hosts_of(payload: &[u8]) -> Option<Vec<String>> {
    let names = payload.strip_prefix(&[HOSTS_TAG])?;
    let names = std::str::from_utf8(names).ok()?;
    Some(
        names
            .lines()
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// The node's secret (hex), drawn by the master and handed to each worker it starts.
pub(crate) const NODE_SECRET_ENV: &str = "HIPACHE_NODE_SECRET";

/// The node's secret: inherited from the master by a worker, drawn at random (once) by the
/// master itself. Every worker of one master, across reloads and restarts, has the same one:
/// it keys sticky-session cookies when `server.stickySecret` sets no key of its own.
pub(crate) fn node_secret() -> &'static str {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(|| {
        std::env::var(NODE_SECRET_ENV).unwrap_or_else(|_| {
            let bytes: [u8; 32] = rand::random();
            bytes.iter().fold(String::with_capacity(64), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            })
        })
    })
}

/// One byte on the pipe: this worker accepts connections.
pub(crate) const READY: u8 = b'R';
/// One byte on the pipe: this worker stops accepting and drains; start its replacement now.
pub(crate) const RETIRING: u8 = b'D';

/// Exit statuses a worker reports to its master.
pub mod exit_code {
    /// Asked to stop (SIGTERM/SIGINT) and drained.
    pub const DRAINED: i32 = 0;
    /// Could not start (listeners, routes, runtime).
    pub const STARTUP: i32 = 1;
    /// Its configuration file could not be loaded.
    pub const CONFIG: i32 = 2;
    /// Retired by the memory watchdog.
    pub const RETIRED: i32 = 3;
}

/// `json` (or any payload) as one frame.
pub(crate) fn snapshot_frame(json: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(FRAME_LENGTH_BYTES + json.len());
    // A payload over 4 GiB cannot be built (the frontend table and the hosts are bounded).
    frame.extend_from_slice(&(json.len() as u32).to_be_bytes());
    frame.extend_from_slice(json);
    frame
}

/// A listening socket and what it serves.
#[derive(Debug)]
pub struct Listener {
    /// The bound, listening, non-blocking socket.
    pub(crate) socket: TcpListener,
    /// The address actually bound (port 0 resolved).
    pub(crate) address: SocketAddr,
    /// `None` for HTTP; for HTTPS, the index of its entry in `Config::https` (its certificates).
    pub(crate) https: Option<usize>,
    /// With `https.http3`, the bound UDP socket of the same address, for QUIC.
    pub(crate) quic: Option<UdpSocket>,
}

impl Listener {
    pub(crate) fn scheme(&self) -> &'static str {
        if self.https.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// A `HIPACHE_LISTEN_FDS` entry that cannot be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct MalformedEntry(pub(crate) String);

/// The `HIPACHE_LISTEN_FDS` value naming `listeners` (pure).
pub(crate) fn listen_fds<'a>(listeners: impl IntoIterator<Item = &'a Listener>) -> String {
    let mut spec = String::new();
    for listener in listeners {
        let separator = if spec.is_empty() { "" } else { "," };
        let fd = listener.socket.as_raw_fd();
        let address = listener.address;
        // Writing into a String cannot fail.
        let _ = match (listener.https, &listener.quic) {
            (None, _) => write!(spec, "{separator}{fd}=http@{address}"),
            (Some(index), None) => write!(spec, "{separator}{fd}=https.{index}@{address}"),
            (Some(index), Some(quic)) => {
                let quic = quic.as_raw_fd();
                write!(spec, "{separator}{fd}=https.{index}+{quic}@{address}")
            }
        };
    }
    spec
}

/// One `HIPACHE_LISTEN_FDS` entry.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ListenEntry {
    pub(crate) fd: RawFd,
    pub(crate) https: Option<usize>,
    /// The UDP socket serving HTTP/3 beside an https one.
    pub(crate) quic: Option<RawFd>,
    pub(crate) address: SocketAddr,
}

/// Reads a `HIPACHE_LISTEN_FDS` value (pure).
pub(crate) fn parse_listen_fds(spec: &str) -> Result<Vec<ListenEntry>, MalformedEntry> {
    spec.split(',')
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let malformed = || MalformedEntry(entry.to_owned());
            let (fd, rest) = entry.split_once('=').ok_or_else(malformed)?;
            let (scheme, address) = rest.split_once('@').ok_or_else(malformed)?;
            let (https, quic) = match scheme.split_once('.') {
                None if scheme == "http" => (None, None),
                Some(("https", index)) => {
                    let (index, quic) = match index.split_once('+') {
                        Some((index, quic)) => (index, Some(quic)),
                        None => (index, None),
                    };
                    let quic = quic.map(str::parse).transpose().map_err(|_| malformed())?;
                    (Some(index.parse().map_err(|_| malformed())?), quic)
                }
                _ => return Err(malformed()),
            };
            Ok(ListenEntry {
                fd: fd.parse().map_err(|_| malformed())?,
                https,
                quic,
                address: address.parse().map_err(|_| malformed())?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fd: RawFd, https: Option<usize>, quic: Option<RawFd>, at: &str) -> ListenEntry {
        let address = at.parse().unwrap();
        ListenEntry {
            fd,
            https,
            quic,
            address,
        }
    }

    #[test]
    fn hosts_frames_round_trip_and_are_no_snapshots() {
        let frame = hosts_frame(&["a.test", "bad\nname", "b.test"]);
        let (length, payload) = frame.split_at(FRAME_LENGTH_BYTES);
        assert_eq!(
            u32::from_be_bytes(length.try_into().unwrap()) as usize,
            payload.len()
        );
        assert_eq!(
            hosts_of(payload),
            Some(vec!["a.test".into(), "b.test".into()])
        );
        assert_eq!(hosts_of(br#"{"requests":1}"#), None);
        assert_eq!(hosts_of(&[HOSTS_TAG]), Some(Vec::new()));
    }

    #[test]
    fn listener_spec_round_trips() {
        let plain = TcpListener::bind("127.0.0.1:0").unwrap();
        let secure = TcpListener::bind("[::1]:0").unwrap();
        let (plain_address, secure_address) =
            (plain.local_addr().unwrap(), secure.local_addr().unwrap());
        let quic = UdpSocket::bind(secure_address).unwrap();
        let (plain_fd, secure_fd, quic_fd) =
            (plain.as_raw_fd(), secure.as_raw_fd(), quic.as_raw_fd());
        let listeners = [
            Listener {
                socket: plain,
                address: plain_address,
                https: None,
                quic: None,
            },
            Listener {
                socket: secure,
                address: secure_address,
                https: Some(2),
                quic: Some(quic),
            },
        ];
        let parsed = parse_listen_fds(&listen_fds(&listeners)).unwrap();
        assert_eq!(
            parsed,
            [
                entry(plain_fd, None, None, &plain_address.to_string()),
                entry(
                    secure_fd,
                    Some(2),
                    Some(quic_fd),
                    &secure_address.to_string()
                ),
            ]
        );
    }

    #[test]
    fn malformed_listener_specs_are_refused() {
        let spec = "3=http@127.0.0.1:80,4=https.2@[::1]:443,5=https.0+6@[::]:443";
        let parsed = parse_listen_fds(spec).unwrap();
        assert_eq!(parsed[0], entry(3, None, None, "127.0.0.1:80"));
        assert_eq!(parsed[1], entry(4, Some(2), None, "[::1]:443"));
        assert_eq!(parsed[2], entry(5, Some(0), Some(6), "[::]:443"));
        assert!(parse_listen_fds("4=https@[::1]:443").is_err());
        assert!(parse_listen_fds("4=https.0+x@[::1]:443").is_err());
        assert!(parse_listen_fds("3=ftp@1.2.3.4:21").is_err());
        assert!(parse_listen_fds("x=http@1.2.3.4:80").is_err());
        assert!(parse_listen_fds("").unwrap().is_empty());
    }
}
