//! HTTPS backends for tests: a CA generated per test (rcgen), certificates it signs, and a TLS
//! backend on `127.0.0.1:0` (its own thread and runtime) that answers HTTP/1.1 with its name, or
//! echoes WebSocket messages, and records what each TLS connection negotiated.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use super::runtime::ServerThread;

/// A certificate authority of the test's own.
pub(crate) struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate chain and its key, for a backend to present.
pub(crate) struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl TestCa {
    pub(crate) fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("ca key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("ca certificate"),
        }
    }

    /// Writes the CA certificate as PEM to `<dir>/<stem>.pem`.
    pub(crate) fn write(&self, dir: &Path, stem: &str) -> PathBuf {
        let path = dir.join(format!("{stem}.pem"));
        std::fs::write(&path, self.issuer.pem()).expect("write ca");
        path
    }

    /// A leaf certificate for `names` (DNS names or IP addresses) signed by this CA.
    pub(crate) fn identity(&self, names: &[&str]) -> Identity {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let params = CertificateParams::new(names).expect("leaf params");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Identity {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }
}

/// A self-signed certificate for `names` that no CA vouches for.
pub(crate) fn self_signed(names: &[&str]) -> Identity {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let certified = rcgen::generate_simple_self_signed(names).expect("self-signed certificate");
    Identity {
        chain: vec![certified.cert.der().clone()],
        key: PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()).into(),
    }
}

/// A self-signed CA certificate for `names` presented as a backend's own certificate (a server
/// certificate made with `CA:TRUE`), with its PEM for the proxy to trust.
pub(crate) fn self_signed_ca(names: &[&str]) -> (Identity, String) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("ca key");
    let cert = params.self_signed(&key).expect("self-signed ca");
    let identity = Identity {
        chain: vec![cert.der().clone()],
        key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    };
    (identity, cert.pem())
}

/// One TLS connection the backend completed: what the client asked for in its handshake.
#[derive(Clone, Debug)]
pub(crate) struct Handshake {
    pub(crate) sni: Option<String>,
    pub(crate) alpn: Option<Vec<u8>>,
}

#[derive(Default)]
struct Record {
    handshakes: Vec<Handshake>,
    /// The path of each request, with the index of the TLS connection that carried it.
    requests: Vec<(String, usize)>,
    /// The body length of each request.
    bodies: Vec<u64>,
}

pub(crate) struct TlsBackend {
    addr: SocketAddr,
    record: Arc<Mutex<Record>>,
    _server: ServerThread,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Http,
    WebSocket,
}

impl TlsBackend {
    /// Answers every request with `name` as its body.
    pub(crate) fn start(name: &str, identity: Identity) -> TlsBackend {
        Self::spawn(name, identity, Mode::Http)
    }

    /// Accepts WebSocket upgrades and echoes every message.
    pub(crate) fn websocket_echo(identity: Identity) -> TlsBackend {
        Self::spawn("echo", identity, Mode::WebSocket)
    }

    fn spawn(name: &str, identity: Identity, mode: Mode) -> TlsBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind tls backend");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("tls backend address");
        let provider = super::tls::provider();
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("server protocol versions")
            .with_no_client_auth()
            .with_single_cert(identity.chain, identity.key)
            .expect("backend certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let record = Arc::new(Mutex::new(Record::default()));
        let (name, seen) = (name.to_owned(), record.clone());
        let server = ServerThread::spawn("tls backend", move |stopped| {
            serve(listener, acceptor, name, mode, seen, stopped)
        });
        TlsBackend {
            addr,
            record,
            _server: server,
        }
    }

    /// `https://<host>:<port>`, as written in a frontend list.
    pub(crate) fn url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.addr.port())
    }

    /// TLS handshakes completed, in order.
    pub(crate) fn handshakes(&self) -> Vec<Handshake> {
        self.record.lock().expect("record").handshakes.clone()
    }

    /// The body length of each request served.
    pub(crate) fn bodies(&self) -> Vec<u64> {
        self.record.lock().expect("record").bodies.clone()
    }

    /// Requests served: path and TLS connection index.
    pub(crate) fn requests(&self) -> Vec<(String, usize)> {
        self.record.lock().expect("record").requests.clone()
    }
}

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    name: String,
    mode: Mode,
    record: Arc<Mutex<Record>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let tcp = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => continue,
            },
        };
        let (acceptor, name, record) = (acceptor.clone(), name.clone(), record.clone());
        tokio::spawn(async move {
            // A client that rejects our certificate ends here: no handshake is recorded.
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let connection = {
                let (_, conn) = tls.get_ref();
                let mut record = record.lock().expect("record");
                record.handshakes.push(Handshake {
                    sni: conn.server_name().map(str::to_owned),
                    alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                });
                record.handshakes.len() - 1
            };
            if mode == Mode::WebSocket {
                echo(tls).await;
                return;
            }
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let (record, name) = (record.clone(), name.clone());
                async move {
                    let path = request.uri().path().to_owned();
                    let mut body = request.into_body();
                    let mut body_len = 0u64;
                    while let Some(Ok(frame)) = body.frame().await {
                        body_len += frame.data_ref().map_or(0, |d| d.len() as u64);
                    }
                    let mut seen = record.lock().expect("record");
                    seen.requests.push((path, connection));
                    seen.bodies.push(body_len);
                    let body = Full::new(Bytes::from(name));
                    Ok::<_, Infallible>(hyper::Response::new(body))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

async fn echo(tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>) {
    let Ok(mut socket) = tokio_tungstenite::accept_async(tls).await else {
        return;
    };
    while let Some(Ok(message)) = socket.next().await {
        if message.is_close() {
            let _ = socket.close(None).await;
            return;
        }
        if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err() {
            return;
        }
    }
}
