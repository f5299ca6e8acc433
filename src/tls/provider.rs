//! The one place the crypto provider is chosen, for the https listeners and the `https://`
//! backends alike: aws-lc-rs with the `aws-lc` feature (the default), ring without it. Full
//! handshakes per second, same commit, same run against nginx: ECDSA P-256 1.18x nginx with
//! aws-lc-rs and 1.20x with ring (the same within noise); RSA 2048 1.04x with aws-lc-rs and
//! 0.85x with ring, whose RSA signatures cost half again as much CPU.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The provider every TLS configuration of the process uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "aws-lc")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "aws-lc"))]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}
