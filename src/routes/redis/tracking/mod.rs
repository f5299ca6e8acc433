//! Server-assisted client-side caching: a dedicated RESP3 connection in `CLIENT TRACKING ON BCAST`
//! mode for the `frontend:` and `dead:` prefixes (and `tls:` with `https.redisCertificates`), and
//! the caches it keeps fresh: the host cache, and the certificate cache (`tls:` keys, see
//! [`CertCache`]), under the same rules.
//!
//! Freshness: in `BCAST` mode Redis queues the invalidation push of a write in `beforeSleep`,
//! after the command, and writes pending output newest-queued first: the push leaves before the
//! writer's reply (seen with `strace` on Redis 7.0: the tracking socket's `write` precedes the
//! writer's). So the push is in our socket's receive queue before the writer can act on its
//! reply, but our task may not have read it yet when the writer's next request reaches the proxy.
//! So a lookup never trusts the cache before draining, synchronously, whatever the tracking socket
//! already holds (one non-blocking `recv` straight on the socket, bypassing tokio's cached
//! readiness, which lags on a busy current-thread runtime). An answer read from Redis is cached
//! only if no invalidation, loss or reconnection happened between sending the read and storing it
//! (the epoch of a [`Ticket`]).
//!
//! Our liveness `PING` breaks that order: Redis queues its reply when it reads it, so a write in
//! the same event-loop turn gets its reply written first and its push goes out behind the `PONG`.
//! So while a ping is unanswered no cached answer is served: lookups read Redis (about 50 µs every
//! [`HEARTBEAT`] on loopback). Two writes keep a window of microseconds after the reply, which
//! closing for certain would cost a round trip per request:
//! - `FLUSHALL` / `FLUSHDB`: Redis queues their push while the command runs, so it is written
//!   after the writer's reply.
//! - Any write, with Redis's `io-threads-do-writes`: the I/O threads write replies and pushes in
//!   parallel.
//!
//! Without tracking (Redis < 6, connection lost, reconnecting) nothing is fresh and lookups go to
//! Redis each time; the task ([`reconnect::keep`]) reconnects and caching resumes once tracking is
//! back.
//!
//! A cluster has one tracking connection per master, following the slot map ([`nodes`]), and
//! all of them feed the one cache: tracking is on only while every master's connection is, so
//! a write on any node reaches the cache, and a new master (a failover, a resharding onto a new
//! node) makes every answer stale when its connection comes up.
//! A ping every [`HEARTBEAT`] detects a silent connection. The connection itself (handshake,
//! following, reconnection) is [`connection`]'s.

mod connection;
mod nodes;

use std::io::{self, Read as _, Write as _};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::cache::HostCache;
use super::certs::{CertCache, Certificate};
use super::cluster::slots::SlotMap;
use super::reconnect::{self, Health};
use super::resp::{self, Malformed, Resp};
use super::sentinel::Locator;
use super::Answer;
use crate::config::redis_url::Address;
use crate::config::RedisUrl;
use crate::routes::{lock, Footprint, TLS_PREFIX};

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

/// What the certificate cache says about one `tls:` key.
pub(crate) enum CertCheck {
    /// A fresh answer (`None`: no usable certificate there).
    Hit(Option<Certificate>),
    /// Not cached: read Redis, then [`Tracking::store_certificate`] with this ticket.
    Miss(Ticket),
    /// Tracking is off: read Redis each time.
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
    /// One per tracked server (one, or a cluster's masters); tracking is on while all are up.
    conns: Vec<Conn>,
    cache: HostCache,
    certs: CertCache<Certificate>,
    /// `<prefix>tls:`: invalidations of keys under it go to `certs`.
    cert_prefix: String,
    /// Whether the connections track `tls:` too (`https.redisCertificates`): off, the
    /// handshake is the one it was without the feature (an ACL may not grant the prefix).
    certificates: bool,
    /// Bumped by every invalidation, connection and loss.
    epoch: u64,
    /// Bumped by every new connection, so a task knows whether its socket is still the one.
    generation: u64,
}

