//! A real TLS 1.3 server on loopback: what it sends before any answer (session tickets) must
//! neither pass for an answer (`peek`) nor make an idle connection look closed (`is_open`).

use std::sync::Arc;

use futures_util::FutureExt;
use rustls::ServerConfig;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::*;
use crate::config::BackendTrust;
use crate::tls::backend_trust::{connector, server_name};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn acceptor() -> TlsAcceptor {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = crate::crypto::tls_provider();
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    assert!(config.send_tls13_tickets > 0, "the server sends tickets");
    TlsAcceptor::from(Arc::new(config))
}

#[test]
fn session_tickets_are_neither_an_answer_nor_a_close() {
    rt().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = acceptor();
        let (answer, answered) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            answered.await.unwrap();
            tls.write_all(b"hi").await.unwrap();
            tls.flush().await.unwrap();
            // Held open until the client is done.
            let mut rest = Vec::new();
            let _ = tls.read_to_end(&mut rest).await;
        });
        let trust = BackendTrust {
            ca: None,
            ca_certs: Vec::new(),
            verify: false,
        };
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = server_name("localhost").unwrap();
        let tls = connector(&trust).connect(name, tcp).await.unwrap();
        // The tickets follow the handshake: wait until the socket holds them.
        tls.get_ref().0.readable().await.unwrap();
        let mut conn = BackendConn::tls(tls);

        assert!(conn.is_open(), "tickets are no stray answer");
        {
            let (mut read, _) = conn.split();
            assert!(
                read.peek().now_or_never().is_none(),
                "tickets are no answer"
            );
        }
        answer.send(()).unwrap();
        let (mut read, _) = conn.split();
        read.peek().await;
        let mut hi = [0u8; 2];
        conn.read_exact(&mut hi).await.unwrap();
        assert_eq!(&hi, b"hi");
        conn.shutdown().await.unwrap();
        server.await.unwrap();
    });
}
