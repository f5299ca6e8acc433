//! A real `redis-server` per test, on a free loopback port, in its own temp dir.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::wait::{pause, wait_until};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const READY_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct RedisServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
    /// More `redis-server` arguments (e.g. `--replicaof`).
    args: Vec<String>,
}

impl RedisServer {
    pub(crate) fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// A replica of `master`, once its replication link is up.
    pub(crate) fn start_replica_of(master: &RedisServer) -> RedisServer {
        let port = master.port.to_string();
        let replica = Self::start_with(&["--replicaof", "127.0.0.1", &port]);
        wait_until(READY_TIMEOUT, "the replica's link to its master", || {
            let info: String = replica.query(&["INFO", "replication"]);
            info.contains("master_link_status:up")
        });
        replica
    }

    /// A cluster-enabled node, alone until joined (see `support::cluster`), its node table in its
    /// own temp dir; a node silent for `node_timeout_ms` counts as failing.
    pub(crate) fn start_cluster_node(node_timeout_ms: u32) -> RedisServer {
        Self::start_with(&[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            &node_timeout_ms.to_string(),
        ])
    }

    fn start_with(args: &[&str]) -> RedisServer {
        assert!(
            Path::new(REDIS_SERVER).exists(),
            "{REDIS_SERVER} is missing; install it with: apt-get install -y redis-server"
        );
        let dir = tempfile::tempdir().expect("redis temp dir");
        let mut server = RedisServer {
            port: 0,
            dir,
            child: None,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!(
            "redis-server did not start after 5 ports; last log:\n{}",
            server.log()
        );
    }

    /// Starts again on the same port, with an empty data set (after `stop`).
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "restart needs a stopped redis-server");
        assert!(
            self.spawn(),
            "redis-server did not restart on port {}:\n{}",
            self.port,
            self.log()
        );
    }

    /// Kills the server and waits for it; the port stays reserved for `restart`.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`, as the proxy names this server in its log.
    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:<port>`, the proxy's `driver`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub(crate) fn connection(&self) -> ::redis::Connection {
        ::redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("connecting to redis at {}: {e}", self.url()))
    }

    /// Runs one command and converts its answer.
    pub(crate) fn query<T: ::redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut cmd = ::redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut self.connection())
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// Runs one command; `None` if the server could not answer (while Sentinel reconfigures it).
    pub(crate) fn try_query<T: ::redis::FromRedisValue>(&self, args: &[&str]) -> Option<T> {
        let mut cmd = ::redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        let client = ::redis::Client::open(self.url()).ok()?;
        let mut connection = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .ok()?;
        cmd.query(&mut connection).ok()
    }

    pub(crate) fn rpush(&self, key: &str, values: &[&str]) {
        let mut args = vec!["RPUSH", key];
        args.extend_from_slice(values);
        let _: i64 = self.query(&args);
    }

    /// Registers `frontend:<host>` as `[id, urls...]`.
    pub(crate) fn frontend(&self, host: &str, id: &str, urls: &[&str]) {
        let mut values = vec![id];
        values.extend_from_slice(urls);
        self.rpush(&format!("frontend:{host}"), &values);
    }

    pub(crate) fn sadd(&self, key: &str, member: &str) {
        let _: i64 = self.query(&["SADD", key, member]);
    }

    /// Members of a set, sorted.
    /// Waits (bounded) until the set at `key` is exactly `expected`: dead marks are written by
    /// the proxy in the background, after the response that caused them.
    pub(crate) fn wait_for_set(&self, key: &str, expected: &[&str]) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let members = self.smembers(key);
            if members == expected {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{key} is {members:?}, expected {expected:?}"
            );
            crate::support::wait::pause(std::time::Duration::from_millis(20));
        }
    }

    /// The client ports of the connections that turned keys tracking on (`CLIENT LIST` flag
    /// `t`), as Redis sees them now.
    pub(crate) fn tracking_client_ports(&self) -> Vec<u16> {
        let clients: String = self.query(&["CLIENT", "LIST"]);
        clients
            .lines()
            .filter(|client| {
                client.split(' ').any(|field| {
                    field
                        .strip_prefix("flags=")
                        .is_some_and(|f| f.contains('t'))
                })
            })
            .filter_map(|client| {
                let addr = client.split(' ').find_map(|f| f.strip_prefix("addr="))?;
                addr.rsplit_once(':')?.1.parse().ok()
            })
            .collect()
    }

    pub(crate) fn smembers(&self, key: &str) -> Vec<String> {
        let mut members: Vec<String> = self.query(&["SMEMBERS", key]);
        members.sort();
        members
    }

    pub(crate) fn ttl(&self, key: &str) -> i64 {
        self.query(&["TTL", key])
    }

    /// Subscribes now (returns once the subscription is active) and records every message.
    pub(crate) fn subscribe(&self, channel: &str) -> Subscription {
        let mut connection = self.connection();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let (ready, subscribed) = mpsc::channel();
        let (channel, record, stop) = (channel.to_owned(), messages.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            let mut pubsub = connection.as_pubsub();
            pubsub.subscribe(&channel).expect("SUBSCRIBE");
            pubsub
                .set_read_timeout(Some(Duration::from_millis(100)))
                .expect("pubsub read timeout");
            let _ = ready.send(());
            while !stop.load(Ordering::SeqCst) {
                if let Ok(message) = pubsub.get_message() {
                    if let Ok(payload) = message.get_payload::<String>() {
                        record.lock().expect("messages").push(payload);
                    }
                }
            }
        });
        subscribed
            .recv_timeout(READY_TIMEOUT)
            .expect("redis SUBSCRIBE did not complete within 10 s");
        Subscription {
            messages,
            done,
            thread: Some(thread),
        }
    }

    /// Starts `MONITOR` (returns once it is on) and records every command Redis runs from then
    /// on, one line each: `<time> [<db> <client address>|lua] "<command>" "<arg>"...`.
    pub(crate) fn monitor(&self) -> Monitor {
        use std::io::{BufRead as _, Write as _};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("monitor");
        stream.write_all(b"MONITOR\r\n").expect("MONITOR");
        let mut reader = std::io::BufReader::new(stream.try_clone().expect("monitor stream"));
        let mut ok = String::new();
        reader.read_line(&mut ok).expect("MONITOR answer");
        assert_eq!(ok, "+OK\r\n", "MONITOR refused");
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("monitor read timeout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let (record, stop) = (lines.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            let mut line = String::new();
            while !stop.load(Ordering::SeqCst) {
                match reader.read_line(&mut line) {
                    Ok(0) => return,
                    Ok(_) if line.ends_with('\n') => {
                        let text = line.trim_end().trim_start_matches('+').to_owned();
                        record.lock().expect("monitor lines").push(text);
                        line.clear();
                    }
                    _ => {}
                }
            }
        });
        Monitor {
            lines,
            done,
            thread: Some(thread),
        }
    }

    fn spawn(&mut self) -> bool {
        let log = std::fs::File::create(self.dir.path().join("redis.log")).expect("redis log");
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("redis log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {REDIS_SERVER}: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if self.answers_ping() {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() {
                self.child = None;
                return false;
            }
            pause(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    fn answers_ping(&self) -> bool {
        let Ok(client) = ::redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return false;
        };
        ::redis::cmd("PING")
            .query::<String>(&mut connection)
            .is_ok_and(|pong| pong == "PONG")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Messages received on one channel, in order.
pub(crate) struct Subscription {
    messages: Arc<Mutex<Vec<String>>>,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Subscription {
    pub(crate) fn messages(&self) -> Vec<String> {
        self.messages.lock().expect("messages").clone()
    }

    /// Waits (bounded) until at least `count` messages arrived and returns them all.
    pub(crate) fn wait_for(&self, count: usize) -> Vec<String> {
        wait_until(
            Duration::from_secs(5),
            &format!("{count} message(s) on the subscribed channel"),
            || self.messages().len() >= count,
        );
        self.messages()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The commands a `MONITOR` connection saw, in the order Redis ran them.
pub(crate) struct Monitor {
    lines: Arc<Mutex<Vec<String>>>,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    /// Every command Redis ran since the monitor started and before `ECHO <marker>`, which this
    /// sends to `redis` and waits (bounded) to see: what ran before the marker is all there.
    pub(crate) fn until_marker(&self, redis: &RedisServer, marker: &str) -> Vec<String> {
        let _: String = redis.query(&["ECHO", marker]);
        let quoted = format!("\"ECHO\" \"{marker}\"");
        wait_until(
            Duration::from_secs(5),
            &format!("ECHO {marker} seen by MONITOR"),
            || self.lines().iter().any(|line| line.ends_with(&quoted)),
        );
        let lines = self.lines();
        let at = lines.iter().position(|line| line.ends_with(&quoted));
        lines[..at.unwrap_or(0)].to_vec()
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("monitor lines").clone()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("free port").port()
}
