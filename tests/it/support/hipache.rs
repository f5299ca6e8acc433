//! The real binary: config written into a per-test temp dir, `http.port: 0`, started with
//! `NOTIFY_SOCKET` pointing at a datagram socket of the test's own. The master's `READY=1`
//! says every worker serves, and its `STATUS=serving <scheme>://<address> ...` line gives the
//! addresses the ports were bound to, in the config's order.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use super::procfs;
use super::raw_http::{Request, Response};
use super::redis::RedisServer;
use super::wait::{pause, wait_for, wait_until};

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_hipache");
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// A reload starts a generation of workers and waits for them to serve.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A config file in the making, with the temp dir that will hold it and the access log.
pub(crate) struct Config {
    dir: TempDir,
    value: Value,
}

impl Config {
    /// The test defaults, reading routes from `redis`.
    pub(crate) fn redis(redis: &RedisServer) -> Config {
        Config::with_driver(Value::String(redis.url()))
    }

    /// The test defaults, reading routes from a JSON routes file.
    pub(crate) fn file(routes: &Path) -> Config {
        Config::with_driver(Value::String(format!("file:{}", routes.display())))
    }

    fn with_driver(driver: Value) -> Config {
        let dir = tempfile::tempdir().expect("hipache temp dir");
        let access_log = dir.path().join("access.log");
        let value = json!({
            "server": {
                "workers": 1,
                "accessLog": access_log,
                "retryOnError": 3,
                "deadBackendTTL": 30,
                "tcpTimeout": 30,
                "deadBackendOn500": true,
                "httpKeepAlive": false
            },
            "http": { "port": 0, "bind": ["127.0.0.1"] },
            "driver": driver,
            // Tests run as root in CI: stay root rather than drop to www-data, which could not
            // read the 0700 temp dirs the routes file and the access log live in.
            "user": "root"
        });
        Config { dir, value }
    }

    /// Deep-merges `patch` into the config: objects merge key by key, `null` removes the key,
    /// anything else replaces.
    pub(crate) fn with(mut self, patch: Value) -> Config {
        merge(&mut self.value, patch);
        self
    }

    pub(crate) fn access_log(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }

    /// The per-test temp dir, for certificates and other files the config names.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the config file and returns its path (for `run_to_exit`).
    pub(crate) fn write(&self) -> PathBuf {
        let path = self.dir.path().join("config.json");
        let text = serde_json::to_string_pretty(&self.value).expect("config json");
        std::fs::write(&path, text).expect("write config");
        path
    }
}

