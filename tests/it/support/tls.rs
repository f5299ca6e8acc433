//! TLS for tests: certificates generated per test with rcgen, and a client that accepts any
//! certificate but lets the test look at the one it got.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A self-signed certificate for `names`, in PEM.
pub(crate) struct TestCert {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

pub(crate) fn cert(names: &[&str]) -> TestCert {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let certified = rcgen::generate_simple_self_signed(names).expect("rcgen certificate");
    TestCert {
        cert_pem: certified.cert.pem(),
        key_pem: certified.signing_key.serialize_pem(),
    }
}

impl TestCert {
    /// Writes `<stem>.pem` and `<stem>.key` into `dir`; returns (key, cert) paths.
    pub(crate) fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let key = dir.join(format!("{stem}.key"));
        let cert = dir.join(format!("{stem}.pem"));
        std::fs::write(&key, &self.key_pem).expect("write key");
        std::fs::write(&cert, &self.cert_pem).expect("write cert");
        (key, cert)
    }
}

/// The crypto provider of the library the crate is built with (its `aws-lc` or `ring` feature),
/// so that a test build compiles one library, like the proxy's.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[cfg(feature = "aws-lc")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc")))]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

/// A client config offering `alpn`, verifying nothing (the tests check names themselves).
pub(crate) fn client_config(alpn: &[&[u8]]) -> Arc<ClientConfig> {
    client_config_for(rustls::DEFAULT_VERSIONS, alpn)
}

/// A client config speaking only `versions`; its sessions are kept for resumption by every
/// connection made with it.
pub(crate) fn client_config_for(
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let provider = provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("client protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Connects to `addr` over TLS, sending `server_name` as SNI (an IP address sends none).
pub(crate) async fn connect(
    addr: std::net::SocketAddr,
    server_name: &str,
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr)
        .await
        .expect("connect to hipache https");
    let name = ServerName::try_from(server_name.to_owned()).expect("server name");
    TlsConnector::from(client_config(alpn))
        .connect(name, tcp)
        .await
        .expect("tls handshake with hipache")
}

/// The DNS names of the certificate the server presented.
pub(crate) fn peer_names(stream: &TlsStream<TcpStream>) -> Vec<String> {
    let (_, connection) = stream.get_ref();
    let certs = connection.peer_certificates().expect("peer certificate");
    let parsed = webpki::EndEntityCert::try_from(&certs[0]).expect("parse peer certificate");
    parsed.valid_dns_names().map(str::to_owned).collect()
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
