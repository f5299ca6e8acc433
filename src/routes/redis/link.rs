//! One Redis server as seen by a worker: a connection kept up by a background task.
//!
//! The task connects (AUTH and SELECT come from the driver URL through [`redis::Client`]),
//! reconnects with exponential backoff when a request reports the connection broken, and publishes
//! the state on a `watch` channel. Requests never wait for a server known to be down: they only
//! wait, within their own deadline, while a connection attempt is in flight. Every command is
//! bounded by [`COMMAND_TIMEOUT`], so a hung Redis cannot hang requests.

use std::fmt;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, IntoConnectionInfo as _, Pipeline};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, timeout, timeout_at, Instant};
use tracing::{debug, error};

use crate::config::RedisUrl;

/// Longest a request waits for one Redis answer (including waiting for a connection in flight).
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest one connection attempt may take, handshake (AUTH, SELECT) included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnection backoff bounds: quick after a blip, at most a few seconds when Redis stays away.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(3);

/// Cheap-to-clone handle on one server's connection.
#[derive(Clone)]
pub(crate) struct Link {
    state: watch::Receiver<State>,
    broken: mpsc::Sender<u64>,
}

#[derive(Clone)]
enum State {
    /// A connection attempt is in flight (at startup, or right after a break).
    Connecting,
    Up {
        generation: u64,
        connection: MultiplexedConnection,
    },
    /// The last attempt failed; the next one comes after a backoff.
    Down,
}

/// Why a command got no answer.
#[derive(Debug)]
pub(crate) enum LinkError {
    Down,
    Timeout,
    Redis(redis::RedisError),
}

impl LinkError {
    /// True when the server itself is unreachable or unresponsive (not a bad reply).
    pub(crate) fn is_connection(&self) -> bool {
        match self {
            Self::Down | Self::Timeout => true,
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
        }
    }
}

fn breaks_connection(e: &redis::RedisError) -> bool {
    e.is_unrecoverable_error() || e.is_io_error() || e.is_timeout() || e.is_connection_dropped()
}

impl Link {
    /// Starts keeping a connection to `url` in the background. Never blocks or fails: without a
    /// runtime or with a URL the client rejects, the link simply stays down (logged at error).
    pub(crate) fn new(url: &RedisUrl) -> Self {
        let (state_tx, state) = watch::channel(State::Connecting);
        // A handful of reports is plenty: one is enough to trigger a reconnection.
        let (broken, broken_rx) = mpsc::channel(8);
        match (client(url), tokio::runtime::Handle::try_current()) {
            (Ok(client), Ok(runtime)) => {
                runtime.spawn(keep(client, url.to_string(), state_tx, broken_rx));
            }
            (Err(e), _) => {
                error!(server = %url, error = %e, "invalid redis settings; routes unavailable");
            }
            (_, Err(_)) => error!(server = %url, "no async runtime; redis routes unavailable"),
        }
        Self { state, broken }
    }

    /// Runs `pipe` (usually MULTI ... EXEC), bounded by [`COMMAND_TIMEOUT`].
    pub(crate) async fn query<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, LinkError> {
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut state = self.state.clone();
        let (generation, mut connection) = match timeout_at(
            deadline,
            state.wait_for(|s| !matches!(s, State::Connecting)),
        )
        .await
        {
            Err(_) => return Err(LinkError::Timeout),
            Ok(Err(_)) => return Err(LinkError::Down),
            Ok(Ok(current)) => match &*current {
                State::Up {
                    generation,
                    connection,
                } => (*generation, connection.clone()),
                State::Connecting | State::Down => return Err(LinkError::Down),
            },
        };
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
}

fn client(url: &RedisUrl) -> redis::RedisResult<redis::Client> {
    let mut settings = redis::RedisConnectionInfo::default().set_db(url.database);
    if let Some(password) = &url.password {
        settings = settings.set_password(password);
    }
    let info = redis::ConnectionAddr::Tcp(url.host.clone(), url.port)
        .into_connection_info()?
        .set_redis_settings(settings);
    redis::Client::open(info)
}

/// The background task: connect, publish, wait for a break report, repeat. Ends when every
/// [`Link`] handle is dropped.
async fn keep(
    client: redis::Client,
    server: String,
    state: watch::Sender<State>,
    mut broken: mpsc::Receiver<u64>,
) {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT));
    let mut backoff = MIN_BACKOFF;
    let mut generation = 0;
    loop {
        let attempt = timeout(
            CONNECT_TIMEOUT,
            client.get_multiplexed_async_connection_with_config(&config),
        );
        let outcome = tokio::select! {
            outcome = attempt => outcome,
            () = state.closed() => return,
        };
        match outcome {
            Ok(Ok(connection)) => {
                generation += 1;
                backoff = MIN_BACKOFF;
                debug!(server = %server, "redis connected");
                state.send_replace(State::Up {
                    generation,
                    connection,
                });
                loop {
                    tokio::select! {
                        report = broken.recv() => match report {
                            Some(g) if g == generation => break,
                            Some(_) => continue, // about an older connection
                            None => return,
                        },
                        () = state.closed() => return,
                    }
                }
                debug!(server = %server, "redis connection broken; reconnecting");
                state.send_replace(State::Connecting);
                continue;
            }
            Ok(Err(e)) => debug!(server = %server, error = %e, "redis connect failed"),
            Err(_) => debug!(server = %server, "redis connect timed out"),
        }
        state.send_replace(State::Down);
        tokio::select! {
            () = sleep(backoff) => {}
            () = state.closed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
