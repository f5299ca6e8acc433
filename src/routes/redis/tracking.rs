//! Server-assisted client-side caching: a dedicated RESP3 connection in `CLIENT TRACKING ON BCAST`
//! mode for the `frontend:` and `dead:` prefixes, and the host cache it keeps fresh.
//!
//! Freshness: Redis queues an invalidation push while it runs the write, before the writer's reply.
//! Both go out in the same event-loop turn, but to two sockets, so our task may not have read the
//! push when the writer's next request reaches the proxy. So a lookup never trusts the cache
//! before draining, synchronously, whatever the tracking socket already holds (one non-blocking
//! `recv` straight on the socket, bypassing tokio's cached readiness, which lags on a busy
//! current-thread runtime). An answer read from Redis is cached only if no invalidation, loss or
//! reconnection happened between sending the read and storing it (the epoch of a [`Ticket`]).
//! What remains is the gap between Redis's two `write`s of that turn (for a single command the
//! writer's reply goes first): a client would have to read its reply and reach the proxy within
//! those microseconds. `tests/it/freshness.rs` (thousands of write-then-request rounds) never
//! sees it; closing it for certain would cost a round trip per request.
//!
//! Without tracking (Redis < 6, connection lost, reconnecting) nothing is fresh and lookups go to
//! Redis each time; the task ([`reconnect::keep`]) reconnects and caching resumes once tracking is
//! back.
//! A ping every [`HEARTBEAT`] detects a silent connection.

use std::io::{self, Read as _, Write as _};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use socket2::SockRef;
use tokio::io::{AsyncWriteExt as _, Interest};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::{debug, info, warn};

use super::cache::HostCache;
use super::reconnect::{self, Attempt, Ended, Health, Session};
use super::resp::{self, Malformed, Resp};
use super::sentinel::Locator;
use super::Answer;
use crate::config::redis_url::Address;
use crate::config::RedisUrl;
use crate::routes::{lock, DEAD_PREFIX, FRONTEND_PREFIX};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Retry delay after Redis refused tracking (too old, or a bad password).
const REFUSED_BACKOFF: Duration = Duration::from_secs(30);
/// Interval of the liveness ping; a ping still unanswered at the next one means the link is lost.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(2);
/// Most unparsed bytes held; past it the stream is deemed broken.
const MAX_BUFFERED: usize = 16 << 20;

/// Cheap-to-clone handle on a worker's tracking state.
#[derive(Clone)]
pub(crate) struct Tracking {
    state: Arc<Mutex<State>>,
}

/// What the cache says about a host.
pub(crate) enum Check {
    /// A fresh answer.
    Hit(Option<Answer>),
    /// Not cached: read Redis, then [`Tracking::store`] with this ticket.
    Miss(Ticket),
    /// Tracking is off: read Redis, then [`Tracking::store`] without a ticket (the answer is
    /// kept as the host's last known one, never served as fresh).
    Off,
}

/// The epoch when a read was sent; storing its answer is refused if anything happened since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

#[cfg(test)]
impl Ticket {
    pub(crate) fn at(epoch: u64) -> Self {
        Self(epoch)
    }
}

struct State {
    /// The tracking connection, while tracking is on.
    socket: Option<Arc<TcpStream>>,
    buf: Vec<u8>,
    cache: HostCache,
    /// Bumped by every invalidation, connection and loss.
    epoch: u64,
    /// Bumped by every new connection, so the task knows whether its socket is still the one.
    generation: u64,
    awaiting_pong: bool,
}

