//! `acme`: checked at load, so an ACME setup that cannot work fails at startup with the key that
//! is wrong, not at the first handshake.

use std::path::PathBuf;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::Ctx;
use crate::config::acme::{Acme, Challenge, LETS_ENCRYPT};
use crate::config::raw::RawAcme;
use crate::config::ConfigError;

const CA_KEY: &str = "acme.directoryCa";
const DEFAULT_RENEW_BEFORE_DAYS: u64 = 30;
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The `acme` section; `redis` and `redis_certificates` say whether the rest of the config lets
/// issued certificates be stored and served (the Redis driver, `https.redisCertificates`).
pub(super) fn acme(
    raw: RawAcme,
    redis: bool,
    redis_certificates: bool,
    ctx: &Ctx<'_>,
) -> Result<Acme, ConfigError> {
    if !redis {
        return Err(ctx.err(
            "acme",
            "needs the Redis driver: issued certificates and the ACME state live in Redis",
        ));
    }
    if !redis_certificates {
        return Err(ctx.err(
            "acme",
            "needs https.redisCertificates: true (and an https listener): issued certificates are served from Redis",
        ));
    }
    let directory = raw.directory.unwrap_or_else(|| LETS_ENCRYPT.to_owned());
    if !(directory.starts_with("https://") || directory.starts_with("http://"))
        || directory.parse::<http::Uri>().is_err()
    {
        return Err(ctx.err(
            "acme.directory",
            format!("not an http(s) URL: {directory:?}"),
        ));
    }
    let challenge = match raw.challenge.as_deref() {
        None | Some("http-01") => Challenge::Http01,
        Some("tls-alpn-01") => Challenge::TlsAlpn01,
        Some(other) => {
            return Err(ctx.err(
                "acme.challenge",
                format!("{other:?}: expected \"http-01\" or \"tls-alpn-01\""),
            ))
        }
    };
    let days = raw.renew_before.unwrap_or(DEFAULT_RENEW_BEFORE_DAYS);
    if days == 0 {
        return Err(ctx.err("acme.renewBefore", "must be at least 1 (days)"));
    }
    let (directory_ca, directory_ca_certs) = match raw.directory_ca.filter(|p| !p.is_empty()) {
        None => (None, Vec::new()),
        Some(path) => {
            let path = PathBuf::from(path);
            let pem = std::fs::read(&path).map_err(|source| ConfigError::Unreadable {
                file: ctx.source.to_path_buf(),
                key: CA_KEY.to_owned(),
                path: path.clone(),
                source,
            })?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ctx.err(CA_KEY, format!("{}: invalid PEM: {e}", path.display())))?;
            if certs.is_empty() {
                let problem = format!("{}: no certificate in the file", path.display());
                return Err(ctx.err(CA_KEY, problem));
            }
            (Some(path), certs)
        }
    };
    Ok(Acme {
        directory,
        email: raw.email.filter(|e| !e.is_empty()),
        challenge,
        on_demand: raw.on_demand.unwrap_or(true),
        renew_before: DAY * u32::try_from(days.min(36_500)).unwrap_or(36_500),
        directory_ca,
        directory_ca_certs,
    })
}
