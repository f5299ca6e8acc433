//! The one place the crypto provider is chosen, for the https listeners and the `https://`
//! backends alike: aws-lc-rs when built with the `aws-lc` feature, ring otherwise (see the
//! README's TLS benchmark rows for why the default is what it is).

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
