//! Master and workers: a killed worker is replaced, SIGHUP reloads under load without a failed
//! request, SIGTERM lets slow requests finish, and the memory watchdog retires workers while
//! traffic keeps flowing. Each test prints its request figures (`--nocapture` shows them).

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::backend::Backend;
use crate::support::hipache::{Config, Hipache};
use crate::support::raw_http::Request;
use crate::support::redis::RedisServer;
use crate::support::wait::wait_until;

/// A bounded client loop: one request per connection, counting answers that are not 200.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// Upper bound on a load loop's life, whatever the test does.
const LOAD_LIMIT: Duration = Duration::from_secs(60);

impl Load {
    fn start(addr: SocketAddr, host: &'static str) -> Load {
        let (stop, sent, failed) = (Arc::default(), Arc::default(), Arc::default());
        let (stop2, sent2, failed2): (Arc<AtomicBool>, Arc<AtomicU64>, Arc<AtomicU64>) =
            (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&failed));
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while !stop2.load(Ordering::SeqCst) && started.elapsed() < LOAD_LIMIT {
                let ok = Request::get(host, "/")
                    .try_send(addr)
                    .is_ok_and(|r| r.status == 200);
                sent2.fetch_add(1, Ordering::SeqCst);
                if !ok {
                    failed2.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Load {
            stop,
            sent,
            failed,
            thread: Some(thread),
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Lets at least `more` further requests through, so an event is surrounded by traffic.
    fn wait_for_more(&self, more: u64) {
        let target = self.sent() + more;
        wait_until(Duration::from_secs(20), "more load requests", || {
            self.sent() >= target
        });
    }

    /// Stops the loop; returns (sent, failed).
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("load thread");
        }
        (self.sent(), self.failed.load(Ordering::SeqCst))
    }
}

fn proxy_with_backend(workers: u32, extra: serde_json::Value) -> (RedisServer, Backend, Hipache) {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    redis.frontend("load.test", "load", &[&backend.url()]);
    let config = Config::redis(&redis)
        .with(json!({ "server": { "workers": workers } }))
        .with(extra);
    let hipache = Hipache::start(config);
    (redis, backend, hipache)
}

#[test]
fn killed_worker_is_replaced_and_only_its_in_flight_requests_fail() {
    let (_redis, _backend, hipache) = proxy_with_backend(2, json!({}));
    wait_until(Duration::from_secs(10), "two workers", || {
        hipache.worker_pids().len() == 2
    });
    let before = hipache.worker_pids();
    let load = Load::start(hipache.addr(), "load.test");
    load.wait_for_more(50);
    hipache.replace_worker(before[0]);
    load.wait_for_more(50);
    let (sent, failed) = load.finish();
    eprintln!("kill -9 of a worker: {sent} requests sent, {failed} failed");
    // One sequential client has at most one request in flight on the killed worker.
    assert!(failed <= 1, "{failed} of {sent} requests failed");
    // The log is the behaviour here: the master reports the death.
    assert!(hipache
        .log_lines()
        .iter()
        .any(|l| l.contains("worker died")));
}

#[test]
fn sighup_under_load_applies_the_new_config_without_a_failed_request() {
    let (_redis, _backend, mut hipache) = proxy_with_backend(2, json!({}));
    let pages = tempfile::tempdir().expect("pages dir");
    std::fs::write(pages.path().join("error_400.html"), "reloaded 400 page").expect("page");
    assert!(!hipache.get("unknown.test", "/").text().contains("reloaded"));
    let load = Load::start(hipache.addr(), "load.test");
    load.wait_for_more(50);
    let before = hipache.worker_pids();
    hipache.rewrite_config(json!({ "server": { "staticDir": pages.path() } }));
    hipache.reload();
    wait_until(Duration::from_secs(10), "the old workers to exit", || {
        let now = hipache.worker_pids();
        now.len() == 2 && now.iter().all(|pid| !before.contains(pid))
    });
    load.wait_for_more(50);
    let (sent, failed) = load.finish();
    eprintln!("SIGHUP reload under load: {sent} requests sent, {failed} failed");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed during the reload"
    );
    assert_eq!(hipache.get("unknown.test", "/").text(), "reloaded 400 page");
}

#[test]
fn broken_config_on_sighup_keeps_the_running_workers() {
    let (_redis, _backend, mut hipache) = proxy_with_backend(1, json!({}));
    let before = hipache.worker_pids();
    hipache.rewrite_config(json!({ "server": { "workers": "ten" } }));
    hipache.reload();
    // The log is the behaviour here: the operator learns why, down to the key. Bounded: stderr
    // reaches the test through a pipe and a thread, possibly after the notification.
    wait_until(
        Duration::from_secs(10),
        "the refusal naming the key",
        || {
            hipache
                .log_lines()
                .iter()
                .any(|l| l.contains("reload failed") && l.contains("server.workers"))
        },
    );
    assert_eq!(hipache.worker_pids(), before);
    assert_eq!(hipache.get("load.test", "/").status, 200);
}

