//! The client's TLS configuration: every connection a full handshake, and as little client-side
//! crypto as a TLS client can do, so that the server's share of the CPU is what is measured.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, Error, SignatureScheme};

/// Which TLS version the client offers (one only, so the row says what it measured).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Version {
    Tls12,
    Tls13,
}

// X25519 for the exchange (the one key share a TLS 1.3 hello carries), as every server here
// picks; P-256 listed after it because a TLS 1.2 server only uses an ECDSA P-256 certificate
// with a client that lists that curve.
//
// One cipher suite per version, AES-128-GCM with SHA-256 (browsers' first choice): servers that
// follow the client's order (nginx, hipache) and one that follows its own (HAProxy, whose
// OpenSSL default puts AES-256-GCM-SHA384 first) then all do the same handshake, and SHA-256 has
// the CPU's SHA instructions where ring's SHA-384 does not (9 % of this client's CPU).
#[cfg(feature = "ring")]
fn base_provider() -> CryptoProvider {
    use rustls::crypto::ring::{cipher_suite, default_provider, kx_group};
    let mut p = default_provider();
    p.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1];
    p.cipher_suites = vec![
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ];
    p
}

#[cfg(all(feature = "aws-lc", not(feature = "ring")))]
fn base_provider() -> CryptoProvider {
    use rustls::crypto::aws_lc_rs::{cipher_suite, default_provider, kx_group};
    let mut p = default_provider();
    // Without X25519MLKEM768, which aws-lc-rs offers first by default: a second key share the
    // client would compute on every handshake, that OpenSSL 3.0's servers (nginx, HAProxy here)
    // do not take anyway.
    p.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1];
    p.cipher_suites = vec![
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ];
    p
}

/// The provider's name, printed with the results.
pub(crate) const PROVIDER: &str = if cfg!(feature = "ring") {
    "ring"
} else {
    "aws-lc-rs"
};

/// The signature scheme of the last handshake the server signed: which key type answered on the
/// port (ECDSA_* or RSA_*), so a port with the wrong certificate is seen, not measured.
#[derive(Debug, Default)]
pub(crate) struct SeenScheme(AtomicU16);

impl SeenScheme {
    pub(crate) fn get(&self) -> Option<SignatureScheme> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            n => Some(SignatureScheme::from(n)),
        }
    }

    fn set(&self, scheme: SignatureScheme) {
        self.0.store(u16::from(scheme), Ordering::Relaxed);
    }
}

/// `check_name`: a connection fails unless the certificate it was served carries the server
/// name it asked for (its bytes appear in the certificate: a SAN `dNSName` is stored as is), so
/// a benchmark of certificates chosen by SNI sees a fallback to another certificate as an error.
pub(crate) fn config(
    version: Version,
    check_name: bool,
) -> Result<(Arc<ClientConfig>, Arc<SeenScheme>), Error> {
    let provider = Arc::new(base_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match version {
        Version::Tls12 => &[&rustls::version::TLS12],
        Version::Tls13 => &[&rustls::version::TLS13],
    };
    let seen = Arc::new(SeenScheme::default());
    let verifier = AcceptAnything {
        provider: provider.clone(),
        seen: seen.clone(),
        check_name,
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // No session cache and no TLS 1.2 tickets: every connection is a full handshake (ECDHE and
    // the server's certificate signature), never a resumption. The server's own tickets and
    // session cache stay on; this client never offers what they issue.
    config.resumption = Resumption::disabled();
    config.enable_early_data = false;
    Ok((Arc::new(config), seen))
}

/// DANGEROUS, and only acceptable because this is a benchmark client that talks to a proxy on
/// loopback with a throw-away self-signed certificate: it accepts any certificate and does not
/// check the server's handshake signature. The server still computes that signature (the cost
/// being measured); the client skips checking it so that its own CPU per handshake stays well
/// below the server's on a machine where both share the cores. Never use this against a network.
#[derive(Debug)]
struct AcceptAnything {
    provider: Arc<CryptoProvider>,
    seen: Arc<SeenScheme>,
    check_name: bool,
}

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if self.check_name {
            if let ServerName::DnsName(name) = server_name {
                let name = name.as_ref().as_bytes();
                if !end_entity.windows(name.len()).any(|w| w == name) {
                    return Err(Error::General(format!(
                        "the certificate served does not name {}",
                        String::from_utf8_lossy(name)
                    )));
                }
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.seen.set(dss.scheme);
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.seen.set(dss.scheme);
        Ok(HandshakeSignatureValid::assertion())
    }

    /// Every scheme the provider knows, so the server signs with whatever key it has (ECDSA or
    /// RSA, PSS in TLS 1.3) exactly as it would for a browser.
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
