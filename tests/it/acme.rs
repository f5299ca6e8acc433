//! Built-in ACME against a real ACME server (Debian's pebble, `support::pebble`): a name that
//! only has a `frontend:` entry gets a certificate on its first handshake, by http-01 or by
//! tls-alpn-01, that verifies against pebble's root; a name without a frontend never causes an
//! order; a failing order backs the fleet off in Redis and keeps the certificate served; an
//! operator's certificate written over an ACME one is left alone. The fleet (three proxies on
//! one Redis and one pebble) is in `acme_fleet`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::support::hipache::run_to_exit;
use crate::support::pebble::{free_port, Pebble, PebblePlan};
use crate::support::tls;
use crate::support::{wait_for, wait_until, Config, Hipache, RedisServer};

/// Production shape: a root master with its workers as nobody, an https listener whose own
/// certificate is for `listener.test`, Redis certificates and ACME on.
pub(crate) fn acme_config(redis: &RedisServer, plan: &PebblePlan, challenge: &str) -> Config {
    let config = Config::redis(redis);
    let (key, cert) = tls::cert(&["listener.test"]).write(config.dir(), "listener");
    config.with(json!({
        "server": { "workers": 1, "tcpTimeout": 10 },
        "user": "nobody",
        "group": "nogroup",
        "https": {
            "port": 0, "bind": ["127.0.0.1"], "key": key, "cert": cert,
            "redisCertificates": true
        },
        "acme": {
            "directory": plan.directory(),
            "directoryCa": plan.ca(),
            "email": "ops@example.test",
            "challenge": challenge,
            "renewBefore": 30
        }
    }))
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A handshake with `addr` for `name` that verifies the chain against `root` (PEM) alone:
/// the names of the certificate, or why it failed.
pub(crate) fn verified_names(
    addr: SocketAddr,
    name: &str,
    root: &str,
) -> Result<Vec<String>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(root.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    runtime().block_on(async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let stream = TlsConnector::from(Arc::new(config))
            .connect(server_name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        Ok(tls::peer_names(&stream))
    })
}

/// The names of the certificate served for `name`, verifying nothing.
pub(crate) fn served_names(addr: SocketAddr, name: &str) -> Vec<String> {
    runtime().block_on(async {
        let stream = tls::connect(addr, name, &[b"http/1.1"]).await;
        tls::peer_names(&stream)
    })
}

/// Orders pebble created, from its log.
pub(crate) fn orders(pebble: &Pebble) -> usize {
    pebble.count("Added order")
}

/// Certificates pebble issued, from its log.
pub(crate) fn issued(pebble: &Pebble) -> usize {
    pebble.count("Issued certificate serial")
}

/// Lines of `hipache`'s log containing `text`.
pub(crate) fn logged(hipache: &Hipache, text: &str) -> usize {
    hipache
        .log_lines()
        .iter()
        .filter(|l| l.contains(text))
        .count()
}

/// A self-signed certificate for `name`, valid now and expiring on the first of January in
/// two years' time: within a `renewBefore` of 1,200 days, while what pebble issues (valid five
/// years) is not.
pub(crate) fn expiring_cert(name: &str) -> tls::TestCert {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let year = 1970 + i32::try_from(now / 31_556_952).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.not_after = rcgen::date_time_ymd(year + 2, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    tls::TestCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// Stores `cert` for `name` as an ACME-issued certificate (in `tls:<name>` and `acme:names`).
pub(crate) fn store_acme_cert(redis: &RedisServer, name: &str, cert: &tls::TestCert) {
    let key = format!("tls:{name}");
    let _: i64 = redis.query(&[
        "HSET",
        &key,
        "certificate",
        &cert.cert_pem,
        "key",
        &cert.key_pem,
        "source",
        "acme",
    ]);
    redis.sadd("acme:names", name);
}

/// The renewal window the tests use with [`expiring_cert`].
pub(crate) const RENEW_BEFORE_DAYS: u32 = 1_200;

pub(crate) fn start_pebble(plan: PebblePlan, hipache: &Hipache, env: &[(&str, &str)]) -> Pebble {
    plan.start(hipache.port(), hipache.https_addr().port(), env)
}

#[test]
fn http_01_issues_on_demand_a_certificate_that_verifies_against_the_acme_root() {
    let redis = RedisServer::start();
    redis.frontend("site.example.test", "site", &["http://127.0.0.1:1"]);
    let plan = PebblePlan::new();
    let hipache = Hipache::start(acme_config(&redis, &plan, "http-01"));
    let pebble = start_pebble(plan, &hipache, &[]);
    let root = pebble.root();

    let names = wait_for(Duration::from_secs(30), "a verified certificate", || {
        verified_names(hipache.https_addr(), "site.example.test", &root).ok()
    });
    assert_eq!(names, ["site.example.test"]);
    let stored: String = redis.query(&["HGET", "tls:site.example.test", "source"]);
    assert_eq!(stored, "acme");
    let log = hipache.log_lines();
    for event in ["acme order started", "acme order finished"] {
        assert_eq!(
            log.iter().filter(|l| l.contains(event)).count(),
            1,
            "{event} in {log:#?}"
        );
    }
    assert_eq!((orders(&pebble), issued(&pebble)), (1, 1));
}

#[test]
fn tls_alpn_01_issues_on_demand_a_certificate_that_verifies_against_the_acme_root() {
    let redis = RedisServer::start();
    redis.frontend("*.alpn.test", "alpn", &["http://127.0.0.1:1"]);
    let plan = PebblePlan::new();
    let hipache = Hipache::start(acme_config(&redis, &plan, "tls-alpn-01"));
    let pebble = start_pebble(plan, &hipache, &[]);
    let root = pebble.root();

    let names = wait_for(Duration::from_secs(30), "a verified certificate", || {
        verified_names(hipache.https_addr(), "www.alpn.test", &root).ok()
    });
    assert_eq!(names, ["www.alpn.test"]);
    assert_eq!((orders(&pebble), issued(&pebble)), (1, 1));
    assert_eq!(logged(&hipache, "challenge=\"tls-alpn-01\""), 1);
    // The challenge answer is gone with its order.
    let left: Vec<String> = redis.query(&["KEYS", "acme:tls-alpn-01:*"]);
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_name_without_a_frontend_never_causes_an_order() {
    let redis = RedisServer::start();
    redis.frontend("real.example.test", "real", &["http://127.0.0.1:1"]);
    let plan = PebblePlan::new();
    let hipache = Hipache::start(acme_config(&redis, &plan, "http-01"));
    let pebble = start_pebble(plan, &hipache, &[]);
    let addr = hipache.https_addr();

    let seed: u32 = rand::random();
    let served: Vec<Vec<String>> = runtime().block_on(async {
        let mut served = Vec::new();
        for chunk in (0..2_000u32).collect::<Vec<_>>().chunks(50) {
            let handshakes = chunk.iter().map(|n| async move {
                let name = format!("n{n}-{seed:x}.flood.test");
                let stream = tls::connect(addr, &name, &[b"http/1.1"]).await;
                tls::peer_names(&stream)
            });
            served.extend(futures_util::future::join_all(handshakes).await);
        }
        served
    });
    assert!(served.iter().all(|names| names == &["listener.test"]));
    assert_eq!(orders(&pebble), 0, "{:#?}", pebble.log_lines());
    assert_eq!(logged(&hipache, "acme order started"), 0);
    let locks: Vec<String> = redis.query(&["KEYS", "acme:*"]);
    assert!(locks.is_empty(), "{locks:?}");

    // The witness counts: the name with a frontend is ordered, once.
    let root = pebble.root();
    wait_for(Duration::from_secs(30), "a verified certificate", || {
        verified_names(addr, "real.example.test", &root).ok()
    });
    assert_eq!(orders(&pebble), 1);
}

#[test]
fn a_failed_order_backs_the_fleet_off_and_keeps_the_certificate_served() {
    let redis = RedisServer::start();
    for host in ["kept.example.test", "new.example.test"] {
        redis.frontend(host, "site", &["http://127.0.0.1:1"]);
    }
    let kept = expiring_cert("kept.example.test");
    store_acme_cert(&redis, "kept.example.test", &kept);
    let plan = PebblePlan::new();
    // Pebble validates on ports where nothing listens: every order fails.
    let pebble = plan.start(free_port(), free_port(), &[]);
    let config = || {
        acme_config(&redis, pebble.plan(), "http-01")
            .with(json!({ "acme": { "renewBefore": RENEW_BEFORE_DAYS } }))
    };
    let first = Hipache::start(config());

    // The renewal of the certificate due fails: the fleet backs off, the certificate stays.
    wait_until(
        Duration::from_secs(30),
        "back-off of kept.example.test",
        || {
            redis
                .try_query::<String>(&["GET", "acme:backoff:kept.example.test"])
                .is_some()
        },
    );
    let ttl: i64 = redis.query(&["PTTL", "acme:backoff:kept.example.test"]);
    assert!(
        (1..=300_000).contains(&ttl),
        "first back-off is 5 minutes: {ttl}"
    );
    assert_eq!(
        served_names(first.https_addr(), "kept.example.test"),
        ["kept.example.test"]
    );
    let still: String = redis.query(&["HGET", "tls:kept.example.test", "certificate"]);
    assert_eq!(still, kept.cert_pem);
    // On demand the same: the handshake gets the listener's certificate, the name backs off.
    assert_eq!(
        served_names(first.https_addr(), "new.example.test"),
        ["listener.test"]
    );
    wait_until(
        Duration::from_secs(30),
        "back-off of new.example.test",
        || {
            redis
                .try_query::<String>(&["GET", "acme:backoff:new.example.test"])
                .is_some()
        },
    );
    let reason: String = redis.query(&["GET", "acme:backoff:new.example.test"]);
    let said = reason.to_lowercase();
    assert!(
        said.contains("connect"),
        "the ACME server's reason: {reason}"
    );
    // The back-off is written before the failure is logged: the line may come a moment later.
    let failed = || {
        (first.log_lines().into_iter())
            .filter(|l| l.contains("acme order failed"))
            .collect::<Vec<_>>()
    };
    wait_until(Duration::from_secs(10), "both failures logged", || {
        failed().len() >= 2
    });
    let failed = failed();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    assert!(failed.iter().all(|l| l.contains("reason=")), "{failed:#?}");
    let ordered = orders(&pebble);
    assert_eq!(ordered, 2);

    // A second node neither renews nor orders while the back-off lasts.
    let second = Hipache::start(config());
    wait_until(
        Duration::from_secs(30),
        "the second node's renewal check",
        || logged(&second, "acme renewal checked") > 0,
    );
    assert_eq!(logged(&second, "acme renewal backed off"), 1);
    assert_eq!(
        served_names(second.https_addr(), "new.example.test"),
        ["listener.test"]
    );
    assert_eq!(
        served_names(second.https_addr(), "kept.example.test"),
        ["kept.example.test"]
    );
    assert_eq!(logged(&second, "acme order started"), 0);
    assert_eq!(orders(&pebble), ordered);
}

#[test]
fn a_certificate_an_operator_added_over_an_acme_one_is_not_renewed() {
    let redis = RedisServer::start();
    redis.frontend("op.example.test", "site", &["http://127.0.0.1:1"]);
    store_acme_cert(&redis, "op.example.test", &expiring_cert("op.example.test"));
    let plan = PebblePlan::new();
    let pebble = plan.start(free_port(), free_port(), &[]);
    let config = acme_config(&redis, pebble.plan(), "http-01")
        .with(json!({ "acme": { "renewBefore": RENEW_BEFORE_DAYS } }));
    // The operator's own certificate, as due as ACME's was, replaces it.
    let (key, cert) = expiring_cert("op.example.test").write(config.dir(), "operator");
    let path = config.write();
    let added = run_to_exit(&[
        "--config",
        path.to_str().unwrap(),
        "cert",
        "add",
        "op.example.test",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(added.status.success(), "{added:?}");
    let listed = run_to_exit(&["--config", path.to_str().unwrap(), "cert", "ls"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("op.example.test") && !l.contains("acme")),
        "{listed}"
    );

    let hipache = Hipache::start(config);
    wait_until(Duration::from_secs(30), "the renewal check", || {
        logged(&hipache, "acme renewal checked") > 0
    });
    assert_eq!(logged(&hipache, "acme order started"), 0);
    assert_eq!(orders(&pebble), 0);
}
