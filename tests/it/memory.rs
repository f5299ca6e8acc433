//! The memory watchdog (`server.memoryLimit`) in the production shape, a root master with
//! workers as `nobody`: what the routes hold (the Redis source's cache, the file source's table)
//! never retires a worker, and a worker over the limit from its start is not retired in a loop.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tempfile::TempDir;

use crate::support::wait::wait_for;
use crate::support::{wait_until, Backend, Config, Hipache, RedisServer};

const MIB: u64 = 1 << 20;

/// The production shape, one worker, its memory read every second and logged (`debug`).
fn watched(config: Config, memory_limit_mib: u64) -> Config {
    config.with(json!({
        "user": "nobody",
        "group": "nogroup",
        "server": {
            "workers": 1,
            "debug": true,
            "httpKeepAlive": true,
            "accessLog": "",
            "memoryLimit": memory_limit_mib,
            "memoryCheckInterval": 1,
        },
    }))
}

/// A check the watchdog logged: (rss, routes) bytes.
fn checks(hipache: &Hipache) -> Vec<(u64, u64)> {
    let field = |line: &str, name: &str| -> Option<u64> {
        line.split(&format!("{name}="))
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    hipache
        .log_lines()
        .iter()
        .filter(|l| l.contains("memory checked"))
        .filter_map(|l| Some((field(l, "rss_bytes")?, field(l, "routes_bytes")?)))
        .collect()
}

fn retirements(hipache: &Hipache) -> usize {
    (hipache.log_lines().iter())
        .filter(|l| l.contains("retiring") || l.contains("retired"))
        .count()
}

fn vm_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("worker status");
    let kib: u64 = (status.lines())
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// Asks for `count` hosts never asked before (names of 200 bytes, so each costs its cache a few
/// hundred bytes), pipelined on one keep-alive connection, and reads every answer.
fn ask_new_hosts(addr: SocketAddr, first: usize, count: usize) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut requests = String::new();
    for n in first..first + count {
        let host = format!("h{n:0>195}.test");
        requests.push_str(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"));
    }
    stream.write_all(requests.as_bytes()).expect("send");
    let mut answers = Vec::new();
    let mut buf = [0u8; 65536];
    let answered = |answers: &[u8]| answers.windows(12).filter(|w| w == b"HTTP/1.1 200").count();
    while answered(&answers) < count {
        let read = stream.read(&mut buf).expect("answers");
        assert!(read > 0, "closed after {} answers", answered(&answers));
        answers.extend_from_slice(&buf[..read]);
    }
}

#[test]
fn a_worker_whose_growth_is_its_route_cache_is_not_retired() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    redis.frontend("*", "any", &[&backend.url()]);
    // What a worker of this shape weighs once serving: the limit is set a few MiB above it, so
    // the cache alone takes the worker past it.
    let probe = Hipache::start(watched(Config::redis(&redis), 4096));
    ask_new_hosts(probe.addr(), 0, 200);
    let start = vm_rss_bytes(probe.worker_pids()[0]);
    drop(probe);
    let limit_mib = start / MIB + 3;
    let hipache = Hipache::start(watched(Config::redis(&redis), limit_mib));
    hipache.wait_for_tracking(&redis);
    let worker = hipache.worker_pids();
    // New hosts until a check sees the worker's RSS at or over the limit, with its cache holding
    // what takes it there.
    let mut asked = 200;
    let (rss, routes) = wait_for(Duration::from_secs(120), "a check over the limit", || {
        if let Some(&(rss, routes)) = checks(&hipache).last() {
            if rss >= limit_mib * MIB {
                return Some((rss, routes));
            }
        }
        // Eight connections at once: each new host waits for its Redis lookup.
        std::thread::scope(|scope| {
            for part in 0..8 {
                let addr = hipache.addr();
                scope.spawn(move || ask_new_hosts(addr, asked + part * 500, 500));
            }
        });
        asked += 4_000;
        None
    });
    eprintln!(
        "{asked} hosts: rss {rss}, cache {routes}, limit {} MiB",
        limit_mib
    );
    assert!(rss - routes < limit_mib * MIB, "rss {rss}, cache {routes}");
    // One more check after it, the watchdog has seen it twice.
    let seen = checks(&hipache).len();
    wait_until(Duration::from_secs(10), "one more memory check", || {
        checks(&hipache).len() > seen
    });
    assert_eq!(
        retirements(&hipache),
        0,
        "{}",
        hipache.log_lines().join("\n")
    );
    assert_eq!(hipache.worker_pids(), worker);
}

/// A routes file readable by `nobody`, with `count` frontends.
fn big_routes_file(count: usize, backend: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("routes dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut routes = Map::new();
    for n in 0..count {
        let list = json!([format!("app{}", n % 100), backend]);
        routes.insert(format!("frontend:h{n}.big.test"), list);
    }
    let path = dir.path().join("routes.json");
    std::fs::write(&path, Value::Object(routes).to_string()).expect("routes");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    (dir, path)
}

#[test]
fn a_worker_over_the_limit_from_its_start_is_not_retired_in_a_loop() {
    let backend = Backend::named("b1");
    let (_dir, routes) = big_routes_file(50_000, &backend.url());
    // 1 MiB: any worker is over it from its start, table or not.
    let hipache = Hipache::start(watched(Config::file(&routes), 1));
    assert_eq!(hipache.get("h7.big.test", "/").status, 200);
    let worker = hipache.worker_pids();
    let error = "worker over the memory limit from its start";
    wait_until(Duration::from_secs(10), "the error at start", || {
        hipache.log_lines().iter().any(|l| l.contains(error))
    });
    // Three checks after it: before, the worker was retired and replaced at every one.
    wait_until(Duration::from_secs(15), "three memory checks", || {
        checks(&hipache).len() >= 3
    });
    let log = hipache.log_lines();
    assert_eq!(log.iter().filter(|l| l.contains(error)).count(), 1);
    assert_eq!(retirements(&hipache), 0, "{}", log.join("\n"));
    assert_eq!(hipache.worker_pids(), worker);
    let (_, table) = checks(&hipache)[0];
    assert!(table > 4 * MIB, "the table's bytes are counted: {table}");
    assert_eq!(hipache.get("h49999.big.test", "/").status, 200);
}
