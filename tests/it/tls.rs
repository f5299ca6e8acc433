//! HTTPS: SNI across the bind certificates and `https.certDir`, reload on SIGHUP, forwarding
//! headers over TLS, and the startup errors of bad key files.

use std::time::Duration;

use serde_json::json;

use crate::support::hipache::run_to_exit;
use crate::support::runtime::runtime;
use crate::support::tls::{self, TestCert};
use crate::support::{wait_until, Backend, Config, Hipache, RedisServer};

fn names_for(hipache: &Hipache, server_name: &str) -> Vec<String> {
    runtime().block_on(async {
        let stream = tls::connect(hipache.https_addr(), server_name, &[b"http/1.1"]).await;
        tls::peer_names(&stream)
    })
}

/// A proxy whose bind serves `default.test`, with `a.test` and a combined `*.b.test` file in
/// `https.certDir`.
fn sni_proxy(redis: &RedisServer) -> (Hipache, std::path::PathBuf) {
    let config = Config::redis(redis);
    let (key, cert) = tls::cert(&["default.test"]).write(config.dir(), "default");
    let dir = config.dir().join("certs");
    std::fs::create_dir(&dir).unwrap();
    tls::cert(&["a.test"]).write(&dir, "a");
    let wild = tls::cert(&["*.b.test"]);
    std::fs::write(
        dir.join("wild.pem"),
        format!("{}{}", wild.cert_pem, wild.key_pem),
    )
    .unwrap();
    let hipache = Hipache::start(config.with(json!({
        "https": { "port": 0, "bind": ["127.0.0.1"], "key": key, "cert": cert, "certDir": dir }
    })));
    (hipache, dir)
}

#[test]
fn sni_picks_each_hosts_certificate_and_the_default_otherwise() {
    let redis = RedisServer::start();
    let (hipache, _) = sni_proxy(&redis);

    assert_eq!(names_for(&hipache, "a.test"), ["a.test"]);
    assert_eq!(names_for(&hipache, "x.b.test"), ["*.b.test"]);
    assert_eq!(names_for(&hipache, "unknown.test"), ["default.test"]);
    // An IP address sends no SNI at all.
    assert_eq!(names_for(&hipache, "127.0.0.1"), ["default.test"]);
}

/// Two binds with their own certificates for one name (an RSA and an ECDSA one, say): each
/// serves its own, as each bind is its own server in Hipache; a name only the other covers still
/// gets the other's.
#[test]
fn each_bind_serves_its_own_certificate_for_a_name_both_cover() {
    let redis = RedisServer::start();
    let config = Config::redis(&redis);
    let (key_a, cert_a) = tls::cert(&["same.test", "a-only.test"]).write(config.dir(), "a");
    let (key_b, cert_b) = tls::cert(&["same.test", "b-only.test"]).write(config.dir(), "b");
    // A port of its own: binds on one address and port are one listener.
    let port = crate::support::redis::free_port();
    let second = json!({ "address": "127.0.0.1", "port": port, "key": key_b, "cert": cert_b });
    let hipache = Hipache::start(config.with(json!({
        "https": { "port": 0, "bind": ["127.0.0.1", second], "key": key_a, "cert": cert_a }
    })));
    let [first, second] = hipache.https_addrs(2)[..] else {
        unreachable!("https_addrs returns as many as asked")
    };
    let names = |addr, server_name| {
        runtime().block_on(async {
            let stream = tls::connect(addr, server_name, &[b"http/1.1"]).await;
            tls::peer_names(&stream)
        })
    };
    assert_eq!(names(first, "same.test"), ["same.test", "a-only.test"]);
    assert_eq!(names(second, "same.test"), ["same.test", "b-only.test"]);
    assert_eq!(names(second, "a-only.test"), ["same.test", "a-only.test"]);
    assert_eq!(names(second, "other.test"), ["same.test", "b-only.test"]);
}

#[test]
fn certificates_are_reloaded_on_sighup() {
    let redis = RedisServer::start();
    let (hipache, dir) = sni_proxy(&redis);
    assert_eq!(names_for(&hipache, "a.test"), ["a.test"]);

    tls::cert(&["a.test", "renewed.a.test"]).write(&dir, "a");
    hipache.reload();

    // The old generation may still accept until its drain begins.
    wait_until(Duration::from_secs(5), "the renewed certificate", || {
        names_for(&hipache, "a.test").len() == 2
    });
    assert_eq!(
        names_for(&hipache, "renewed.a.test"),
        ["a.test", "renewed.a.test"]
    );
}

#[test]
fn failed_reload_keeps_the_current_certificates() {
    let redis = RedisServer::start();
    let (hipache, dir) = sni_proxy(&redis);

    std::fs::write(dir.join("a.key"), "not a key").unwrap();
    hipache.reload();

    // The log is the behaviour here: the refusal names the file. Bounded: stderr reaches the
    // test through a pipe and a thread, possibly after the notification.
    wait_until(
        Duration::from_secs(5),
        "the reload failure to be logged",
        || {
            hipache
                .log_lines()
                .iter()
                .any(|l| l.contains("reload failed") && l.contains("a.key"))
        },
    );
    assert_eq!(names_for(&hipache, "a.test"), ["a.test"]);
}

