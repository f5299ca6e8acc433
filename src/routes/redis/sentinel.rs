//! Where a driver URL's server is: its own address, or the master Redis Sentinel names now.
//!
//! With `redis-sentinel://`, every connection attempt of the command link and of tracking first
//! asks the sentinels, in order, `SENTINEL get-master-addr-by-name` (the first answer wins), so a
//! reconnection after the master died reaches whichever server Sentinel promoted. A master that
//! is demoted while it still runs would keep our connections, so a background task also
//! subscribes to `+switch-master` on a sentinel and, when our master moves, tells every
//! connection to let go of the old one ([`Locator::switched`]); they reconnect through the
//! sentinels at once.

use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;
use tracing::{debug, info};

use super::reconnect::{self, Attempt, Ended, Health, Session};
use super::resp::{self, Resp};
use crate::config::redis_url::{Address, Sentinel};
use crate::config::RedisUrl;
use crate::escape::Escaped;

/// Longest one sentinel may take to connect and answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);
/// The Sentinel event announcing a new master: `<name> <old ip> <old port> <new ip> <new port>`.
const SWITCH_CHANNEL: &str = "+switch-master";

/// Cheap-to-clone handle: where the server is, and a signal when Sentinel moves it.
#[derive(Clone)]
pub(crate) struct Locator {
    direct: Address,
    sentinel: Option<Box<Sentinel>>,
    /// Counts the switches of our master; `None` for a direct URL.
    switches: Option<watch::Receiver<u64>>,
}

impl Locator {
    /// For a Sentinel URL, starts following its master's switches in the background (inside a
    /// tokio runtime; without one, connections still ask the sentinels).
    pub(crate) fn new(url: &RedisUrl) -> Self {
        let switches = match url.sentinel.as_deref() {
            None => None,
            Some(Sentinel { sentinels, master }) => {
                let (sender, receiver) = watch::channel(0);
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    let session = SwitchSession {
                        sentinels: sentinels.clone(),
                        master: master.clone(),
                        next: 0,
                        switches: sender,
                    };
                    let health = Health::new(&format!("sentinels of {url}"));
                    runtime.spawn(reconnect::keep(session, health));
                }
                Some(receiver)
            }
        };
        Self {
            direct: Address {
                host: url.host.clone(),
                port: url.port,
            },
            sentinel: url.sentinel.clone(),
            switches,
        }
    }

    /// The server's address now.
    pub(crate) async fn locate(&self) -> Result<Address, String> {
        match self.sentinel.as_deref() {
            None => Ok(self.direct.clone()),
            Some(Sentinel { sentinels, master }) => {
                let mut why = String::from("no sentinel");
                for sentinel in sentinels {
                    match timeout(ASK_TIMEOUT, ask_master(sentinel, master)).await {
                        Ok(Ok(address)) => return Ok(address),
                        Ok(Err(e)) => why = format!("sentinel {sentinel}: {e}"),
                        Err(_) => why = format!("sentinel {sentinel}: timed out"),
                    }
                }
                Err(why)
            }
        }
    }

    /// Resolves when Sentinel switched our master since this handle last looked; never for a
    /// direct URL.
    pub(crate) async fn switched(&mut self) {
        let told = match &mut self.switches {
            Some(switches) => switches.changed().await.is_ok(),
            None => false,
        };
        if !told {
            // A direct URL, or the follower is gone (no runtime): no switch will be told.
            std::future::pending::<()>().await;
        }
    }
}

/// `SENTINEL get-master-addr-by-name <master>` on one sentinel.
async fn ask_master(sentinel: &Address, master: &str) -> Result<Address, String> {
    let mut stream = TcpStream::connect((sentinel.host.as_str(), sentinel.port))
        .await
        .map_err(|e| e.to_string())?;
    let ask = resp::command(&["SENTINEL", "get-master-addr-by-name", master]);
    stream.write_all(&ask).await.map_err(|e| e.to_string())?;
    let reply = resp::read_value(&mut stream, &mut Vec::new())
        .await
        .map_err(|e| e.to_string())?;
    match reply {
        Some(Resp::Array(parts)) => match parts.as_slice() {
            [Resp::Text(host), Resp::Text(port)] => {
                let port = std::str::from_utf8(port).ok().and_then(|p| p.parse().ok());
                match (std::str::from_utf8(host), port) {
                    (Ok(host), Some(port)) => Ok(Address {
                        host: host.to_owned(),
                        port,
                    }),
                    _ => Err("unreadable master address".to_owned()),
                }
            }
            _ => Err("unexpected reply".to_owned()),
        },
        Some(Resp::Null) => Err(format!("no master named {master:?}")),
        Some(Resp::Error(e)) => Err(e),
        Some(_) => Err("unexpected reply".to_owned()),
        None => Err("connection closed".to_owned()),
    }
}

/// The `+switch-master` subscription as a [`Session`] of the reconnect loop, on each sentinel in
/// turn; gone when every [`Locator`] is.
struct SwitchSession {
    sentinels: Vec<Address>,
    master: String,
    /// The sentinel the next attempt tries.
    next: usize,
    switches: watch::Sender<u64>,
}

impl Session for SwitchSession {
    type Conn = (TcpStream, Vec<u8>);

    async fn connect(&mut self) -> Attempt<Self::Conn> {
        let sentinel = self.sentinels[self.next % self.sentinels.len()].clone();
        self.next += 1;
        let subscribe = async {
            let mut stream = TcpStream::connect((sentinel.host.as_str(), sentinel.port)).await?;
            stream
                .write_all(&resp::command(&["SUBSCRIBE", SWITCH_CHANNEL]))
                .await?;
            let mut buf = Vec::new();
            // The subscription's confirmation; messages follow.
            match resp::read_value(&mut stream, &mut buf).await? {
                Some(Resp::Array(_)) => Ok((stream, buf)),
                _ => Err(std::io::Error::other("subscription refused")),
            }
        };
        match timeout(ASK_TIMEOUT, subscribe).await {
            Ok(Ok(conn)) => {
                debug!(sentinel = %sentinel, "following master switches");
                Attempt::Connected(conn)
            }
            Ok(Err(e)) => Attempt::Failed(format!("sentinel {sentinel}: {e}")),
            Err(_) => Attempt::Failed(format!("sentinel {sentinel}: timed out")),
        }
    }

    async fn serve(&mut self, (mut stream, mut buf): Self::Conn) -> Ended {
        loop {
            let message = tokio::select! {
                message = resp::read_value(&mut stream, &mut buf) => message,
                () = self.switches.closed() => return Ended::Gone,
            };
            let parts = match message {
                Ok(Some(Resp::Array(parts))) => parts,
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return Ended::Lost,
            };
            let [Resp::Text(kind), Resp::Text(_), Resp::Text(payload)] = parts.as_slice() else {
                continue;
            };
            if kind.as_slice() != b"message" {
                continue;
            }
            let payload = String::from_utf8_lossy(payload);
            let mut fields = payload.split(' ');
            if fields.next() != Some(self.master.as_str()) {
                continue;
            }
            let to: Vec<&str> = fields.skip(2).collect();
            info!(master = %self.master, to = %Escaped(&to.join(":")), "sentinel switched the redis master");
            self.switches.send_modify(|n| *n += 1);
        }
    }

    fn is_gone(&self) -> bool {
        self.switches.is_closed()
    }
}
