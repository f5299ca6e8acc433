//! A real `redis-sentinel` per instance, on a free loopback port, watching one master.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::redis::{free_port, RedisServer};
use super::wait::pause;

const REDIS_SENTINEL: &str = "/usr/bin/redis-sentinel";
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The master name every test sentinel watches.
pub(crate) const MASTER: &str = "mymaster";

pub(crate) struct Sentinel {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl Sentinel {
    /// A sentinel watching `master` as [`MASTER`], quorum 2, quick to act: the master counts as
    /// down after 1 s.
    pub(crate) fn start(master: &RedisServer) -> Sentinel {
        assert!(
            std::path::Path::new(REDIS_SENTINEL).exists(),
            "{REDIS_SENTINEL} is missing; install it with: apt-get install -y redis-sentinel"
        );
        let dir = tempfile::tempdir().expect("sentinel temp dir");
        let mut sentinel = Sentinel {
            port: 0,
            dir,
            child: None,
        };
        for _ in 0..5 {
            sentinel.port = free_port();
            if sentinel.spawn(master.port()) {
                return sentinel;
            }
        }
        panic!(
            "redis-sentinel did not start after 5 ports; last log:\n{}",
            sentinel.log()
        );
    }

    /// `127.0.0.1:<port>`, as a `redis-sentinel://` driver lists it.
    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port of the master this sentinel names now.
    pub(crate) fn master_port(&self) -> Option<u16> {
        let (_, port): (String, String) = self
            .query(&["SENTINEL", "get-master-addr-by-name", MASTER])
            .ok()?;
        port.parse().ok()
    }

    /// What this sentinel knows of [`MASTER`]: other sentinels and replicas it has found.
    pub(crate) fn knows(&self, sentinels: usize, replicas: usize) -> bool {
        let Ok(fields) = self.query::<Vec<String>>(&["SENTINEL", "master", MASTER]) else {
            return false;
        };
        let field = |name: &str| -> Option<usize> {
            let at = fields.iter().position(|f| f == name)?;
            fields.get(at + 1)?.parse().ok()
        };
        field("num-other-sentinels") == Some(sentinels) && field("num-slaves") == Some(replicas)
    }

    fn query<T: ::redis::FromRedisValue>(&self, args: &[&str]) -> ::redis::RedisResult<T> {
        let client = ::redis::Client::open(format!("redis://{}", self.address()))?;
        let mut connection = client.get_connection_with_timeout(Duration::from_secs(1))?;
        let mut cmd = ::redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut connection)
    }

    fn spawn(&mut self, master_port: u16) -> bool {
        let config = self.dir.path().join("sentinel.conf");
        let text = format!(
            "port {}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {MASTER} 1000\n\
             sentinel failover-timeout {MASTER} 10000\n",
            self.port,
            self.dir.path().display()
        );
        std::fs::write(&config, text).expect("sentinel config");
        let log = std::fs::File::create(self.dir.path().join("sentinel.log")).expect("log");
        let child = Command::new(REDIS_SENTINEL)
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("sentinel log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {REDIS_SENTINEL}: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if self.query::<String>(&["PING"]).is_ok_and(|p| p == "PONG") {
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

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sentinel.log")).unwrap_or_default()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.stop();
    }
}
