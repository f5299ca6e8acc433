//! The `acme` section's typed form: built-in ACME (RFC 8555) issuance into the Redis
//! certificate hashes. `None` in [`super::Config`] when the section is absent: off.

use std::path::PathBuf;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

/// Let's Encrypt's production directory, used when `acme.directory` is absent.
pub(crate) const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// `acme.*` with its defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Acme {
    /// `directory`: the ACME server's directory URL.
    pub(crate) directory: String,
    /// `email`: the account's contact, if any.
    pub(crate) email: Option<String>,
    /// `challenge`: how the ACME server checks that we serve a name.
    pub(crate) challenge: Challenge,
    /// `onDemand`: the first handshake for a name with a frontend and no certificate orders one.
    pub(crate) on_demand: bool,
    /// `renewBefore` (days in the file): a certificate this close to its expiry is renewed.
    pub(crate) renew_before: Duration,
    /// `directoryCa`: a PEM file trusted for the directory's own HTTPS besides the system's
    /// roots; `None`: system roots only.
    pub(crate) directory_ca: Option<PathBuf>,
    /// Its certificates, read when the config is loaded (by the master, which may read files
    /// the workers cannot).
    pub(crate) directory_ca_certs: Vec<CertificateDer<'static>>,
}

/// `acme.challenge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `"http-01"` (the default): a file under `/.well-known/acme-challenge/` on plain HTTP.
    Http01,
    /// `"tls-alpn-01"`: a certificate served to a ClientHello offering ALPN `acme-tls/1`.
    TlsAlpn01,
}

impl Challenge {
    /// The name in the config and in RFC 8555.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Http01 => "http-01",
            Self::TlsAlpn01 => "tls-alpn-01",
        }
    }
}