#[test]
fn sigterm_lets_slow_requests_finish_then_exits_0() {
    let redis = RedisServer::start();
    let slow = Backend::builder()
        .name("slow")
        .delay(Duration::from_millis(1500))
        .start();
    redis.frontend("slow.test", "slow", &[&slow.url()]);
    let mut hipache =
        Hipache::start(Config::redis(&redis).with(json!({ "server": { "workers": 2 } })));
    let addr = hipache.addr();
    let in_flight: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || Request::get("slow.test", "/").try_send(addr)))
        .collect();
    wait_until(
        Duration::from_secs(10),
        "the slow requests to reach the backend",
        || slow.request_count() == 3,
    );
    let status = hipache.stop();
    for request in in_flight {
        let response = request
            .join()
            .expect("client thread")
            .expect("slow request answered");
        assert_eq!((response.status, response.text()), (200, "slow".to_owned()));
    }
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn memory_watchdog_retires_a_worker_that_grows_while_requests_keep_succeeding() {
    // 1 MiB is below any worker's footprint: the worker is over it from its start, so it is
    // kept until it grows by the watchdog's margin (8 MiB at such a limit).
    let limits = json!({ "server": { "memoryLimit": 1, "memoryCheckInterval": 1 } });
    let (_redis, _backend, hipache) = proxy_with_backend(1, limits);
    let load = Load::start(hipache.addr(), "load.test");
    wait_until(Duration::from_secs(10), "the error at start", || {
        (hipache.log_lines().iter()).any(|l| l.contains("over the memory limit from its start"))
    });
    // The log is how the operator tells a retirement from a crash, which the worker pids do
    // not.
    let retired = |hipache: &Hipache| {
        hipache
            .log_lines()
            .iter()
            .filter(|l| l.contains("worker retiring"))
            .count()
    };
    // Growth the routes do not account for: 200 connections each holding a 60 KiB head not
    // finished yet (12 MiB of read buffers).
    let heads: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut stream = TcpStream::connect(hipache.addr()).expect("connect");
            let head = format!(
                "GET / HTTP/1.1\r\nHost: load.test\r\nX-Big: {}",
                "a".repeat(60 * 1024)
            );
            stream.write_all(head.as_bytes()).expect("partial head");
            stream
        })
        .collect();
    wait_until(Duration::from_secs(20), "a retirement", || {
        retired(&hipache) >= 1
    });
    drop(heads);
    // Traffic after the retirement too: the replacement serves.
    load.wait_for_more(20);
    let (sent, failed) = load.finish();
    eprintln!(
        "watchdog retirements ({}): {sent} requests sent, {failed} failed",
        retired(&hipache)
    );
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed while workers retired"
    );
    assert!(sent > 0);
}

#[test]
fn worker_crashing_at_start_is_restarted_with_a_growing_delay() {
    let routes = tempfile::tempdir().expect("routes dir");
    let path = routes.path().join("routes.json");
    std::fs::write(&path, r#"{"frontend:a.test": ["a", "http://127.0.0.1:9"]}"#).expect("routes");
    let config = Config::file(&path).with(json!({ "server": { "workers": 1 } }));
    let hipache = Hipache::start(config);
    // Without its routes file a new worker cannot start: every replacement exits at once.
    std::fs::remove_file(&path).expect("remove routes");
    hipache.kill_worker(hipache.worker_pids()[0]);
    // The log is the behaviour here: the master tells the operator each restart's delay.
    let delays = |hipache: &Hipache| -> Vec<u64> {
        hipache
            .log_lines()
            .iter()
            .filter(|l| l.contains("worker died"))
            .filter_map(|l| {
                l.split("restart_in_ms=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    };
    wait_until(Duration::from_secs(10), "four quick crashes", || {
        delays(&hipache).len() >= 4
    });
    let seen = delays(&hipache);
    eprintln!("restart delays after quick crashes (ms): {seen:?}");
    assert!(
        seen.windows(2).skip(1).all(|w| w[1] > w[0]),
        "delays do not grow: {seen:?}"
    );
    // With the file back, the next restart serves again.
    std::fs::write(&path, r#"{"frontend:a.test": ["a", "http://127.0.0.1:9"]}"#).expect("routes");
    wait_until(Duration::from_secs(15), "a worker serving again", || {
        Request::get("__ping__", "/")
            .try_send(hipache.addr())
            .is_ok_and(|r| r.status == 200)
    });
}

#[test]
fn sighup_changing_the_worker_count_loses_no_request() {
    let (_redis, _backend, mut hipache) = proxy_with_backend(2, json!({}));
    let load = Load::start(hipache.addr(), "load.test");
    for workers in [1, 3] {
        load.wait_for_more(50);
        hipache.rewrite_config(json!({ "server": { "workers": workers } }));
        hipache.reload();
        wait_until(Duration::from_secs(10), "the new worker count", || {
            hipache.worker_pids().len() == workers
        });
    }
    load.wait_for_more(50);
    let (sent, failed) = load.finish();
    eprintln!("SIGHUP 2 -> 1 -> 3 workers under load: {sent} requests sent, {failed} failed");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed while the worker count changed"
    );
}
