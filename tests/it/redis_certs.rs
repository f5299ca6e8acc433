//! Certificates kept in Redis (`https.redisCertificates`): `tls:<name>` hashes served by SNI from
//! the next handshake on, replaced and removed the same way, wildcards one level down, the cache
//! through a Redis outage, a fleet on one Redis, and the `cert` CLI that writes them.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::json;

use crate::freshness::wait_for_tracking;
use crate::support::hipache::run_to_exit;
use crate::support::tls::{self, TestCert};
use crate::support::{wait_until, Config, Hipache, RedisServer};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The names of the certificate `hipache` presents for `server_name`.
fn names_for(hipache: &Hipache, server_name: &str) -> Vec<String> {
    runtime().block_on(async {
        let stream = tls::connect(hipache.https_addr(), server_name, &[b"http/1.1"]).await;
        tls::peer_names(&stream)
    })
}

/// The names of the certificate presented for `server_name`, and the status line of a ping sent
/// over that connection: the handshake completed on the proxy's side too.
fn names_and_ping(hipache: &Hipache, server_name: &str) -> (Vec<String>, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    runtime().block_on(async {
        let mut stream = tls::connect(hipache.https_addr(), server_name, &[b"http/1.1"]).await;
        let names = tls::peer_names(&stream);
        let ping = b"GET / HTTP/1.1\r\nHost: __ping__\r\nConnection: close\r\n\r\n";
        let _ = stream.write_all(ping).await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        (names, answer.lines().next().unwrap_or_default().to_owned())
    })
}

/// Production shape: a root master, `workers` workers as nobody, a listener whose own
/// certificate is for `listener.test`, and Redis certificates on (or off).
fn proxy_config(redis: &RedisServer, workers: u32, on: bool) -> Config {
    let config = Config::redis(redis);
    let (key, cert) = tls::cert(&["listener.test"]).write(config.dir(), "listener");
    config.with(json!({
        "server": { "workers": workers, "tcpTimeout": 5 },
        "user": "nobody",
        "group": "nogroup",
        "https": {
            "port": 0, "bind": ["127.0.0.1"], "key": key, "cert": cert,
            "redisCertificates": on
        }
    }))
}

pub(crate) fn store(redis: &RedisServer, name: &str, cert: &TestCert) {
    let key = format!("tls:{name}");
    let _: i64 = redis.query(&[
        "HSET",
        &key,
        "certificate",
        &cert.cert_pem,
        "key",
        &cert.key_pem,
    ]);
}

/// Every worker of a two-worker proxy gets some of these handshakes (the kernel spreads them);
/// all must see the same certificate.
fn all_names_for(hipache: &Hipache, server_name: &str) -> Vec<Vec<String>> {
    let mut seen: Vec<Vec<String>> = (0..6).map(|_| names_for(hipache, server_name)).collect();
    seen.dedup();
    seen
}

#[test]
fn a_certificate_written_in_redis_is_served_replaced_and_removed_without_reload() {
    let redis = RedisServer::start();
    let hipache = Hipache::start(proxy_config(&redis, 2, true));
    wait_for_tracking(&hipache, 2);
    assert_eq!(
        all_names_for(&hipache, "a.example.test"),
        [["listener.test"]]
    );

    store(&redis, "a.example.test", &tls::cert(&["a.example.test"]));
    assert_eq!(
        all_names_for(&hipache, "a.example.test"),
        [["a.example.test"]]
    );

    let renewed = tls::cert(&["a.example.test", "renewed.example.test"]);
    store(&redis, "a.example.test", &renewed);
    assert_eq!(
        all_names_for(&hipache, "a.example.test"),
        [["a.example.test", "renewed.example.test"]]
    );

    let _: i64 = redis.query(&["DEL", "tls:a.example.test"]);
    assert_eq!(
        all_names_for(&hipache, "a.example.test"),
        [["listener.test"]]
    );
    let log = hipache.log_lines();
    for event in ["loaded", "replaced", "removed"] {
        let line = format!("redis certificate {event}");
        assert!(
            log.iter().any(|l| l.contains(&line)),
            "no {line:?} in {log:#?}"
        );
    }
}

#[test]
fn a_wildcard_entry_serves_the_names_one_level_below_and_an_exact_entry_wins() {
    let redis = RedisServer::start();
    let hipache = Hipache::start(proxy_config(&redis, 1, true));
    store(&redis, "*.example.test", &tls::cert(&["*.example.test"]));
    store(&redis, "b.example.test", &tls::cert(&["b.example.test"]));

    assert_eq!(names_for(&hipache, "a.example.test"), ["*.example.test"]);
    assert_eq!(names_for(&hipache, "B.Example.test"), ["b.example.test"]);
    assert_eq!(names_for(&hipache, "x.a.example.test"), ["listener.test"]);
    assert_eq!(names_for(&hipache, "example.test"), ["listener.test"]);
}

