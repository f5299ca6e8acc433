//! `server.backendCa` and `server.backendTlsVerify`: the trust settings for `https://`
//! backends, checked when the config is read so a bad CA file fails at startup, not at the
//! first request.

use std::path::PathBuf;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::Ctx;
use crate::config::{BackendTrust, ConfigError};

const KEY: &str = "server.backendCa";

pub(super) fn trust(
    ca_file: Option<&str>,
    verify: Option<bool>,
    ctx: &mut Ctx<'_>,
) -> Result<BackendTrust, ConfigError> {
    let (ca, ca_certs) = self::ca(ca_file, ctx)?;
    Ok(BackendTrust {
        ca,
        ca_certs,
        verify: self::verify(verify, ctx),
    })
}

/// The CA file and its certificates: `None` and none when absent or empty.
fn ca(
    raw: Option<&str>,
    ctx: &Ctx<'_>,
) -> Result<(Option<PathBuf>, Vec<CertificateDer<'static>>), ConfigError> {
    let Some(path) = raw.filter(|p| !p.is_empty()) else {
        return Ok((None, Vec::new()));
    };
    let path = PathBuf::from(path);
    let pem = std::fs::read(&path).map_err(|source| ConfigError::Unreadable {
        file: ctx.source.to_path_buf(),
        key: KEY.to_owned(),
        path: path.clone(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ctx.err(KEY, format!("{}: invalid PEM: {error}", path.display())))?;
    if certs.is_empty() {
        return Err(ctx.err(
            KEY,
            format!("{}: no certificate in the file", path.display()),
        ));
    }
    Ok((Some(path), certs))
}

/// `backendTlsVerify`, `true` unless turned off, which is worth a warning at start.
fn verify(raw: Option<bool>, ctx: &mut Ctx<'_>) -> bool {
    let verify = raw.unwrap_or(true);
    if !verify {
        ctx.warnings.push(
            "server.backendTlsVerify is false: certificates of https backends are not verified"
                .to_owned(),
        );
    }
    verify
}
