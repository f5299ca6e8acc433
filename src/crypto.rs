//! The one place the crypto library is chosen, for everything that needs one: rustls' provider
//! (the https listeners and the `https://` backends alike), the session-ticket keys and the
//! sticky-session tokens. aws-lc-rs with the `aws-lc` feature (the default), ring with the
//! `ring` feature instead; only the chosen one is compiled. The two libraries expose the same
//! primitives under the same names, so the rest of the crate names `crate::crypto::hmac` and
//! never the library.
//!
//! Why aws-lc-rs by default: its RSA signatures, the cost of a full handshake with an RSA
//! certificate, are cheaper; ECDSA costs the same with both (benches/README.md).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

#[cfg(not(any(feature = "aws-lc", feature = "ring")))]
compile_error!("build with the `aws-lc` feature (the default) or the `ring` feature");

#[cfg(feature = "aws-lc")]
pub(crate) use aws_lc_rs::{aead, constant_time, digest, hkdf, hmac};
#[cfg(all(feature = "ring", not(feature = "aws-lc")))]
pub(crate) use ring::{aead, constant_time, digest, hkdf, hmac};

/// The provider every TLS configuration of the process uses.
pub(crate) fn tls_provider() -> Arc<CryptoProvider> {
    #[cfg(feature = "aws-lc")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc")))]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}