#[test]
fn cached_certificates_keep_being_served_while_redis_is_stopped() {
    let mut redis = RedisServer::start();
    let hipache = Hipache::start(proxy_config(&redis, 1, true));
    wait_for_tracking(&hipache, 1);
    store(&redis, "kept.test", &tls::cert(&["kept.test"]));
    assert_eq!(names_for(&hipache, "kept.test"), ["kept.test"]);

    redis.stop();
    wait_until(Duration::from_secs(10), "tracking lost", || {
        hipache
            .log_lines()
            .iter()
            .any(|l| l.contains("redis tracking lost"))
    });
    assert_eq!(names_for(&hipache, "kept.test"), ["kept.test"]);
    // A name never seen gets the listener's, not a failed handshake.
    assert_eq!(names_for(&hipache, "new.test"), ["listener.test"]);
}

/// A Redis that stops answering (`CLIENT PAUSE`): lookups give up after `tcpTimeout`, and the
/// handshake goes on with the last certificate read, or the listener's.
#[test]
fn a_redis_that_stops_answering_never_fails_a_handshake() {
    let redis = RedisServer::start();
    let hipache = Hipache::start(proxy_config(&redis, 1, true).with(json!({
        "server": { "tcpTimeout": 1 }
    })));
    wait_for_tracking(&hipache, 1);
    store(&redis, "kept.test", &tls::cert(&["kept.test"]));
    assert_eq!(names_for(&hipache, "kept.test"), ["kept.test"]);

    let _: () = redis.query(&["CLIENT", "PAUSE", "30000", "ALL"]);
    // The unanswered ping makes the cache stale: every lookup now goes to the silent server.
    wait_until(Duration::from_secs(10), "tracking lost", || {
        hipache
            .log_lines()
            .iter()
            .any(|l| l.contains("redis tracking lost"))
    });
    let ok = "HTTP/1.1 200 OK".to_owned();
    assert_eq!(
        names_and_ping(&hipache, "kept.test"),
        (vec!["kept.test".to_owned()], ok.clone())
    );
    assert_eq!(
        names_and_ping(&hipache, "never.test"),
        (vec!["listener.test".to_owned()], ok)
    );
}

