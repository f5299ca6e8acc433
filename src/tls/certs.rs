//! PEM files → a `CertifiedKey` and the DNS names it serves, with startup errors that name the file.
//!
//! Owns: reading a key/cert(/ca) triple, refusing a key that does not match its certificate or
//! that is encrypted (rustls has no PEM decryption), and listing a certificate folder. It does not
//! decide which certificate a handshake gets: that is `sni`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::x509::{self, Facts};

/// Why the TLS set-up cannot be built. Every message names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: invalid PEM", path.display())]
    Pem {
        path: PathBuf,
        #[source]
        source: pem::Error,
    },
    #[error("{}: no PEM certificate found", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no PEM private key found", path.display())]
    NoKey { path: PathBuf },
    #[error(
        "{}: the private key is encrypted and cannot be read (passphrases are not supported); \
         decrypt it once with `openssl pkey -in {} -out plain.key` and point the config at the \
         decrypted key",
        path.display(),
        path.display()
    )]
    EncryptedKey { path: PathBuf },
    #[error("{}: unusable private key", path.display())]
    BadKey {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("{}: the private key does not match the certificate {}", key.display(), cert.display())]
    Mismatch { key: PathBuf, cert: PathBuf },
    #[error("cannot list the certificate folder {}", path.display())]
    CertDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot build the TLS configuration")]
    Config(#[source] rustls::Error),
}

/// Why a certificate and key given as PEM text (a `tls:` hash in Redis, `cert add`) are
/// unusable. The caller names where they came from.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PemError {
    #[error("invalid PEM")]
    Pem(#[source] pem::Error),
    #[error("no PEM certificate found")]
    NoCertificate,
    #[error("no PEM private key found")]
    NoKey,
    #[error("the private key is encrypted (passphrases are not supported)")]
    EncryptedKey,
    #[error("unusable private key")]
    BadKey(#[source] rustls::Error),
    #[error("the private key does not match the certificate")]
    Mismatch,
}

/// Where one certificate comes from: a key, a certificate chain, CA certificates to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    pub(crate) key: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) ca: Vec<PathBuf>,
}

/// A certificate ready to serve, and the DNS names (`example.com`, `*.example.com`) it is for.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) key: Arc<CertifiedKey>,
    pub(crate) names: Vec<String>,
    /// Its expiry and issuer, when its DER could be walked.
    pub(crate) facts: Option<Facts>,
}

/// Reads `source` and checks that its key matches its certificate.
pub(crate) fn load(source: &Source, provider: &CryptoProvider) -> Result<Loaded, TlsError> {
    let cert_pem = read(&source.cert)?;
    let mut chain = certificates(&cert_pem, &source.cert)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: source.cert.clone(),
        });
    }
    for ca in &source.ca {
        chain.extend(certificates(&read(ca)?, ca)?);
    }
    let key_pem = if source.key == source.cert {
        cert_pem
    } else {
        read(&source.key)?
    };
    let key = private_key(&key_pem, &source.key)?;
    let names = dns_names(&chain[0]);
    let facts = x509::facts(&chain[0]);
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|error| match error {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            key: source.key.clone(),
            cert: source.cert.clone(),
        },
        source_error => TlsError::BadKey {
            path: source.key.clone(),
            source: source_error,
        },
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        names,
        facts,
    })
}

/// Reads a certificate chain and its key from PEM text and checks that they match.
pub(crate) fn from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<Loaded, PemError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(PemError::Pem)?;
    let Some(leaf) = chain.first() else {
        return Err(PemError::NoCertificate);
    };
    let names = dns_names(leaf);
    let facts = x509::facts(leaf);
    if is_encrypted(key_pem) {
        return Err(PemError::EncryptedKey);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| match error {
        pem::Error::NoItemsFound => PemError::NoKey,
        other => PemError::Pem(other),
    })?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|error| match error {
        rustls::Error::InconsistentKeys(_) => PemError::Mismatch,
        other => PemError::BadKey(other),
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        names,
        facts,
    })
}

/// The DNS names and the facts (expiry, issuer) of the first certificate in `cert_pem`,
/// without a key: what `cert ls` shows.
pub(crate) fn describe(cert_pem: &[u8]) -> Result<(Vec<String>, Option<Facts>), PemError> {
    let leaf = CertificateDer::pem_slice_iter(cert_pem)
        .next()
        .ok_or(PemError::NoCertificate)?
        .map_err(PemError::Pem)?;
    Ok((dns_names(&leaf), x509::facts(&leaf)))
}

/// The pairs of a certificate folder: `<name>.pem` with `<name>.key` beside it, or a `<name>.pem`
/// that holds the key too. Other files are skipped. Sorted, so the outcome does not depend on
/// the directory order.
pub(crate) fn folder(path: &Path) -> Result<Vec<Source>, TlsError> {
    let fail = |source| TlsError::CertDir {
        path: path.to_path_buf(),
        source,
    };
    let mut pems: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(fail)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pem") && p.is_file())
        .collect();
    pems.sort();
    Ok(pems
        .into_iter()
        .map(|cert| {
            let key = cert.with_extension("key");
            let key = if key.is_file() { key } else { cert.clone() };
            Source {
                key,
                cert,
                ca: Vec::new(),
            }
        })
        .collect())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_path_buf(),
            source,
        })
}

fn private_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    if is_encrypted(pem) {
        return Err(TlsError::EncryptedKey {
            path: path.to_path_buf(),
        });
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|error| match error {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        source => TlsError::Pem {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// PKCS#8 `ENCRYPTED PRIVATE KEY`, or an OpenSSL traditional key with `Proc-Type: 4,ENCRYPTED`.
fn is_encrypted(pem: &[u8]) -> bool {
    let contains = |needle: &[u8]| pem.windows(needle.len()).any(|w| w == needle);
    contains(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || contains(b"Proc-Type: 4,ENCRYPTED")
}

/// The DNS names of the certificate's subjectAltName, lowercased. A certificate webpki cannot
/// parse serves no name (it can still be a default).
fn dns_names(cert: &CertificateDer<'_>) -> Vec<String> {
    match webpki::EndEntityCert::try_from(cert) {
        Ok(parsed) => parsed
            .valid_dns_names()
            .map(str::to_ascii_lowercase)
            .collect(),
        Err(error) => {
            tracing::debug!(?error, "cannot read the certificate's names");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_keys_are_recognised() {
        assert!(is_encrypted(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"
        ));
        assert!(is_encrypted(
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n"
        ));
        assert!(!is_encrypted(
            b"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"
        ));
    }

    #[test]
    fn missing_key_in_pem_is_named() {
        let error = private_key(b"nothing here", Path::new("k.pem")).unwrap_err();
        assert_eq!(error.to_string(), "k.pem: no PEM private key found");
    }
}