/// One tracking connection, kept up by the session numbered `id`.
struct Conn {
    id: u64,
    /// The server it tracks, once connected: the cluster node, or where Sentinel said the
    /// master was.
    node: Option<Address>,
    /// The connection, while it is up.
    socket: Option<Arc<TcpStream>>,
    buf: Vec<u8>,
    generation: u64,
    awaiting_pong: bool,
}

impl Conn {
    fn new(id: u64) -> Self {
        Self {
            id,
            node: None,
            socket: None,
            buf: Vec::new(),
            generation: 0,
            awaiting_pong: false,
        }
    }
}

impl Tracking {
    /// Starts the tracking connection to `url` in the background, caching at most `capacity`
    /// hosts (their bytes published in `footprint`), each answer at most `max_age` when given. Without a runtime tracking stays off and every lookup reads Redis.
    pub(crate) fn start(
        url: &RedisUrl,
        locator: Locator,
        health: Health,
        capacity: usize,
        max_age: Option<Duration>,
        certificates: bool,
        footprint: Footprint,
    ) -> Self {
        let state = State::new(url, capacity, max_age, certificates, footprint);
        lock(&state).conns.push(Conn::new(0));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let session = connection::TrackingSession {
                url: url.clone(),
                locator,
                state: Arc::downgrade(&state),
                id: 0,
                refused_logged: false,
            };
            runtime.spawn(reconnect::keep(session, health));
        }
        Self { state }
    }

    /// Like [`Tracking::start`], for the cluster of `url`: one connection per master of the
    /// slot maps `maps` publishes.
    pub(crate) fn start_cluster(
        url: &RedisUrl,
        maps: watch::Receiver<Arc<SlotMap>>,
        capacity: usize,
        max_age: Option<Duration>,
        certificates: bool,
        footprint: Footprint,
    ) -> Self {
        let state = State::new(url, capacity, max_age, certificates, footprint);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(nodes::follow_masters(
                url.clone(),
                maps,
                Arc::downgrade(&state),
            ));
        }
        Self { state }
    }

    /// Looks `host` up in the cache after applying every invalidation already received.
    pub(crate) fn check(&self, host: &str) -> Check {
        let mut state = self.lock();
        if !state.sync() {
            return Check::Off;
        }
        if state.is_pinging() {
            // An invalidation may be held behind the `PONG` (module doc): read Redis.
            return Check::Miss(Ticket(state.epoch));
        }
        match state.cache.get(host, Instant::now()) {
            Some(answer) => Check::Hit(answer),
            None => Check::Miss(Ticket(state.epoch)),
        }
    }

    /// Records `answer` for `host`, read from the servers `nodes`: fresh until `expires` when
    /// read under a `ticket`, no invalidation (or loss of tracking) came in since, and every
    /// server is tracked; otherwise as its last known answer.
    ///
    /// A server tracked now with the epoch unchanged since the ticket was tracked when the read
    /// went out (a connection coming up moves the epoch): a write there after the read reaches
    /// the cache. A server not tracked (a cluster's slot map moved on before the tracking
    /// connections followed; the command link reached the master Sentinel names now while
    /// tracking still holds the old one) could change the answer unseen, so its answer is not
    /// kept as fresh.
    pub(crate) fn store(
        &self,
        ticket: Option<Ticket>,
        nodes: &[Address],
        host: &str,
        answer: &Option<Answer>,
        expires: Option<Instant>,
    ) {
        let mut state = self.lock();
        let fresh = state.sync()
            && ticket.is_some_and(|t| t.0 == state.epoch)
            && nodes.iter().all(|node| state.tracks(node));
        state
            .cache
            .insert(host, answer, fresh, expires, Instant::now());
    }

    /// The last answer read for `host`, however old: served while Redis is unreachable.
    pub(crate) fn last_known(&self, host: &str) -> Option<Option<Answer>> {
        self.lock().cache.last_known(host)
    }

    /// Up to `limit` hosts the cache holds, the most recently used first.
    pub(crate) fn hosts(&self, limit: usize) -> Vec<String> {
        self.lock().cache.hosts(limit)
    }

    /// Looks the `tls:` key of `name` up in the certificate cache, after applying every
    /// invalidation already received.
    pub(crate) fn check_certificate(&self, name: &str) -> CertCheck {
        let mut state = self.lock();
        if !state.sync() {
            return CertCheck::Off;
        }
        if state.is_pinging() {
            return CertCheck::Miss(Ticket(state.epoch));
        }
        match state.certs.get(name) {
            Some(found) => CertCheck::Hit(found),
            None => CertCheck::Miss(Ticket(state.epoch)),
        }
    }

    /// Records what the `tls:` key of `name` holds, fresh on the terms of [`Tracking::store`];
    /// returns what was known before (for the log of a change).
    pub(crate) fn store_certificate(
        &self,
        ticket: Option<Ticket>,
        nodes: &[Address],
        name: &str,
        certificate: Option<Certificate>,
    ) -> Option<Option<Certificate>> {
        let mut state = self.lock();
        let fresh = state.sync()
            && ticket.is_some_and(|t| t.0 == state.epoch)
            && nodes.iter().all(|node| state.tracks(node));
        state.certs.insert(name, certificate, fresh)
    }

    /// The last certificate read for `name`, however old: served while Redis is unreachable.
    pub(crate) fn last_known_certificate(&self, name: &str) -> Option<Option<Certificate>> {
        self.lock().certs.last_known(name)
    }

    /// Every certificate held, by key name (for the expiry gauge).
    pub(crate) fn certificates(&self) -> Vec<(String, Certificate)> {
        self.lock().certs.loaded()
    }

    /// Sends the liveness ping now on every connection, as the heartbeat does (for tests).
    #[cfg(test)]
    pub(crate) fn ping_now(&self) {
        let mut state = self.lock();
        let ids: Vec<u64> = state.conns.iter().map(|conn| conn.id).collect();
        for id in ids {
            state.ping(id).expect("ping sent");
        }
    }

    /// True while answers are cached.
    pub(crate) fn is_on(&self) -> bool {
        self.lock().sync()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl State {
    fn new(
        url: &RedisUrl,
        capacity: usize,
        max_age: Option<Duration>,
        certificates: bool,
        footprint: Footprint,
    ) -> Arc<Mutex<State>> {
        Arc::new(Mutex::new(State {
            certificates,
            conns: Vec::new(),
            cache: HostCache::new(&url.prefix, capacity, max_age, footprint),
            certs: CertCache::new(super::certs::CAPACITY),
            cert_prefix: format!("{}{TLS_PREFIX}", url.prefix),
            epoch: 0,
            generation: 0,
        }))
    }

    /// Reads and applies whatever the sockets hold. False when tracking is (now) off.
    fn sync(&mut self) -> bool {
        if self.conns.is_empty() {
            return false;
        }
        let mut on = true;
        for at in 0..self.conns.len() {
            let conn = &mut self.conns[at];
            let Some(socket) = &conn.socket else {
                on = false;
                continue;
            };
            let mut buf = std::mem::take(&mut conn.buf);
            let mut outcome = read_available(&SockRef::from(&**socket), &mut buf);
            if outcome.is_ok() {
                outcome = self.apply(at, &mut buf);
            }
            self.conns[at].buf = buf;
            if let Err(why) = outcome {
                let id = self.conns[at].id;
                self.lose(id, why);
                on = false;
            }
        }
        on
    }

    /// Applies the pushes in `buf`, read from connection number `at`, and drops them from it.
    fn apply(&mut self, at: usize, buf: &mut Vec<u8>) -> Result<(), &'static str> {
        let mut used_all = 0;
        let result = self.apply_from(at, buf, &mut used_all);
        buf.drain(..used_all);
        result
    }

    fn apply_from(
        &mut self,
        conn: usize,
        buf: &[u8],
        used_all: &mut usize,
    ) -> Result<(), &'static str> {
        let mut at = 0;
        while let Some((value, used)) =
            resp::parse(&buf[at..]).map_err(|Malformed| "malformed push")?
        {
            at += used;
            match resp::invalidation(&value) {
                Some(keys) => {
                    self.epoch += 1;
                    match keys {
                        Some(keys) => keys.iter().for_each(|key| self.invalidate(key)),
                        None => self.make_all_stale(),
                    }
                }
                None if value == Resp::Text(b"PONG".to_vec()) => {
                    self.conns[conn].awaiting_pong = false;
                }
                None => debug!(reply = ?value, "unexpected reply on the tracking connection"),
            }
            *used_all = at;
        }
        Ok(())
    }

    /// Makes stale what depended on the Redis key `key`: a certificate or host answers.
    fn invalidate(&mut self, key: &[u8]) {
        match key.strip_prefix(self.cert_prefix.as_bytes()) {
            Some(name) => match std::str::from_utf8(name) {
                Ok(name) => self.certs.invalidate(name),
                Err(_) => self.certs.make_all_stale(),
            },
            None => self.cache.invalidate(key),
        }
    }

    fn make_all_stale(&mut self) {
        self.cache.make_all_stale();
        self.certs.make_all_stale();
    }

    /// Sends a liveness ping on connection `id`; an error when the last one is still unanswered
    /// or the ping cannot be sent.
    fn ping(&mut self, id: u64) -> Result<(), &'static str> {
        let Some(conn) = self.conn(id) else {
            return Ok(());
        };
        let Some(socket) = &conn.socket else {
            return Ok(());
        };
        if conn.awaiting_pong {
            return Err("no answer to ping");
        }
        let ping = resp::command(&["PING"]);
        match { &*SockRef::from(&**socket) }.write(&ping) {
            Ok(n) if n == ping.len() => {
                conn.awaiting_pong = true;
                Ok(())
            }
            _ => Err("ping failed"),
        }
    }

    /// Whether the server `node` has its tracking connection up.
    fn tracks(&self, node: &Address) -> bool {
        self.conns
            .iter()
            .any(|conn| conn.node.as_ref() == Some(node) && conn.socket.is_some())
    }

    /// Whether a liveness ping is unanswered on any connection.
    fn is_pinging(&self) -> bool {
        self.conns.iter().any(|conn| conn.awaiting_pong)
    }

    fn conn(&mut self, id: u64) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|conn| conn.id == id)
    }

    /// Puts `socket`, connected to `node`, to use for session `id`; returns its generation (0:
    /// the session is gone).
    fn install(
        &mut self,
        id: u64,
        node: Address,
        socket: Arc<TcpStream>,
        leftover: Vec<u8>,
    ) -> u64 {
        self.generation += 1;
        let generation = self.generation;
        let Some(conn) = self.conn(id) else {
            return 0;
        };
        conn.node = Some(node);
        conn.socket = Some(socket);
        conn.buf = leftover;
        conn.generation = generation;
        conn.awaiting_pong = false;
        self.make_all_stale();
        self.epoch += 1;
        info!("redis tracking enabled");
        generation
    }

    fn lose(&mut self, id: u64, why: &'static str) {
        if let Some(conn) = self.conn(id) {
            conn.buf = Vec::new();
            if conn.socket.take().is_some() {
                warn!(reason = why, "redis tracking lost; querying per request");
            }
        }
        self.make_all_stale();
        self.epoch += 1;
    }

    fn is_current(&self, id: u64, generation: u64) -> bool {
        self.conns
            .iter()
            .any(|conn| conn.id == id && conn.socket.is_some() && conn.generation == generation)
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

#[cfg(test)]
mod tests;