/// The parent pid from /proc/PID/stat (field 4, after the parenthesised command name).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(&key);
                } else {
                    merge(target.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

pub(crate) struct Hipache {
    child: Option<Child>,
    addr: SocketAddr,
    /// The https listeners, in the config's order.
    https: Vec<SocketAddr>,
    config: Config,
    log: Arc<Mutex<Vec<String>>>,
    /// The master's `sd_notify` datagrams.
    notify: UnixDatagram,
}

impl Hipache {
    pub(crate) fn start(config: Config) -> Hipache {
        Hipache::start_from(config, Path::new(BINARY))
    }

    /// Started from `binary`, a copy of the proxy's (as a package installs it), which a test
    /// may replace on disk as an upgrade would.
    pub(crate) fn start_from(config: Config, binary: &Path) -> Hipache {
        let path = config.write();
        let mut command = Command::new(binary);
        command.arg("--config").arg(&path);
        Hipache::spawn(config, command)
    }

    /// Started under the open-file limits `ulimit` sets with `args` (`-S -n 256`: a soft limit
    /// of 256, as an init system would leave it; `-n 48`: soft and hard).
    pub(crate) fn start_under_ulimit(config: Config, args: &str) -> Hipache {
        Hipache::start_after_shell(config, &format!("ulimit {args}"))
    }

    /// Started by a shell that runs `prelude` first, then execs the binary (so the binary keeps
    /// what `prelude` set up: limits, open descriptors).
    pub(crate) fn start_after_shell(config: Config, prelude: &str) -> Hipache {
        let path = config.write();
        let mut command = Command::new("sh");
        let script = format!("{prelude} && exec \"$0\" \"$@\"");
        command
            .arg("-c")
            .arg(script)
            .arg(BINARY)
            .arg("--config")
            .arg(&path);
        Hipache::spawn(config, command)
    }

    fn spawn(config: Config, mut command: Command) -> Hipache {
        let notify_path = config.dir.path().join("notify.sock");
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
        let mut child = command
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {BINARY}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                lines.lock().expect("hipache log").push(line);
            }
        });
        let mut hipache = Hipache {
            child: Some(child),
            addr: "127.0.0.1:1".parse().expect("placeholder address"),
            https: Vec::new(),
            config,
            log,
            notify,
        };
        let Some(serving) = ready_status(&hipache.notify, START_TIMEOUT) else {
            let status = hipache
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            panic!(
                "hipache exited or sent no READY=1 within {START_TIMEOUT:?} (exit status so far: \
                 {status:?}); stderr:\n{}",
                hipache.log_text()
            );
        };
        for (scheme, address) in serving {
            match scheme.as_str() {
                "http" if hipache.addr.port() == 1 => hipache.addr = address,
                "https" => hipache.https.push(address),
                _ => {}
            }
        }
        hipache
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The running proxy's config file.
    pub(crate) fn config_path(&self) -> PathBuf {
        self.config.dir.path().join("config.json")
    }

    /// Merges `patch` into the running proxy's config file (then send SIGHUP to apply it).
    pub(crate) fn rewrite_config(&mut self, patch: Value) {
        merge(&mut self.config.value, patch);
        self.config.write();
    }

    /// The pids of the master's current children (its workers), from /proc.
    pub(crate) fn worker_pids(&self) -> Vec<u32> {
        let master = self.pid();
        let mut pids: Vec<u32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| parent_of(*pid) == Some(master))
            // A worker that exited stays the master's child until the master reaps it, which
            // on a busy machine can come after a test saw it leave (`is_running`).
            .filter(|pid| super::procfs::is_running(*pid))
            .collect();
        pids.sort_unstable();
        pids
    }

    /// Waits (bounded) until one of the workers holds a connection on which `redis` tracks keys
    /// for it (`CLIENT TRACKING`): from then on, a write there reaches its cache.
    pub(crate) fn wait_for_tracking(&self, redis: &RedisServer) {
        wait_until(
            Duration::from_secs(10),
            &format!(
                "a worker of pid {} tracking keys on {}",
                self.pid(),
                redis.address()
            ),
            || {
                let tracking = redis.tracking_client_ports();
                self.worker_pids()
                    .into_iter()
                    .flat_map(procfs::connected_ports_of)
                    .any(|port| tracking.contains(&port))
            },
        );
    }

    /// Whether every worker closed its listening sockets: each stopped accepting, which is the
    /// first step of its drain.
    pub(crate) fn workers_stopped_accepting(&self) -> bool {
        self.worker_pids()
            .into_iter()
            .all(|worker| procfs::listening_ports_of(worker).is_empty())
    }

    /// Waits (bounded) until `workers_stopped_accepting`.
    pub(crate) fn wait_for_workers_to_stop_accepting(&self) {
        wait_until(
            Duration::from_secs(10),
            "the workers to close their listening sockets",
            || self.workers_stopped_accepting(),
        );
    }

    /// The first https listener.
    pub(crate) fn https_addr(&self) -> SocketAddr {
        self.https_addrs(1)[0]
    }

    /// The first `count` https listeners, in the config's order.
    pub(crate) fn https_addrs(&self, count: usize) -> Vec<SocketAddr> {
        assert!(
            self.https.len() >= count,
            "{count} https listeners asked for, the proxy serves {:?}",
            self.https
        );
        self.https[..count].to_vec()
    }

    /// Every port the proxy serves: the http listener's and the https ones.
    pub(crate) fn proxied_ports(&self) -> Vec<u16> {
        std::iter::once(self.addr.port())
            .chain(self.https.iter().map(SocketAddr::port))
            .collect()
    }

    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("hipache is running").id()
    }

    /// `GET path` with this `Host`.
    pub(crate) fn get(&self, host: &str, path: &str) -> Response {
        Request::get(host, path).send(self.addr)
    }

    pub(crate) fn send(&self, request: &Request) -> Response {
        request.send(self.addr)
    }

    pub(crate) fn access_log(&self) -> PathBuf {
        self.config.access_log()
    }

    pub(crate) fn access_log_lines(&self) -> Vec<String> {
        read_lines(&self.access_log())
    }

    /// Waits (bounded, the log may be written asynchronously) for at least `count` lines.
    pub(crate) fn wait_access_log_lines(&self, count: usize) -> Vec<String> {
        let path = self.access_log();
        wait_for(
            Duration::from_secs(5),
            &format!("{count} line(s) in {}", path.display()),
            || {
                let lines = read_lines(&path);
                (lines.len() >= count).then_some(lines)
            },
        )
    }

    /// Sends SIGHUP and waits (bounded) for the master's `RELOADING=1`, then its `READY=1`: the
    /// reload took (the new generation serves, the old one was told to drain) or was refused
    /// (the running one serves on). Either way the master is done with it.
    pub(crate) fn reload(&self) {
        self.signal(libc::SIGHUP);
        for state in ["RELOADING=1", "READY=1"] {
            let message = next_notification(&self.notify, RELOAD_TIMEOUT, state);
            assert!(
                message.is_some(),
                "no {state} within {RELOAD_TIMEOUT:?} of SIGHUP; stderr:\n{}",
                self.log_text()
            );
        }
    }

    /// The proxy's log (stderr), for tests of what it tells the operator. Not for learning the
    /// proxy's state: that comes from answers, the notify socket, /proc or Redis.
    pub(crate) fn log_lines(&self) -> Vec<String> {
        self.log.lock().expect("hipache log").clone()
    }

    pub(crate) fn signal(&self, signal: libc::c_int) {
        send_signal(self.pid(), signal);
    }

    /// Kills worker `pid` with SIGKILL, as a crash would (no drain, no goodbye to the master).
    pub(crate) fn kill_worker(&self, pid: u32) {
        assert!(
            self.worker_pids().contains(&pid),
            "{pid} is not a worker of {}",
            self.pid()
        );
        send_signal(pid, libc::SIGKILL);
    }

    /// Kills worker `pid` and waits (bounded) for the master to replace it: as many workers as
    /// before, `pid` not among them. Returns the workers then.
    pub(crate) fn replace_worker(&self, pid: u32) -> Vec<u32> {
        let count = self.worker_pids().len();
        self.kill_worker(pid);
        wait_for(
            Duration::from_secs(10),
            &format!("a replacement for worker {pid}"),
            || {
                let now = self.worker_pids();
                (now.len() == count && !now.contains(&pid)).then_some(now)
            },
        )
    }

    /// SIGTERM, then waits (bounded) for the exit status.
    pub(crate) fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().expect("hipache is running");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for hipache") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "hipache did not exit within {STOP_TIMEOUT:?} of SIGTERM; stderr:\n{}",
                    self.log_text()
                );
            }
            pause(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        self.log_lines().join("\n")
    }
}

