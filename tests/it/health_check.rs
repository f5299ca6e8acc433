//! The built-in active health checker (`healthCheck`): the master probes every backend of every
//! frontend in Redis and marks and clears them in Hipache's layout, while workers route around.
//! That it needs the Redis driver is a config decision, asserted in the config unit tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::support::raw_backend::{answer, ok, RawBackend};
use crate::support::{pause, wait_until, Backend, Config, Hipache, RedisServer};

/// A backend whose `/health` answers 500 while `healthy` is false; every other path answers 200
/// with its name, so the proxy's own (passive) checks never see it fail.
fn flaky_backend(healthy: Arc<AtomicBool>) -> RawBackend {
    RawBackend::start(move |peer| {
        let healthy = healthy.clone();
        peer.answer_each(move |request| {
            if request.line.starts_with("GET /health ") && !healthy.load(Ordering::SeqCst) {
                answer("500 Internal Server Error", "sick")
            } else {
                ok("flaky")
            }
        });
    })
}

#[test]
fn health_checker_marks_and_clears_a_backend_while_the_proxy_routes_around_it() {
    let redis = RedisServer::start();
    let healthy = Arc::new(AtomicBool::new(false));
    let flaky = flaky_backend(healthy.clone());
    let steady = Backend::named("steady");
    redis.frontend("hc.local", "hc", &[&flaky.url(), &steady.url()]);
    let subscription = redis.subscribe("dead");
    let config = Config::redis(&redis).with(json!({
        "healthCheck": {"path": "/health", "interval": 1, "timeout": 1, "unhealthy": 2, "healthy": 2}
    }));
    let hipache = Hipache::start(config);

    // Two failed probes: marked exactly as the proxy marks, and announced on `dead`.
    wait_until(Duration::from_secs(15), "dead:hc.local to hold 0", || {
        redis.smembers("dead:hc.local") == ["0"]
    });
    let announced = subscription.wait_for(1);
    assert_eq!(
        announced[0],
        format!("hc.local;http://{}/;0;2", flaky_addr(&flaky))
    );
    let ttl = redis.ttl("dead:hc.local");
    assert!((1..=30).contains(&ttl), "dead:hc.local TTL {ttl}");
    let probe = flaky
        .requests()
        .into_iter()
        .find(|r| r.line.starts_with("GET /health "))
        .expect("a probe reached the backend");
    assert_eq!(probe.header("host"), Some("hc.local"));
    // The heartbeat that makes the workers' passive checks step aside.
    let beat: String = redis.query(&["GET", "hchecker_ping"]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let beat: u64 = beat.parse().expect("hchecker_ping holds unix seconds");
    assert!(now.abs_diff(beat) <= 30, "hchecker_ping {beat}, now {now}");

    // Marked: every request goes to the other backend.
    let before = flaky
        .requests()
        .iter()
        .filter(|r| r.line.starts_with("GET /app"))
        .count();
    for _ in 0..20 {
        assert_eq!(hipache.get("hc.local", "/app").text(), "steady");
    }
    let after = flaky
        .requests()
        .iter()
        .filter(|r| r.line.starts_with("GET /app"))
        .count();
    assert_eq!(before, after, "a marked backend got proxied requests");

    // Healthy again: two good probes remove the mark, and the backend is back in rotation.
    healthy.store(true, Ordering::SeqCst);
    wait_until(
        Duration::from_secs(15),
        "dead:hc.local to be cleared",
        || redis.smembers("dead:hc.local").is_empty(),
    );
    wait_until(
        Duration::from_secs(10),
        "the backend to get requests again",
        || hipache.get("hc.local", "/app").text() == "flaky",
    );
}

fn flaky_addr(backend: &RawBackend) -> String {
    backend.url().trim_start_matches("http://").to_owned()
}

#[test]
fn health_check_added_by_a_reload_starts_checking() {
    let redis = RedisServer::start();
    let flaky = flaky_backend(Arc::new(AtomicBool::new(false)));
    let steady = Backend::named("steady");
    redis.frontend("reload.local", "reload", &[&flaky.url(), &steady.url()]);
    let mut hipache = Hipache::start(Config::redis(&redis));

    hipache.rewrite_config(json!({
        "healthCheck": {"path": "/health", "interval": 1, "timeout": 1, "unhealthy": 1, "healthy": 1}
    }));
    hipache.reload();

    wait_until(
        Duration::from_secs(20),
        "dead:reload.local to hold 0",
        || redis.smembers("dead:reload.local") == ["0"],
    );
}

#[test]
fn a_backend_that_closes_mid_head_fails_its_probe() {
    let redis = RedisServer::start();
    // A status line, then half a field, then the end: the proxy answers 502 for this backend.
    let cut = RawBackend::start(|peer| {
        if peer.request().is_some() {
            peer.write(b"HTTP/1.1 200 OK\r\nContent-Le");
        }
    });
    let steady = Backend::named("steady");
    redis.frontend("cut.local", "cut", &[&cut.url(), &steady.url()]);
    // Production shape: the master (which runs the checker) as root, workers as nobody.
    let config = Config::redis(&redis).with(json!({
        "user": "nobody",
        "healthCheck": {"path": "/health", "interval": 1, "timeout": 1, "unhealthy": 2, "healthy": 2}
    }));
    let _hipache = Hipache::start(config);

    wait_until(Duration::from_secs(15), "dead:cut.local to hold 0", || {
        redis.smembers("dead:cut.local") == ["0"]
    });
    assert!(
        cut.requests()
            .iter()
            .any(|r| r.line.starts_with("GET /health ")),
        "no probe reached the backend"
    );
}

#[test]
fn hundreds_of_hanging_backends_stay_marked_dead_at_every_moment() {
    const HOSTS: usize = 150;
    let redis = RedisServer::start();
    // Listening sockets nobody accepts on: a probe connects, asks, and hears nothing.
    let hanging: Vec<std::net::TcpListener> = (0..HOSTS * 2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let url =
        |listener: &std::net::TcpListener| format!("http://{}", listener.local_addr().unwrap());
    let hosts: Vec<String> = (0..HOSTS).map(|n| format!("hang{n}.local")).collect();
    for (host, pair) in hosts.iter().zip(hanging.chunks(2)) {
        redis.frontend(host, host, &[&url(&pair[0]), &url(&pair[1])]);
    }
    let interval = Duration::from_secs(1);
    let config = Config::redis(&redis).with(json!({
        "user": "nobody",
        "server": { "deadBackendTTL": 1 },
        "healthCheck": {"path": "/", "interval": 1, "timeout": 1, "unhealthy": 1, "healthy": 1}
    }));
    let _hipache = Hipache::start(config);

    let mut conn = redis.connection();
    let mut unmarked = || {
        let mut pipe = ::redis::pipe();
        for host in &hosts {
            pipe.smembers(format!("dead:{host}"));
        }
        let sets: Vec<Vec<String>> = pipe.query(&mut conn).unwrap();
        sets.iter().filter(|set| set.len() != 2).count()
    };
    wait_until(
        Duration::from_secs(30),
        "every hanging backend marked dead",
        || unmarked() == 0,
    );
    // Over two intervals (and the rounds in them), no mark lapses before it is renewed. The
    // clock only bounds the window watched: a busy machine samples it less often, it cannot make
    // a renewed mark look lapsed.
    let observed = std::time::Instant::now();
    let mut observations = 0;
    while observed.elapsed() < interval * 2 {
        assert_eq!(unmarked(), 0, "marks lapsed after {:?}", observed.elapsed());
        observations += 1;
        pause(Duration::from_millis(20));
    }
    assert!(observations > 1);
}

#[test]
fn the_warning_that_marks_a_backend_dead_says_why() {
    let redis = RedisServer::start();
    let sick = flaky_backend(Arc::new(AtomicBool::new(false)));
    let refusing = Backend::builder().refusing().start();
    let steady = Backend::named("steady");
    redis.frontend(
        "why.local",
        "why",
        &[&sick.url(), &refusing.url(), &steady.url()],
    );
    let config = Config::redis(&redis).with(json!({
        "healthCheck": {"path": "/health", "interval": 1, "timeout": 1, "unhealthy": 1, "healthy": 1}
    }));
    let hipache = Hipache::start(config);

    let marked = |reason: &str| {
        hipache
            .log_lines()
            .iter()
            .any(|l| l.contains("marked dead") && l.contains(&format!("reason={reason}")))
    };
    wait_until(
        Duration::from_secs(15),
        "both marks with their reasons",
        || marked("bad status 500") && marked("connection refused"),
    );
}