#[test]
fn https_requests_are_forwarded_with_https_headers() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    redis.frontend("secure.test", "secure", &[&backend.url()]);
    let config = Config::redis(&redis);
    let (key, cert) = tls::cert(&["secure.test"]).write(config.dir(), "server");
    let hipache = Hipache::start(config.with(json!({
        "https": { "port": 0, "bind": ["127.0.0.1"], "key": key, "cert": cert }
    })));

    let response = runtime().block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tls::connect(hipache.https_addr(), "secure.test", &[b"http/1.1"]).await;
        stream
            .write_all(b"GET /s HTTP/1.1\r\nHost: secure.test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        String::from_utf8_lossy(&response).into_owned()
    });
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("b1"), "{response}");
    let seen = &backend.requests()[0];
    let port = hipache.https_addr().port().to_string();
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-forwarded-port"), Some(port.as_str()));
}

#[test]
fn one_tls_connection_carries_pipelined_and_later_requests() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    redis.frontend("keep.test", "keep", &[&backend.url()]);
    let config = Config::redis(&redis);
    let (key, cert) = tls::cert(&["keep.test"]).write(config.dir(), "server");
    let hipache = Hipache::start(config.with(json!({
        "https": { "port": 0, "bind": ["127.0.0.1"], "key": key, "cert": cert }
    })));

    let (pipelined, last) = runtime().block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tls::connect(hipache.https_addr(), "keep.test", &[b"http/1.1"]).await;
        // Two requests in one record: the second is already decrypted when the first is done.
        let request = b"GET /1 HTTP/1.1\r\nHost: keep.test\r\n\r\n";
        stream
            .write_all(&[&request[..], request].concat())
            .await
            .unwrap();
        let mut pipelined = Vec::new();
        let mut piece = [0u8; 4096];
        while String::from_utf8_lossy(&pipelined)
            .matches("\r\n\r\nb1")
            .count()
            < 2
        {
            let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut piece));
            let n = read.await.expect("answers within 10 s").unwrap();
            assert!(
                n > 0,
                "closed after {:?}",
                String::from_utf8_lossy(&pipelined)
            );
            pipelined.extend_from_slice(&piece[..n]);
        }
        // Then the connection waits idle, and serves one more.
        stream
            .write_all(b"GET /3 HTTP/1.1\r\nHost: keep.test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut last = Vec::new();
        let _ = stream.read_to_end(&mut last).await;
        (
            String::from_utf8_lossy(&pipelined).into_owned(),
            String::from_utf8_lossy(&last).into_owned(),
        )
    });
    assert_eq!(
        pipelined.matches("HTTP/1.1 200 OK").count(),
        2,
        "{pipelined}"
    );
    assert!(
        last.starts_with("HTTP/1.1 200") && last.ends_with("b1"),
        "{last}"
    );
    assert_eq!(backend.request_count(), 3);
}

fn startup_error(key: &TestCert, cert: &TestCert) -> (String, std::path::PathBuf) {
    let redis = RedisServer::start();
    let config = Config::redis(&redis);
    let (key, _) = key.write(config.dir(), "key");
    let (_, cert) = cert.write(config.dir(), "cert");
    let config = config.with(json!({
        "https": { "port": 0, "bind": ["127.0.0.1"], "key": key, "cert": cert }
    }));
    let output = run_to_exit(&["--config", config.write().to_str().unwrap()]);
    assert!(!output.status.success(), "hipache must refuse to start");
    (String::from_utf8_lossy(&output.stderr).into_owned(), key)
}

#[test]
fn key_not_matching_its_certificate_exits_naming_the_file() {
    let (stderr, key) = startup_error(&tls::cert(&["one.test"]), &tls::cert(&["two.test"]));
    assert!(stderr.contains(&key.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("does not match the certificate"),
        "{stderr}"
    );
}

#[test]
fn encrypted_key_exits_with_a_decryption_hint() {
    let mut key = tls::cert(&["enc.test"]);
    let cert = tls::cert(&["enc.test"]);
    key.key_pem = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n".to_owned();
    let (stderr, key) = startup_error(&key, &cert);
    assert!(stderr.contains(&key.display().to_string()), "{stderr}");
    assert!(stderr.contains("openssl pkey"), "{stderr}");
}

/// A connection the worker accepted just before its drain began, whose client had not sent its
/// `ClientHello` yet, is still served: the drain waits for its handshake and its request
/// (answered with `Connection: close`) instead of resetting it.
#[test]
fn a_tls_connection_accepted_before_a_drain_is_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    redis.frontend("a.test", "a", &[&backend.url()]);
    let (hipache, _) = sni_proxy(&redis);
    let https = hipache.https_addr();
    runtime().block_on(async {
        let tcp = tokio::net::TcpStream::connect(https).await.unwrap();
        // The accepted connection shows as one of the worker's sockets on the https port.
        let accepted =
            |worker| crate::support::procfs::connected_ports_of(worker).contains(&https.port());
        let worker = crate::support::wait::wait_for(
            Duration::from_secs(5),
            "a worker to accept the connection",
            || hipache.worker_pids().into_iter().find(|pid| accepted(*pid)),
        );
        hipache.signal(libc::SIGTERM);
        wait_until(
            Duration::from_secs(10),
            "the worker to stop accepting",
            || crate::support::procfs::listening_ports_of(worker).is_empty(),
        );
        let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
        let mut stream = tokio_rustls::TlsConnector::from(tls::client_config(&[b"http/1.1"]))
            .connect(name, tcp)
            .await
            .expect("the handshake of a connection accepted before the drain");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    });
}
