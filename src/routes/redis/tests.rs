//! Real-Redis tests of the Redis route source: a `redis-server` per test, on a free port.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

pub(super) const TTL: Duration = Duration::from_secs(30);
pub(super) const DEADLINE: Duration = Duration::from_secs(10);
pub(super) const LIMITS: CacheLimits = CacheLimits {
    hosts: 1_000,
    max_age: None,
};

/// A throwaway `redis-server`, killed and waited on when dropped.
pub(crate) struct RedisServer {
    child: Child,
    pub(super) port: u16,
    args: Vec<String>,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub(crate) async fn start(args: &[&str]) -> Self {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if let Some(server) = Self::start_on(port, args).await {
                return server;
            }
        }
        panic!("redis-server did not start on any free port");
    }

    /// `None` when the server exited at once (port taken meanwhile).
    pub(super) async fn start_on(port: u16, args: &[&str]) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("/usr/bin/redis-server");
        command
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir"])
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("redis-server missing: apt-get install -y redis-server")
            }
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        let args = args.iter().map(|s| s.to_string()).collect();
        let mut server = Self {
            child,
            port,
            args,
            _dir: dir,
        };
        let deadline = Instant::now() + DEADLINE;
        loop {
            if server.child.try_wait().unwrap().is_some() {
                return None;
            }
            if server.answers_ping() {
                return Some(server);
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} never answered PING"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut reply = [0u8; 64];
        stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let n = stream
            .write_all(b"PING\r\n")
            .and_then(|()| stream.read(&mut reply))
            .unwrap_or(0);
        // With --requirepass the server answers NOAUTH, which also proves it is up.
        reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH")
    }

    pub(crate) fn url(&self, rest: &str) -> RedisUrl {
        RedisUrl::parse(&format!("redis://{rest}127.0.0.1:{}", self.port)).unwrap()
    }

    /// A plain connection for the test's own commands, to database `db`.
    pub(super) async fn connection(&self, db: i64) -> redis::aio::MultiplexedConnection {
        let mut settings = redis::RedisConnectionInfo::default().set_db(db);
        if let Some(i) = self.args.iter().position(|a| a == "--requirepass") {
            settings = settings.set_password(&self.args[i + 1]);
        }
        let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
            "127.0.0.1".into(),
            self.port,
        ))
        .unwrap()
        .set_redis_settings(settings);
        redis::Client::open(info)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    pub(super) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(super) async fn run<T: redis::FromRedisValue>(
    conn: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> T {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(conn).await.unwrap()
}

pub(super) async fn id_of(routes: &RedisRoutes, host: &str) -> Option<String> {
    routes
        .lookup(host)
        .await
        .unwrap()
        .map(|l| l.frontend.id.to_string())
}

/// Subscribes to the `dead` channel with a raw connection and waits for `message`.
struct DeadChannel(tokio::net::TcpStream);

impl DeadChannel {
    async fn subscribe(port: u16) -> Self {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream.write_all(b"SUBSCRIBE dead\r\n").await.unwrap();
        let mut channel = Self(stream);
        channel.wait_for("subscribe").await;
        channel
    }

    async fn wait_for(&mut self, text: &str) {
        let mut seen = Vec::new();
        let read = async {
            while !String::from_utf8_lossy(&seen).contains(text) {
                let mut buf = [0u8; 512];
                let n = self.0.read(&mut buf).await.unwrap();
                assert!(n > 0, "subscription closed");
                seen.extend_from_slice(&buf[..n]);
            }
        };
        tokio::time::timeout(DEADLINE, read)
            .await
            .unwrap_or_else(|_| panic!("no {text:?}"));
    }
}

#[tokio::test]
async fn lookup_tries_exact_then_wildcards_then_star() {
    let redis = RedisServer::start(&[]).await;
    let mut conn = redis.connection(0).await;
    run::<()>(
        &mut conn,
        &["RPUSH", "frontend:www.example.com", "exact", "http://h:1"],
    )
    .await;
    run::<()>(
        &mut conn,
        &["RPUSH", "frontend:*.example.com", "wild", "http://h:2"],
    )
    .await;
    run::<()>(&mut conn, &["RPUSH", "frontend:*", "star", "http://h:3"]).await;
    let url = redis.url("");
    let routes = RedisRoutes::new(&url, &url, TTL, LIMITS, false, Footprint::default());
    assert_eq!(
        id_of(&routes, "www.example.com").await.as_deref(),
        Some("exact")
    );
    // No list for a.example.com (an empty list does not exist in Redis): the wildcard wins.
    assert_eq!(
        id_of(&routes, "a.example.com").await.as_deref(),
        Some("wild")
    );
    assert_eq!(
        id_of(&routes, "elsewhere.test").await.as_deref(),
        Some("star")
    );
    run::<()>(&mut conn, &["DEL", "frontend:*"]).await;
    assert_eq!(id_of(&routes, "elsewhere.test").await, None);
    let lookup = routes.lookup("www.example.com").await.unwrap().unwrap();
    assert_eq!(lookup.frontend.backends[0].url.as_str(), "http://h:1/");
}

#[tokio::test]
async fn password_database_and_prefix_are_applied() {
    let redis = RedisServer::start(&["--requirepass", "secret"]).await;
    let mut db3 = redis.connection(3).await;
    let mut db0 = redis.connection(0).await;
    run::<()>(
        &mut db3,
        &[
            "RPUSH",
            "hp:frontend:a.test",
            "prefixed",
            "http://h:1",
            "http://h:2",
        ],
    )
    .await;
    run::<()>(&mut db3, &["SADD", "hp:dead:a.test", "1", "garbage"]).await;
    run::<()>(
        &mut db3,
        &["RPUSH", "frontend:a.test", "unprefixed", "http://h:1"],
    )
    .await;
    run::<()>(
        &mut db0,
        &["RPUSH", "hp:frontend:a.test", "db0", "http://h:1"],
    )
    .await;
    let url = redis.url(":secret@");
    let url = RedisUrl {
        database: 3,
        prefix: "hp:".into(),
        ..url
    };
    let routes = RedisRoutes::new(&url, &url, TTL, LIMITS, false, Footprint::default());
    let lookup = routes.lookup("a.test").await.unwrap().unwrap();
    assert_eq!(&*lookup.frontend.id, "prefixed");
    assert_eq!(lookup.frontend.key, "a.test");
    assert_eq!(lookup.dead, [1]);
}

#[tokio::test]
async fn a_user_refused_scripts_and_transactions_looks_up() {
    let redis = RedisServer::start(&[]).await;
    let mut conn = redis.connection(0).await;
    run::<()>(
        &mut conn,
        &["RPUSH", "frontend:a.test", "a", "http://h:1", "http://h:2"],
    )
    .await;
    run::<()>(&mut conn, &["SADD", "dead:a.test", "0"]).await;
    // A lookup is plain reads: it needs neither scripting nor MULTI.
    let refused = ["ACL", "SETUSER", "default", "-@scripting", "-@transaction"];
    run::<()>(&mut conn, &refused).await;
    let url = redis.url("");
    let routes = RedisRoutes::new(&url, &url, TTL, LIMITS, false, Footprint::default());
    for _ in 0..2 {
        let lookup = routes.lookup("a.test").await.unwrap().unwrap();
        assert_eq!(
            (&*lookup.frontend.id, lookup.dead.as_slice()),
            ("a", &[0][..])
        );
    }
}

#[tokio::test]
async fn mark_dead_writes_dead_set_with_ttl_and_publishes() {
    let redis = RedisServer::start(&[]).await;
    let mut conn = redis.connection(0).await;
    let (a, b) = ("http://127.0.0.1:39947", "http://127.0.0.1:39948");
    run::<()>(&mut conn, &["RPUSH", "p:frontend:*.local", "pub", a, b]).await;
    let url = RedisUrl {
        prefix: "p:".into(),
        ..redis.url("")
    };
    let routes = RedisRoutes::new(&url, &url, TTL, LIMITS, false, Footprint::default());
    let lookup = routes.lookup("pub.local").await.unwrap().unwrap();
    let mut channel = DeadChannel::subscribe(redis.port).await;

    routes.mark_dead("pub.local", &lookup.frontend, &lookup.frontend.backends[0]);
    channel
        .wait_for("pub.local;http://127.0.0.1:39947/;0;2")
        .await;
    let members: Vec<String> = run(&mut conn, &["SMEMBERS", "p:dead:pub.local"]).await;
    assert_eq!(members, ["0"]);
    let ttl: i64 = run(&mut conn, &["TTL", "p:dead:pub.local"]).await;
    assert!((1..=30).contains(&ttl), "ttl {ttl}");
    assert_eq!(routes.lookup("pub.local").await.unwrap().unwrap().dead, [0]);
}

#[tokio::test]
async fn fresh_hchecker_ping_stops_dead_set_writes_but_not_publish() {
    let redis = RedisServer::start(&[]).await;
    let mut conn = redis.connection(0).await;
    run::<()>(
        &mut conn,
        &["RPUSH", "frontend:a.test", "a", "http://h:1", "http://h:2"],
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let now = now.as_secs().to_string();
    run::<()>(&mut conn, &["SET", "hchecker_ping", &now]).await;
    let url = redis.url("");
    let routes = RedisRoutes::new(&url, &url, TTL, LIMITS, false, Footprint::default());
    let deadline = Instant::now() + DEADLINE;
    while routes.passive_checks() {
        assert!(
            Instant::now() < deadline,
            "hchecker heartbeat never noticed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lookup = routes.lookup("a.test").await.unwrap().unwrap();
    let mut channel = DeadChannel::subscribe(redis.port).await;

    routes.mark_dead("a.test", &lookup.frontend, &lookup.frontend.backends[1]);
    channel.wait_for("a.test;http://h:2/;1;2").await;
    let exists: i64 = run(&mut conn, &["EXISTS", "dead:a.test"]).await;
    assert_eq!(exists, 0);
    assert!(routes
        .lookup("a.test")
        .await
        .unwrap()
        .unwrap()
        .dead
        .is_empty());
}

#[tokio::test]
async fn unreachable_redis_serves_known_hosts_and_recovers_after_restart() {
    let mut redis = RedisServer::start(&[]).await;
    let mut conn = redis.connection(0).await;
    run::<()>(
        &mut conn,
        &["RPUSH", "frontend:known.test", "known", "http://h:1"],
    )
    .await;
    let url = redis.url("");
    let routes = RedisRoutes::new(&url, &url, TTL, LIMITS, false, Footprint::default());
    assert_eq!(id_of(&routes, "known.test").await.as_deref(), Some("known"));

    redis.kill();
    for _ in 0..3 {
        assert_eq!(id_of(&routes, "known.test").await.as_deref(), Some("known"));
        let unknown = routes.lookup("unknown.test").await;
        assert!(
            matches!(unknown, Err(RouteError::Unavailable { .. })),
            "{unknown:?}"
        );
    }

    let port = redis.port;
    let restarted = RedisServer::start_on(port, &[])
        .await
        .expect("port taken before restart");
    let mut conn = restarted.connection(0).await;
    run::<()>(
        &mut conn,
        &[
            "RPUSH",
            "frontend:known.test",
            "after restart",
            "http://h:1",
        ],
    )
    .await;
    let deadline = Instant::now() + DEADLINE;
    while id_of(&routes, "known.test").await.as_deref() != Some("after restart") {
        assert!(Instant::now() < deadline, "lookups never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(id_of(&routes, "unknown.test").await, None);
}
