//! One Redis server as seen by a worker: a connection kept up by a background task.
//!
//! The task ([`reconnect::keep`]) finds the server (directly, or through Sentinel: see
//! [`Locator`]), connects (AUTH and SELECT come from the driver URL through [`redis::Client`]),
//! reconnects when a request reports the connection broken or Sentinel switched masters, and
//! publishes the state on a `watch` channel. Requests never wait for a server known to be down,
//! except for one prompt attempt when nothing listened at the last one (a restart in progress;
//! see [`State::Down`]): they wait, within their own deadline, while an attempt is in flight.
//! Every command is bounded by [`COMMAND_TIMEOUT`], so a hung Redis cannot hang requests.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, IntoConnectionInfo as _, Pipeline};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{debug, error};

use super::reconnect::{self, Attempt, Ended, Health, Session};
use super::sentinel::Locator;
use crate::config::redis_url::Address;
use crate::config::RedisUrl;

/// Longest a request waits for one Redis answer (including waiting for a connection in flight).
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest one connection attempt may take, handshake (AUTH, SELECT) included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Cheap-to-clone handle on one server's connection.
#[derive(Clone)]
pub(crate) struct Link {
    state: watch::Receiver<State>,
    broken: mpsc::Sender<u64>,
    /// Asks the keeper for an attempt now rather than after its backoff.
    kick: Arc<Notify>,
}

#[derive(Clone)]
enum State {
    /// A connection attempt is in flight (at startup, or right after a break).
    Connecting,
    Up {
        generation: u64,
        connection: MultiplexedConnection,
        /// The server it is connected to (where Sentinel said the master was).
        address: Address,
    },
    /// Attempt number `attempt` failed; the next one comes after a backoff, or at once when a
    /// request kicks (only when nothing listened: a restart in progress, where the next attempt
    /// may well succeed and costs microseconds if not).
    Down { attempt: u64, kickable: bool },
}

/// Why a command got no answer.
#[derive(Debug)]
pub(crate) enum LinkError {
    Down,
    Timeout,
    Redis(redis::RedisError),
    /// A cluster could not route the command (no slot map yet, no node for a slot, endless
    /// redirections): unavailable, like a server that is down.
    Cluster(&'static str),
}

impl LinkError {
    /// True when the server itself is unreachable or unresponsive (not a bad reply).
    pub(crate) fn is_connection(&self) -> bool {
        match self {
            Self::Down | Self::Timeout | Self::Cluster(_) => true,
            Self::Redis(e) => breaks_connection(e),
        }
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Down => f.write_str("not connected"),
            Self::Timeout => f.write_str("timed out"),
            Self::Redis(e) => write!(f, "{e}"),
            Self::Cluster(why) => write!(f, "redis cluster: {why}"),
        }
    }
}

fn breaks_connection(e: &redis::RedisError) -> bool {
    e.is_unrecoverable_error() || e.is_io_error() || e.is_timeout() || e.is_connection_dropped()
}