impl Drop for Hipache {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: kill(2) has no memory effects; `pid` is our own child, not yet reaped.
                #[expect(unsafe_code, reason = "kill(2) to stop the child process we spawned")]
                let _ = unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                pause(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- hipache stderr ----\n{}\n---- end ----",
                self.log_text()
            );
        }
    }
}

/// Sends `signal` to `pid`, a process of the proxy this test started.
fn send_signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory effects; `pid` is our child or one of its workers.
    #[expect(
        unsafe_code,
        reason = "kill(2) to signal a process of the proxy we spawned"
    )]
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
}

/// Reads the master's notifications until one with the line `state` (within `timeout`).
fn next_notification(notify: &UnixDatagram, timeout: Duration, state: &str) -> Option<String> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        notify
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        let n = notify.recv(&mut buf).ok()?;
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        if message.lines().any(|line| line == state) {
            return Some(message);
        }
    }
}

/// Reads the master's notifications until `READY=1` (within `timeout`): the listeners of its
/// `STATUS=serving ...` line, as (scheme, address).
fn ready_status(notify: &UnixDatagram, timeout: Duration) -> Option<Vec<(String, SocketAddr)>> {
    let message = next_notification(notify, timeout, "READY=1")?;
    let status = message
        .lines()
        .find_map(|l| l.strip_prefix("STATUS=serving "))?;
    status
        .split_whitespace()
        .map(|url| {
            let (scheme, address) = url.split_once("://")?;
            Some((scheme.to_owned(), address.parse().ok()?))
        })
        .collect()
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Runs the binary with `args` until it exits (bounded), for `--dry` and broken configs.
pub(crate) fn run_to_exit(args: &[&str]) -> Output {
    let mut command = Command::new(BINARY);
    command.args(args);
    command_to_exit(command)
}

/// Runs `command` (the binary, with the test's own environment or working directory) until it
/// exits (bounded).
pub(crate) fn command_to_exit(mut command: Command) -> Output {
    let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {BINARY}: {e}"));
    let pid = child.id();
    let (done, output) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match output.recv_timeout(START_TIMEOUT) {
        Ok(output) => output.expect("hipache output"),
        Err(_) => {
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // SAFETY: kill(2) has no memory effects; `pid` is our child, reaped by the
                // thread above only once it exits.
                #[expect(unsafe_code, reason = "kill(2) on a child that outlived its deadline")]
                let _ = unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            panic!("hipache {args:?} did not exit within {START_TIMEOUT:?}");
        }
    }
}
