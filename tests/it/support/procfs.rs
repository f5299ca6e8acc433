//! What /proc tells about processes and listening sockets, for the lifecycle tests: whether a
//! process still runs, which processes hold a listening socket on a port, which ports a
//! process listens on, and from which ports it is connected.

use std::collections::HashSet;

/// Whether `pid` runs (a zombie waiting for a parent that never reaps it has stopped running).
pub(crate) fn is_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z" | "X"))
}

/// The inodes of the TCP sockets in LISTEN state, with their local port (IPv4 and IPv6).
fn listening_sockets() -> Vec<(u64, u16)> {
    tcp_sockets(|state| state == LISTEN)
}

/// The TCP state `/proc/net/tcp` writes for LISTEN.
const LISTEN: &str = "0A";

/// The inodes of the TCP sockets whose state (as `/proc/net/tcp` writes it) passes `keep`,
/// with their local port (IPv4 and IPv6).
fn tcp_sockets(keep: impl Fn(&str) -> bool) -> Vec<(u64, u16)> {
    let mut sockets = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if fields.len() < 10 || !keep(fields[3]) {
                continue;
            }
            let port = fields[1]
                .rsplit_once(':')
                .and_then(|(_, port)| u16::from_str_radix(port, 16).ok());
            if let (Some(port), Ok(inode)) = (port, fields[9].parse()) {
                sockets.push((inode, port));
            }
        }
    }
    sockets
}

/// The socket inodes among `pid`'s open descriptors.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| {
            let target = std::fs::read_link(fd.path()).ok()?;
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

/// The processes holding a listening socket on `port`, sorted.
pub(crate) fn listeners_on(port: u16) -> Vec<u32> {
    let inodes: HashSet<u64> = listening_sockets()
        .into_iter()
        .filter(|(_, p)| *p == port)
        .map(|(inode, _)| inode)
        .collect();
    let mut pids: Vec<u32> = all_pids()
        .into_iter()
        .filter(|pid| !socket_inodes(*pid).is_disjoint(&inodes))
        .collect();
    pids.sort_unstable();
    pids
}

/// The ports of the listening sockets `pid` holds, one entry per socket, sorted.
pub(crate) fn listening_ports_of(pid: u32) -> Vec<u16> {
    local_ports_of(pid, |state| state == LISTEN)
}

/// The local ports of the TCP connections `pid` holds (listening sockets left out), sorted.
pub(crate) fn connected_ports_of(pid: u32) -> Vec<u16> {
    local_ports_of(pid, |state| state != LISTEN)
}

/// The local ports of `pid`'s TCP sockets whose state passes `keep`, sorted.
fn local_ports_of(pid: u32, keep: impl Fn(&str) -> bool) -> Vec<u16> {
    let held = socket_inodes(pid);
    let mut ports: Vec<u16> = tcp_sockets(keep)
        .into_iter()
        .filter(|(inode, _)| held.contains(inode))
        .map(|(_, port)| port)
        .collect();
    ports.sort_unstable();
    ports
}
