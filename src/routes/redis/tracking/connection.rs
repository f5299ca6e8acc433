//! The tracking connection itself: the handshake (`HELLO 3`, `CLIENT TRACKING ON BCAST`), following
//! its pushes and heartbeat, and the [`Session`] the reconnect loop keeps up. What the pushes
//! do to the cache is the parent module's.

use std::io;
use std::sync::{Arc, Mutex, Weak};

use tokio::io::{AsyncWriteExt as _, Interest};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::{debug, info};

use super::super::reconnect::{Attempt, Ended, Session};
use super::super::resp::{self, Resp};
use super::super::sentinel::Locator;
use super::{State, CONNECT_TIMEOUT, HEARTBEAT, REFUSED_BACKOFF};
use crate::config::redis_url::Address;
use crate::config::RedisUrl;
use crate::escape::Escaped;
use crate::routes::{lock, DEAD_PREFIX, FRONTEND_PREFIX, STATE_PREFIX, TLS_PREFIX};

#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("connection closed")]
    Closed,
    /// Redis answered with an error: too old for RESP3 or tracking, or refused the password.
    #[error("redis refused: {0}")]
    Refused(String),
}

/// The tracking connection as a [`Session`] of the reconnect loop; gone with the last
/// [`Tracking`] handle.
pub(super) struct TrackingSession {
    pub(super) url: RedisUrl,
    pub(super) locator: Locator,
    pub(super) state: Weak<Mutex<State>>,
    /// The connection this session keeps in [`State::conns`]; gone once it is not there.
    pub(super) id: u64,
    pub(super) refused_logged: bool,
}

impl Session for TrackingSession {
    type Conn = (TcpStream, Vec<u8>, Address);

    async fn connect(&mut self) -> Attempt<Self::Conn> {
        let address = match self.locator.locate().await {
            Ok(address) => address,
            Err(why) => return Attempt::Failed(why),
        };
        let certificates = self
            .state
            .upgrade()
            .is_some_and(|state| lock(&state).certificates);
        let shake = handshake(&self.url, &address, certificates);
        let why = match timeout(CONNECT_TIMEOUT, shake).await {
            Ok(Ok((stream, leftover))) => {
                self.refused_logged = false;
                return Attempt::Connected((stream, leftover, address));
            }
            Ok(Err(HandshakeError::Refused(reply))) => {
                if !self.refused_logged {
                    info!(reply = %Escaped(&reply), "redis tracking unavailable; querying per request");
                    self.refused_logged = true;
                }
                return Attempt::Refused {
                    retry_after: REFUSED_BACKOFF,
                };
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connect timed out".to_owned(),
        };
        debug!(error = %why, "redis tracking connect failed");
        Attempt::Failed(why)
    }

    async fn serve(&mut self, (socket, leftover, address): Self::Conn) -> Ended {
        let socket = Arc::new(socket);
        let Some(shared) = self.state.upgrade() else {
            return Ended::Gone;
        };
        let generation = lock(&shared).install(self.id, address, socket.clone(), leftover);
        drop(shared);
        if generation != 0 {
            follow(&socket, &self.state, self.id, generation, &mut self.locator).await;
        }
        if self.is_gone() {
            Ended::Gone
        } else {
            Ended::Lost
        }
    }

    fn is_gone(&self) -> bool {
        self.state
            .upgrade()
            .is_none_or(|state| lock(&state).conn(self.id).is_none())
    }
}

/// `HELLO 3 [AUTH default <password>]`, then `CLIENT TRACKING ON BCAST` for the three prefixes
/// of a lookup (`frontend:`, `dead:`, `state:`; `tls:` too with `certificates`), on the server at `address`. Returns the stream and any bytes read past the last reply.
async fn handshake(
    url: &RedisUrl,
    address: &Address,
    certificates: bool,
) -> Result<(TcpStream, Vec<u8>), HandshakeError> {
    let mut stream = TcpStream::connect((address.host.as_str(), address.port)).await?;
    stream.set_nodelay(true)?;
    let mut hello = vec!["HELLO", "3"];
    if let Some(password) = &url.password {
        hello.extend(["AUTH", "default", password]);
    }
    let frontend = format!("{}{FRONTEND_PREFIX}", url.prefix);
    let dead = format!("{}{DEAD_PREFIX}", url.prefix);
    let track = ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", &frontend];
    let state = format!("{}{STATE_PREFIX}", url.prefix);
    let mut track = [&track[..], &["PREFIX", &dead, "PREFIX", &state]].concat();
    let tls = format!("{}{TLS_PREFIX}", url.prefix);
    if certificates {
        track.extend(["PREFIX", &tls]);
    }
    let mut buf = Vec::new();
    for command in [hello, track] {
        stream.write_all(&resp::command(&command)).await?;
        match resp::read_value(&mut stream, &mut buf).await? {
            None => return Err(HandshakeError::Closed),
            Some(Resp::Error(reply)) => return Err(HandshakeError::Refused(reply)),
            Some(_) => {}
        }
    }
    Ok((stream, buf))
}

/// Applies pushes as they come and pings, until tracking is lost or every handle is gone.
async fn follow(
    socket: &TcpStream,
    state: &Weak<Mutex<State>>,
    id: u64,
    generation: u64,
    locator: &mut Locator,
) {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            ready = socket.readable() => {
                let Some(shared) = state.upgrade() else { return };
                let mut current = lock(&shared);
                if !current.is_current(id, generation) {
                    return;
                }
                match ready {
                    // Drain inside `try_io`, whose `WouldBlock` clears tokio's readiness flag
                    // unless bytes came in meanwhile.
                    Ok(()) => {
                        let _ = socket.try_io(Interest::READABLE, || {
                            current.sync();
                            Err::<(), _>(io::ErrorKind::WouldBlock.into())
                        });
                    }
                    Err(_) => current.lose(id, "poll failed"),
                }
                if !current.is_current(id, generation) {
                    return;
                }
            }
            () = locator.switched() => {
                if let Some(shared) = state.upgrade() {
                    lock(&shared).lose(id, "master switched");
                }
                return;
            }
            _ = heartbeat.tick() => {
                let Some(shared) = state.upgrade() else { return };
                let mut current = lock(&shared);
                // Other servers' connections may be down: only this one's state matters here.
                current.sync();
                if !current.is_current(id, generation) {
                    return;
                }
                if let Err(why) = current.ping(id) {
                    current.lose(id, why);
                    return;
                }
            }
        }
    }
}
