//! Who listens on a port already, as far as /proc tells: the listening sockets of
//! `/proc/net/tcp` and `/proc/net/tcp6`, then the process holding one of them among
//! `/proc/<pid>/fd`. Only for the message of a refused start; where /proc is unreadable (another
//! user's process, no /proc) the answer is "another process".

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// The TCP tables listing every socket with its state and inode.
const TABLES: [&str; 2] = ["/proc/net/tcp", "/proc/net/tcp6"];
/// `st` of a socket in LISTEN state in those tables.
const LISTEN: &str = "0A";

/// A process found holding a listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pid: u32,
    /// `/proc/<pid>/comm`, escaped: any process may name itself anything.
    name: String,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.name)
    }
}

/// The inodes of the sockets listening on `port` in one of the TCP tables (pure).
pub(crate) fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            // sl local_address rem_address st queues timer retransmits uid timeout inode
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            let (_, local_port) = local.rsplit_once(':')?;
            let listening = *state == LISTEN && u16::from_str_radix(local_port, 16).ok()? == port;
            listening.then(|| inode.parse().ok()).flatten()
        })
        .collect()
}

impl Holder {
    /// Whether the holder is a hipache started with `--config` naming `config` (the same file,
    /// wherever the path was written from): the running instance of that file, which `--dry`
    /// checks before a reload, not a second instance.
    pub(crate) fn runs_config(&self, config: &Path) -> bool {
        let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", self.pid)) else {
            return false;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let Some(given) = config_argument(&args) else {
            return false;
        };
        let cwd = std::fs::read_link(format!("/proc/{}/cwd", self.pid)).unwrap_or_default();
        let theirs = std::fs::canonicalize(cwd.join(given));
        let ours = std::fs::canonicalize(config);
        matches!((theirs, ours), (Ok(theirs), Ok(ours)) if theirs == ours)
    }
}

/// The value of `--config FILE`, `--config=FILE` or `-c FILE` in a command line (pure).
fn config_argument(args: &[&[u8]]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = |bytes: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(bytes));
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if *arg == b"--config" || *arg == b"-c" {
            return args.next().map(|value| path(value));
        }
        if let Some(value) = arg.strip_prefix(b"--config=") {
            return Some(path(value));
        }
    }
    None
}

/// The first process found holding a socket that listens on `port`.
pub(crate) fn find(port: u16) -> Option<Holder> {
    let inodes: HashSet<u64> = TABLES
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    // The lowest pid is usually the one that bound first (a master before its workers).
    pids.sort_unstable();
    let pid = pids.into_iter().find(|pid| holds(*pid, &inodes))?;
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    Some(Holder {
        pid,
        name: name.trim_end().escape_debug().to_string(),
    })
}

/// Whether one of `pid`'s descriptors is one of the sockets `inodes`.
fn holds(pid: u32, inodes: &HashSet<u64>) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok())
                .is_some_and(|inode| inodes.contains(&inode))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 41300 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41235 1 0000000000000000 100 0 0 10 0
   3: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41236 1 0000000000000000 100 0 0 10 0";

    #[test]
    fn the_config_argument_is_read_in_every_spelling() {
        let read = |line: &[&str]| {
            let args: Vec<&[u8]> = line.iter().map(|a| a.as_bytes()).collect();
            config_argument(&args)
        };
        let etc = Some(PathBuf::from("/etc/h.json"));
        assert_eq!(read(&["hipache", "--config", "/etc/h.json"]), etc);
        assert_eq!(read(&["hipache", "--worker", "-c", "/etc/h.json"]), etc);
        assert_eq!(read(&["hipache", "--config=/etc/h.json"]), etc);
        assert_eq!(read(&["hipache", "--dry"]), None);
        assert_eq!(read(&["hipache", "--config"]), None);
    }

    #[test]
    fn only_listening_sockets_on_the_port_are_found() {
        assert_eq!(listening_inodes(TABLE, 8080), [41234, 41236]);
        assert_eq!(listening_inodes(TABLE, 80), [41235]);
        assert!(listening_inodes(TABLE, 443).is_empty());
    }

    #[test]
    fn ipv6_rows_and_garbage_are_read_or_skipped() {
        let table = "header
   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5150 1
   1: garbage";
        assert_eq!(listening_inodes(table, 443), [5150]);
    }

    #[test]
    fn finds_the_holder_of_its_own_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let holder = find(port).expect("this test process holds the port");
        assert_eq!(holder.pid, std::process::id());
        assert!(holder
            .to_string()
            .starts_with(&format!("pid {} (", holder.pid)));
    }
}
