//! The answers to the ACME server's challenges, kept in Redis while an order runs so that any
//! node of the fleet gives them, whichever node ordered: http-01 key authorizations by token
//! (read by the session for `GET /.well-known/acme-challenge/<token>` on plain HTTP), and
//! tls-alpn-01 certificates by name (RFC 8737: self-signed, for the name alone, with the
//! `acmeIdentifier` extension holding the SHA-256 of the key authorization), served to a
//! ClientHello that offers ALPN `acme-tls/1`.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::keys;
use crate::routes::redis::{RedisRoutes, StoreError};
use crate::routes::{TLS_CERTIFICATE_FIELD, TLS_KEY_FIELD};

/// The ALPN protocol of a tls-alpn-01 validation (RFC 8737).
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// The path prefix of an http-01 validation (RFC 8555, 8.3).
pub(crate) const HTTP_01_PATH: &str = "/.well-known/acme-challenge/";
/// How long a published answer stays: past any validation of the order that wrote it.
pub(super) const ANSWER_TTL: Duration = Duration::from_secs(10 * 60);

/// The token of an http-01 validation request's `path`, if it is one. A token is base64url
/// (RFC 8555, 8.1): anything else is no token of ours.
pub(crate) fn http_token(path: &[u8]) -> Option<&str> {
    let token = path.strip_prefix(HTTP_01_PATH.as_bytes())?;
    let valid = !token.is_empty()
        && token.len() <= 256
        && token
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    valid.then(|| std::str::from_utf8(token).ok()).flatten()
}

/// Publishes the http-01 key authorization of `token`.
pub(super) async fn put_http(
    routes: &RedisRoutes,
    token: &str,
    key_authorization: &str,
) -> Result<String, StoreError> {
    let key = format!("{}{}{token}", routes.prefix(), keys::HTTP_01);
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(&key)
        .arg(key_authorization)
        .arg("PX")
        .arg(ANSWER_TTL.as_millis() as u64);
    routes.execute(&key, &pipe).await?;
    Ok(key)
}

/// The http-01 key authorization published for `token`.
pub(crate) async fn http_answer(
    routes: &RedisRoutes,
    token: &str,
) -> Result<Option<String>, StoreError> {
    let key = format!("{}{}{token}", routes.prefix(), keys::HTTP_01);
    let mut pipe = redis::pipe();
    pipe.cmd("GET").arg(&key);
    match routes.execute(&key, &pipe).await?.into_iter().next() {
        Some(Value::BulkString(bytes)) => Ok(String::from_utf8(bytes).ok()),
        _ => Ok(None),
    }
}

/// Makes and publishes the tls-alpn-01 certificate of `name` for `digest` (the SHA-256 of the
/// key authorization).
pub(super) async fn put_alpn(
    routes: &RedisRoutes,
    name: &str,
    digest: &[u8],
) -> Result<String, String> {
    let (cert_pem, key_pem) = alpn_certificate(name, digest).map_err(|e| e.to_string())?;
    let key = format!("{}{}{name}", routes.prefix(), keys::TLS_ALPN_01);
    let mut pipe = redis::pipe();
    pipe.cmd("HSET")
        .arg(&key)
        .arg(TLS_CERTIFICATE_FIELD)
        .arg(cert_pem)
        .arg(TLS_KEY_FIELD)
        .arg(key_pem);
    pipe.cmd("PEXPIRE")
        .arg(&key)
        .arg(ANSWER_TTL.as_millis() as u64);
    routes
        .execute(&key, &pipe)
        .await
        .map_err(|e| e.to_string())?;
    Ok(key)
}

/// The tls-alpn-01 certificate published for `name`, ready to serve.
pub(crate) async fn alpn_answer(
    routes: &RedisRoutes,
    name: &str,
    provider: &CryptoProvider,
) -> Result<Option<Arc<CertifiedKey>>, StoreError> {
    let key = format!("{}{}{name}", routes.prefix(), keys::TLS_ALPN_01);
    let mut pipe = redis::pipe();
    pipe.cmd("HMGET")
        .arg(&key)
        .arg(TLS_CERTIFICATE_FIELD)
        .arg(TLS_KEY_FIELD);
    let Some(value) = routes.execute(&key, &pipe).await?.into_iter().next() else {
        return Ok(None);
    };
    let fields: Vec<Option<Vec<u8>>> = redis::from_redis_value(value).unwrap_or_default();
    let [Some(cert), Some(key)] = fields.as_slice() else {
        return Ok(None);
    };
    Ok(certified(cert, key, provider))
}

/// The challenge certificate ready to serve. Not through `tls::certs::from_pem`: its check
/// that the key matches parses the certificate with webpki, which refuses the critical
/// `acmeIdentifier` extension it does not know.
fn certified(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Option<Arc<CertifiedKey>> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).ok()?;
    let signing = provider.key_provider.load_private_key(key).ok()?;
    Some(Arc::new(CertifiedKey::new(chain, signing)))
}

/// Removes published answers once their order ended (they would expire anyway).
pub(super) async fn remove(routes: &RedisRoutes, keys: &[String]) {
    for key in keys {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(key);
        let _ = routes.execute(key, &pipe).await;
    }
}

/// A self-signed certificate for `name` carrying the `acmeIdentifier` extension (PEM chain,
/// PEM key).
fn alpn_certificate(name: &str, digest: &[u8]) -> Result<(String, String), rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_base64url_token_under_the_challenge_path_is_one() {
        assert_eq!(
            http_token(b"/.well-known/acme-challenge/abc-DEF_123"),
            Some("abc-DEF_123")
        );
        assert_eq!(http_token(b"/.well-known/acme-challenge/"), None);
        assert_eq!(http_token(b"/.well-known/acme-challenge/a/b"), None);
        assert_eq!(http_token(b"/.well-known/acme-challenge/a?b"), None);
        assert_eq!(http_token(b"/other"), None);
    }

    #[test]
    fn an_alpn_certificate_can_be_served() {
        let (cert, key) = alpn_certificate("a.test", &[7; 32]).unwrap();
        let provider = crate::crypto::tls_provider();
        let served = certified(cert.as_bytes(), key.as_bytes(), &provider).unwrap();
        assert_eq!(served.cert.len(), 1);
    }
}
