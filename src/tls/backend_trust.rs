//! TLS towards the backends: how `https://` backends are reached (by the proxy's pool and the health
//! checker alike). Trust is the system's roots (read by `rustls-native-certs` from the OS store,
//! e.g. /etc/ssl/certs, so the fleet's own CA added with `update-ca-certificates` is trusted
//! without a rebuild) plus `server.backendCa`; `server.backendTlsVerify: false` accepts any
//! certificate. SNI and the name checked are the URL's host, an IP address included; ALPN
//! `http/1.1`, the only protocol we speak to backends.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::TlsConnector;

use crate::config::BackendTrust;

/// Builds the connector for `https://` backends from `server.backendTlsVerify` and the
/// certificates of `server.backendCa`. Cheap to clone; build it once per process.
pub(crate) fn connector(trust: &BackendTrust) -> TlsConnector {
    let provider = crate::crypto::tls_provider();
    // Both providers support both default protocol versions: this cannot fail.
    let builder = match ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => builder,
        Err(error) => unreachable!("the provider supports TLS 1.2 and 1.3: {error}"),
    };
    let mut config = if trust.verify {
        builder
            .with_root_certificates(roots(&trust.ca_certs))
            .with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// The name sent as SNI and checked against the certificate: an IP address or a DNS name.
pub(crate) fn server_name(host: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(host.to_owned()).ok()
}

/// The system's roots and `extra` (also the ACME directory's trust, `acme.directoryCa`).
pub(crate) fn roots(extra: &[CertificateDer<'static>]) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "system certificates for https backends");
    }
    let (_, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 {
        tracing::debug!(ignored, "system certificates skipped");
    }
    // `backendCa` was parsed when the config was read; a certificate webpki rejects as a trust
    // anchor is reported here rather than silently dropped.
    for cert in extra {
        if let Err(error) = roots.add(cert.clone()) {
            tracing::warn!(%error, "server.backendCa: a certificate is not usable as a CA");
        }
    }
    roots
}

/// `backendTlsVerify: false`: any certificate passes; the handshake's signatures are still
/// checked, so the peer must hold the key of the certificate it shows.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
        verify_tls13_signature(
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