impl Link {
    /// Starts keeping a connection to `url` in the background.
    /// Never blocks or fails: without a runtime or with a URL the client rejects, the link simply
    /// stays down (logged at error).
    pub(crate) fn new(url: &RedisUrl, locator: Locator, health: Health) -> Self {
        let (state_tx, state) = watch::channel(State::Connecting);
        // A handful of reports is plenty: one is enough to trigger a reconnection.
        let (broken, broken_rx) = mpsc::channel(8);
        let kick = Arc::new(Notify::new());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let session = LinkSession {
                    url: url.clone(),
                    locator,
                    config: AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(CONNECT_TIMEOUT))
                        .set_response_timeout(Some(COMMAND_TIMEOUT)),
                    server: url.to_string(),
                    state: state_tx,
                    broken: broken_rx,
                    generation: 0,
                    attempt: 0,
                    kick: kick.clone(),
                };
                runtime.spawn(reconnect::keep(session, health));
            }
            Err(_) => error!(server = %url, "no async runtime; redis routes unavailable"),
        }
        Self {
            state,
            broken,
            kick,
        }
    }

    /// Runs `pipe` (usually MULTI ... EXEC), bounded by [`COMMAND_TIMEOUT`]. A connection found
    /// dead (a restart, seen first by this command) is reported and the command sent once more
    /// on the keeper's next connection, so the restart costs no stale answer. Every pipeline we
    /// send may run twice: reads, and dead marks (SADD, EXPIRE, PUBLISH) whose repeat is harmless.
    pub(crate) async fn query<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, LinkError> {
        self.query_at(pipe).await.map(|(value, _)| value)
    }

    /// Like [`Link::query`], also naming the server that answered.
    pub(crate) async fn query_at<T: FromRedisValue>(
        &self,
        pipe: &Pipeline,
    ) -> Result<(T, Address), LinkError> {
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut state = self.state.clone();
        let (generation, connection, address) = self.connection(&mut state, None, deadline).await?;
        match self.send(pipe, generation, connection, deadline).await {
            Err(LinkError::Redis(e)) if breaks_connection(&e) => {
                let (generation, connection, address) = self
                    .connection(&mut state, Some(generation), deadline)
                    .await?;
                let value = self.send(pipe, generation, connection, deadline).await?;
                Ok((value, address))
            }
            result => result.map(|value| (value, address)),
        }
    }

    /// The current connection, or the outcome of the attempt in flight (or of one kicked now, see
    /// [`State::Down`]); never the connection of generation `dead`.
    async fn connection(
        &self,
        state: &mut watch::Receiver<State>,
        dead: Option<u64>,
        deadline: Instant,
    ) -> Result<(u64, MultiplexedConnection, Address), LinkError> {
        let usable = |s: &State| match s {
            State::Connecting => false,
            State::Up { generation, .. } => Some(*generation) != dead,
            State::Down { .. } => true,
        };
        let current = match timeout_at(deadline, state.wait_for(usable)).await {
            Err(_) => return Err(LinkError::Timeout),
            Ok(Err(_)) => return Err(LinkError::Down),
            Ok(Ok(current)) => current.clone(),
        };
        match current {
            State::Up {
                generation,
                connection,
                address,
            } => Ok((generation, connection, address)),
            State::Down {
                attempt,
                kickable: true,
            } => self.kicked(state, attempt, deadline).await,
            State::Connecting | State::Down { .. } => Err(LinkError::Down),
        }
    }

    async fn send<T: FromRedisValue>(
        &self,
        pipe: &Pipeline,
        generation: u64,
        mut connection: MultiplexedConnection,
        deadline: Instant,
    ) -> Result<T, LinkError> {
        let result = match timeout_at(deadline, pipe.query_async(&mut connection)).await {
            Err(_) => Err(LinkError::Timeout),
            Ok(Err(e)) => Err(LinkError::Redis(e)),
            Ok(Ok(value)) => Ok(value),
        };
        if result.as_ref().is_err_and(LinkError::is_connection) {
            // Full channel: a report is already pending, which is all the keeper needs.
            let _ = self.broken.try_send(generation);
        }
        result
    }

    /// Asks for an attempt now and waits (within `deadline`) for its outcome, so the first
    /// request after Redis comes back reads the new server rather than its last known answer.
    async fn kicked(
        &self,
        state: &mut watch::Receiver<State>,
        failed: u64,
        deadline: Instant,
    ) -> Result<(u64, MultiplexedConnection, Address), LinkError> {
        self.kick.notify_one();
        let outcome = timeout_at(
            deadline,
            state.wait_for(|s| match s {
                State::Connecting => false,
                State::Down { attempt, .. } => *attempt != failed,
                State::Up { .. } => true,
            }),
        )
        .await;
        match outcome {
            Err(_) => Err(LinkError::Timeout),
            Ok(Err(_)) => Err(LinkError::Down),
            Ok(Ok(current)) => match &*current {
                State::Up {
                    generation,
                    connection,
                    address,
                } => Ok((*generation, connection.clone(), address.clone())),
                State::Connecting | State::Down { .. } => Err(LinkError::Down),
            },
        }
    }
}

/// A client for `address` with the AUTH and SELECT of the driver URL `url`.
pub(crate) fn client(url: &RedisUrl, address: &Address) -> redis::RedisResult<redis::Client> {
    let mut settings = redis::RedisConnectionInfo::default().set_db(url.database);
    if let Some(password) = &url.password {
        settings = settings.set_password(password);
    }
    let info = redis::ConnectionAddr::Tcp(address.host.clone(), address.port)
        .into_connection_info()?
        .set_redis_settings(settings);
    redis::Client::open(info)
}

/// The command connection as a [`Session`] of the reconnect loop: while it is up, requests
/// share it; a request that finds it broken reports so, and the loop reconnects at once.
struct LinkSession {
    url: RedisUrl,
    locator: Locator,
    config: AsyncConnectionConfig,
    server: String,
    state: watch::Sender<State>,
    broken: mpsc::Receiver<u64>,
    generation: u64,
    attempt: u64,
    kick: Arc<Notify>,
}

impl Session for LinkSession {
    type Conn = (MultiplexedConnection, Address);

    async fn connect(&mut self) -> Attempt<Self::Conn> {
        self.attempt += 1;
        let (why, kickable) = match self.locator.locate().await {
            Err(why) => (why, false),
            Ok(address) => {
                let attempt = async {
                    client(&self.url, &address)?
                        .get_multiplexed_async_connection_with_config(&self.config)
                        .await
                };
                match timeout(CONNECT_TIMEOUT, attempt).await {
                    Ok(Ok(connection)) => return Attempt::Connected((connection, address)),
                    Ok(Err(e)) => (e.to_string(), e.is_connection_refusal()),
                    Err(_) => ("connect timed out".to_owned(), false),
                }
            }
        };
        debug!(server = %self.server, error = %why, "redis connect failed");
        self.state.send_replace(State::Down {
            attempt: self.attempt,
            kickable,
        });
        Attempt::Failed(why)
    }

    async fn serve(&mut self, (connection, address): Self::Conn) -> Ended {
        self.generation += 1;
        let generation = self.generation;
        self.state.send_replace(State::Up {
            generation,
            connection,
            address,
        });
        loop {
            tokio::select! {
                report = self.broken.recv() => match report {
                    Some(g) if g == generation => break,
                    Some(_) => continue, // about an older connection
                    None => return Ended::Gone,
                },
                () = self.state.closed() => return Ended::Gone,
                () = self.locator.switched() => break,
            }
        }
        debug!(server = %self.server, "redis connection broken or master switched; reconnecting");
        self.state.send_replace(State::Connecting);
        Ended::Lost
    }

    fn is_gone(&self) -> bool {
        self.state.is_closed()
    }

    async fn kicked(&self) {
        self.kick.notified().await;
    }
}