/// A certificate written in Redis leaves the cached routes fresh: the `tls:` push goes to the
/// certificate cache only.
#[test]
fn a_certificate_write_does_not_make_the_cached_routes_stale() {
    let redis = RedisServer::start();
    let backend = crate::support::Backend::named("b1");
    redis.frontend("routed.test", "routed", &[&backend.url()]);
    let hipache = Hipache::start(proxy_config(&redis, 1, true));
    wait_for_tracking(&hipache, 1);
    // A route lookup reads its host's dead set with one SMEMBERS (certificates are hashes).
    let lookups = || {
        let info: String = redis.query(&["INFO", "commandstats"]);
        info.lines()
            .find_map(|line| line.strip_prefix("cmdstat_smembers:calls="))
            .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(hipache.get("routed.test", "/").status, 200);
    assert_eq!(hipache.get("routed.test", "/").status, 200);
    assert!(lookups() > 0, "the route was never read");
    store(&redis, "other.test", &tls::cert(&["other.test"]));
    let before = lookups();
    assert_eq!(hipache.get("routed.test", "/").status, 200);
    assert_eq!(lookups(), before, "the route was read again from redis");
}

#[test]
fn two_proxies_on_one_redis_both_serve_a_certificate_written_once() {
    let redis = RedisServer::start();
    let first = Hipache::start(proxy_config(&redis, 1, true));
    let second = Hipache::start(proxy_config(&redis, 1, true));
    for proxy in [&first, &second] {
        assert_eq!(names_for(proxy, "fleet.test"), ["listener.test"]);
    }

    store(&redis, "fleet.test", &tls::cert(&["fleet.test"]));

    for proxy in [&first, &second] {
        assert_eq!(names_for(proxy, "fleet.test"), ["fleet.test"]);
    }
}

#[test]
fn a_malformed_entry_is_logged_with_its_key_and_the_listeners_certificate_served() {
    let redis = RedisServer::start();
    let hipache = Hipache::start(proxy_config(&redis, 1, true));
    let (one, other) = (tls::cert(&["bad.test"]), tls::cert(&["bad.test"]));
    let _: i64 = redis.query(&[
        "HSET",
        "tls:bad.test",
        "certificate",
        &one.cert_pem,
        "key",
        &other.key_pem,
    ]);
    let _: i64 = redis.query(&[
        "HSET",
        "tls:junk.test",
        "certificate",
        "junk",
        "key",
        "junk",
    ]);

    assert_eq!(names_for(&hipache, "bad.test"), ["listener.test"]);
    assert_eq!(names_for(&hipache, "junk.test"), ["listener.test"]);
    let refused = |key: &str| {
        hipache
            .log_lines()
            .into_iter()
            .filter(|l| l.contains("redis certificate refused") && l.contains(key))
            .collect::<Vec<_>>()
    };
    // The worker's log reaches the file a moment after the handshake that wrote it.
    wait_until(Duration::from_secs(10), "both refusals logged", || {
        !refused("tls:bad.test").is_empty() && !refused("tls:junk.test").is_empty()
    });
    let bad = refused("tls:bad.test");
    assert_eq!(bad.len(), 1, "{bad:#?}");
    assert!(bad[0].contains("does not match"), "{bad:#?}");
    assert_eq!(refused("tls:junk.test").len(), 1);
}

#[test]
fn unknown_names_are_asked_once_then_answered_from_the_cache() {
    let redis = RedisServer::start();
    let hipache = Hipache::start(proxy_config(&redis, 1, true));
    wait_for_tracking(&hipache, 1);
    let hgetall = || {
        let info: String = redis.query(&["INFO", "commandstats"]);
        info.lines()
            .find_map(|line| line.strip_prefix("cmdstat_hgetall:calls="))
            .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(names_for(&hipache, "nothing.test"), ["listener.test"]);
    let asked = hgetall();
    assert!(asked > 0);
    for _ in 0..5 {
        assert_eq!(names_for(&hipache, "nothing.test"), ["listener.test"]);
    }
    assert_eq!(hgetall(), asked);
}

#[test]
fn redis_certificates_are_off_by_default() {
    let redis = RedisServer::start();
    let hipache = Hipache::start(proxy_config(&redis, 1, false).with(json!({
        "https": { "redisCertificates": null }
    })));
    store(&redis, "ignored.test", &tls::cert(&["ignored.test"]));
    assert_eq!(names_for(&hipache, "ignored.test"), ["listener.test"]);
}

/// `hipache --config <config> cert <args...>`, to its exit.
fn cert_cli(config: &Path, args: &[&str]) -> Output {
    let mut full = vec!["--config", config.to_str().unwrap(), "cert"];
    full.extend_from_slice(args);
    run_to_exit(&full)
}

#[test]
fn the_cli_refuses_a_key_that_does_not_match_and_writes_nothing() {
    let redis = RedisServer::start();
    let config = proxy_config(&redis, 1, true);
    let (one, other) = (tls::cert(&["cli.test"]), tls::cert(&["cli.test"]));
    let (_, cert) = one.write(config.dir(), "one");
    let (key, _) = other.write(config.dir(), "other");
    let path = config.write();

    let output = cert_cli(
        &path,
        &[
            "add",
            "cli.test",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("does not match the certificate"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing written"), "{stderr}");
    let exists: i64 = redis.query(&["EXISTS", "tls:cli.test"]);
    assert_eq!(exists, 0);
}

#[test]
fn the_cli_adds_lists_shows_and_removes_what_a_proxy_serves() {
    let redis = RedisServer::start();
    let config = proxy_config(&redis, 1, true);
    let (key, cert) = tls::cert(&["*.cli.test"]).write(config.dir(), "wild");
    let path = config.write();
    let hipache = Hipache::start(config);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let ok = |args: &[&str]| {
        let output = cert_cli(&path, args);
        assert!(output.status.success(), "cert {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };

    // A certificate for another name is refused.
    let output = cert_cli(&path, &["add", "other.test", "--cert", cert, "--key", key]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");

    ok(&["add", "*.cli.test", "--cert", cert, "--key", key]);
    assert_eq!(names_for(&hipache, "a.cli.test"), ["*.cli.test"]);

    let listing = ok(&["ls"]);
    let line = listing
        .lines()
        .find(|l| l.starts_with("*.cli.test"))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(line.contains("redis"), "{listing}");
    assert!(
        listing.lines().any(|l| l.starts_with("listener.test")),
        "{listing}"
    );
    let shown = ok(&["show", "*.cli.test"]);
    assert!(shown.contains("names: *.cli.test"), "{shown}");
    assert!(shown.contains("matches the certificate"), "{shown}");

    ok(&["rm", "*.cli.test"]);
    assert_eq!(names_for(&hipache, "a.cli.test"), ["listener.test"]);
    let output = cert_cli(&path, &["rm", "*.cli.test"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
}

#[test]
fn the_expiry_of_each_certificate_served_is_a_prometheus_gauge() {
    let redis = RedisServer::start();
    let hipache = Hipache::start(proxy_config(&redis, 1, true).with(json!({
        "logging": { "web": { "host": "127.0.0.1", "port": 0 } }
    })));
    let admin = crate::metrics::admin_addr(&hipache);
    store(&redis, "exp.test", &tls::cert(&["exp.test"]));
    assert_eq!(names_for(&hipache, "exp.test"), ["exp.test"]);

    let page = crate::metrics::hipache_metrics(admin);
    let family = "hipache_certificate_expiry_timestamp_seconds";
    assert!(page.contains(&format!("# TYPE {family} gauge")), "{page}");
    let value: i64 = page
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{family}{{name=\"exp.test\",source=\"redis\"}} ")))
        .unwrap_or_else(|| panic!("no expiry of exp.test in {page}"))
        .parse()
        .unwrap();
    // rcgen's default end: 4096-01-01.
    assert_eq!(value, 67_090_118_400);
    let file = format!("{family}{{name=\"listener.test\",source=\"file\"}} 67090118400");
    assert!(page.lines().any(|l| l == file), "{page}");
}