impl Tracking {
    /// Starts the tracking connection to `url` in the background, caching at most `capacity`
    /// hosts, each answer at most `max_age` when given. Without a runtime tracking stays off and every lookup reads Redis.
    pub(crate) fn start(
        url: &RedisUrl,
        locator: Locator,
        health: Health,
        capacity: usize,
        max_age: Option<Duration>,
    ) -> Self {
        let state = Arc::new(Mutex::new(State {
            socket: None,
            buf: Vec::new(),
            cache: HostCache::new(&url.prefix, capacity, max_age),
            epoch: 0,
            generation: 0,
            awaiting_pong: false,
        }));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let session = TrackingSession {
                url: url.clone(),
                locator,
                state: Arc::downgrade(&state),
                refused_logged: false,
            };
            runtime.spawn(reconnect::keep(session, health));
        }
        Self { state }
    }

    /// Looks `host` up in the cache after applying every invalidation already received.
    pub(crate) fn check(&self, host: &str) -> Check {
        let mut state = self.lock();
        if !state.sync() {
            return Check::Off;
        }
        match state.cache.get(host, Instant::now()) {
            Some(answer) => Check::Hit(answer),
            None => Check::Miss(Ticket(state.epoch)),
        }
    }

    /// Records `answer` for `host`: fresh until `expires` when read under a `ticket` and no
    /// invalidation (or loss of tracking) came in since; otherwise as its last known answer.
    pub(crate) fn store(
        &self,
        ticket: Option<Ticket>,
        host: &str,
        answer: &Option<Answer>,
        expires: Option<Instant>,
    ) {
        let mut state = self.lock();
        let fresh = state.sync() && ticket.is_some_and(|t| t.0 == state.epoch);
        state
            .cache
            .insert(host, answer, fresh, expires, Instant::now());
    }

    /// The last answer read for `host`, however old: served while Redis is unreachable.
    pub(crate) fn last_known(&self, host: &str) -> Option<Option<Answer>> {
        self.lock().cache.last_known(host)
    }

    /// True while answers are cached (for tests).
    #[cfg(test)]
    pub(crate) fn is_on(&self) -> bool {
        self.lock().sync()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl State {
    /// Reads and applies whatever the socket holds. False when tracking is (now) off.
    fn sync(&mut self) -> bool {
        let Some(socket) = &self.socket else {
            return false;
        };
        if let Err(why) = read_available(&SockRef::from(&**socket), &mut self.buf) {
            self.lose(why);
            return false;
        }
        if let Err(why) = self.apply() {
            self.lose(why);
            return false;
        }
        true
    }

    fn apply(&mut self) -> Result<(), &'static str> {
        let mut at = 0;
        while let Some((value, used)) =
            resp::parse(&self.buf[at..]).map_err(|Malformed| "malformed push")?
        {
            at += used;
            match resp::invalidation(&value) {
                Some(keys) => {
                    self.epoch += 1;
                    match keys {
                        Some(keys) => keys.iter().for_each(|key| self.cache.invalidate(key)),
                        None => self.cache.make_all_stale(),
                    }
                }
                None if value == Resp::Text(b"PONG".to_vec()) => self.awaiting_pong = false,
                None => debug!(reply = ?value, "unexpected reply on the tracking connection"),
            }
        }
        self.buf.drain(..at);
        Ok(())
    }

    fn install(&mut self, socket: Arc<TcpStream>, leftover: Vec<u8>) -> u64 {
        self.socket = Some(socket);
        self.buf = leftover;
        self.cache.make_all_stale();
        self.epoch += 1;
        self.generation += 1;
        self.awaiting_pong = false;
        info!("redis tracking enabled");
        self.generation
    }

    fn lose(&mut self, why: &'static str) {
        if self.socket.take().is_some() {
            warn!(reason = why, "redis tracking lost; querying per request");
        }
        self.buf = Vec::new();
        self.cache.make_all_stale();
        self.epoch += 1;
    }

    fn is_current(&self, generation: u64) -> bool {
        self.socket.is_some() && self.generation == generation
    }
}

/// Appends what `socket` holds right now to `buf` (never waits). Reads the socket itself rather
/// than through tokio, whose readiness flag may not know yet about bytes already received.
fn read_available(socket: &socket2::Socket, buf: &mut Vec<u8>) -> Result<(), &'static str> {
    let mut chunk = [0u8; 4096];
    loop {
        match { socket }.read(&mut chunk) {
            Ok(0) => return Err("connection closed"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err("read failed"),
        }
        if buf.len() > MAX_BUFFERED {
            return Err("push too large");
        }
    }
}

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
struct TrackingSession {
    url: RedisUrl,
    locator: Locator,
    state: Weak<Mutex<State>>,
    refused_logged: bool,
}

impl Session for TrackingSession {
    type Conn = (TcpStream, Vec<u8>);

    async fn connect(&mut self) -> Attempt<Self::Conn> {
        let address = match self.locator.locate().await {
            Ok(address) => address,
            Err(why) => return Attempt::Failed(why),
        };
        let why = match timeout(CONNECT_TIMEOUT, handshake(&self.url, &address)).await {
            Ok(Ok(connected)) => {
                self.refused_logged = false;
                return Attempt::Connected(connected);
            }
            Ok(Err(HandshakeError::Refused(reply))) => {
                if !self.refused_logged {
                    info!(reply = %reply, "redis tracking unavailable; querying per request");
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

    async fn serve(&mut self, (socket, leftover): Self::Conn) -> Ended {
        let socket = Arc::new(socket);
        let Some(shared) = self.state.upgrade() else {
            return Ended::Gone;
        };
        let generation = lock(&shared).install(socket.clone(), leftover);
        drop(shared);
        follow(&socket, &self.state, generation, &mut self.locator).await;
        if self.is_gone() {
            Ended::Gone
        } else {
            Ended::Lost
        }
    }

    fn is_gone(&self) -> bool {
        self.state.strong_count() == 0
    }
}

/// `HELLO 3 [AUTH default <password>]`, then `CLIENT TRACKING ON BCAST` for the two prefixes, on
/// the server at `address`. Returns the stream and any bytes read past the last reply.
async fn handshake(
    url: &RedisUrl,
    address: &Address,
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
    let track = [&track[..], &["PREFIX", &dead]].concat();
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
                if !current.is_current(generation) {
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
                    Err(_) => current.lose("poll failed"),
                }
                if !current.is_current(generation) {
                    return;
                }
            }
            () = locator.switched() => {
                if let Some(shared) = state.upgrade() {
                    lock(&shared).lose("master switched");
                }
                return;
            }
            _ = heartbeat.tick() => {
                let Some(shared) = state.upgrade() else { return };
                let mut current = lock(&shared);
                if !current.is_current(generation) || !current.sync() {
                    return;
                }
                if current.awaiting_pong {
                    current.lose("no answer to ping");
                    return;
                }
                let ping = resp::command(&["PING"]);
                match { &*SockRef::from(socket) }.write(&ping) {
                    Ok(n) if n == ping.len() => current.awaiting_pong = true,
                    _ => {
                        current.lose("ping failed");
                        return;
                    }
                }
            }
        }
    }
}
