//! TLS session resumption across the workers of a node: a session ticket one worker issued
//! opens at any other, including one started after it died, with TLS 1.3 and TLS 1.2.

use std::sync::Arc;

use rustls::{ClientConfig, HandshakeKind};
use rustls_pki_types::ServerName;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::support::runtime::runtime;
use crate::support::tls;
use crate::support::{Backend, Config, Hipache, RedisServer};

/// One request over a new TLS connection made with `config`: how the handshake went.
async fn one_request(hipache: &Hipache, config: &Arc<ClientConfig>) -> HandshakeKind {
    let tcp = TcpStream::connect(hipache.https_addr()).await.unwrap();
    let name = ServerName::try_from("resume.test").unwrap();
    let mut stream = TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .expect("tls handshake");
    // The answer is read to its end: TLS 1.3 tickets come after the handshake.
    let request = b"GET / HTTP/1.1\r\nHost: resume.test\r\nConnection: close\r\n\r\n";
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let (_, connection) = stream.get_ref();
    connection.handshake_kind().expect("handshake done")
}

#[test]
fn a_session_resumes_at_a_worker_started_after_the_one_that_made_it_died() {
    let redis = RedisServer::start();
    let backend = Backend::named("resumed");
    redis.frontend("resume.test", "resume", &[&backend.url()]);
    let config = Config::redis(&redis);
    let (key, cert) = tls::cert(&["resume.test"]).write(config.dir(), "resume");
    // One worker: the next connection after its death can only reach its replacement.
    let hipache = Hipache::start(config.with(json!({
        "https": { "port": 0, "bind": ["127.0.0.1"], "key": key, "cert": cert }
    })));
    let runtime = runtime();

    for (version, name) in [
        (&rustls::version::TLS13, "1.3"),
        (&rustls::version::TLS12, "1.2"),
    ] {
        let client = tls::client_config_for(&[version], &[b"http/1.1"]);
        let first = runtime.block_on(one_request(&hipache, &client));
        assert_eq!(first, HandshakeKind::Full, "TLS {name}");
        let victim = hipache.worker_pids();
        assert_eq!(victim.len(), 1);
        hipache.replace_worker(victim[0]);
        let again = runtime.block_on(one_request(&hipache, &client));
        assert_eq!(again, HandshakeKind::Resumed, "TLS {name}: a new worker");
    }
}
