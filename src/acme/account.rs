//! The ACME account, one per directory for the whole fleet: its credentials (key and URL) live
//! in Redis under `acme:account:<directory>`. The first node that needs it and finds none
//! registers one and stores it with `SET NX`; a node that lost that race uses the stored one
//! (the account it registered is left unused at the server, which costs nothing).

use bytes::Bytes;
use hyper_util::rt::TokioExecutor;
use instant_acme::{Account, AccountBuilder, AccountCredentials, BodyWrapper, NewAccount};
use redis::Value;

use super::keys;
use crate::config::acme::Acme as AcmeConfig;
use crate::routes::redis::RedisRoutes;

/// The fleet's account for `config.directory`, registered if there is none yet.
pub(super) async fn load_or_create(
    routes: &RedisRoutes,
    config: &AcmeConfig,
) -> Result<Account, String> {
    let key = format!("{}{}{}", routes.prefix(), keys::ACCOUNT, config.directory);
    if let Some(stored) = stored(routes, &key).await? {
        return restore(config, stored).await;
    }
    let contact = config.email.as_ref().map(|email| format!("mailto:{email}"));
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contact,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = builder(config)?
        .create(&new, config.directory.clone(), None)
        .await
        .map_err(|e| format!("cannot register an account: {e}"))?;
    let json = serde_json::to_string(&credentials).map_err(|e| e.to_string())?;
    let mut pipe = redis::pipe();
    pipe.cmd("SET").arg(&key).arg(&json).arg("NX");
    let stored_ours = matches!(
        routes
            .execute(&key, &pipe)
            .await
            .map_err(|e| e.to_string())?
            .first(),
        Some(Value::Okay | Value::SimpleString(_))
    );
    if stored_ours {
        tracing::info!(directory = %config.directory, "acme account registered");
        return Ok(account);
    }
    match stored(routes, &key).await? {
        Some(stored) => restore(config, stored).await,
        None => Ok(account),
    }
}

async fn stored(routes: &RedisRoutes, key: &str) -> Result<Option<String>, String> {
    let mut pipe = redis::pipe();
    pipe.cmd("GET").arg(key);
    match routes
        .execute(key, &pipe)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
    {
        Some(Value::BulkString(bytes)) => Ok(String::from_utf8(bytes).ok()),
        _ => Ok(None),
    }
}

async fn restore(config: &AcmeConfig, stored: String) -> Result<Account, String> {
    let credentials: AccountCredentials = serde_json::from_str(&stored)
        .map_err(|e| format!("unusable account credentials in redis: {e}"))?;
    builder(config)?
        .from_credentials(credentials)
        .await
        .map_err(|e| format!("cannot reach the ACME directory: {e}"))
}

/// The HTTP client for the directory, trusting the system's roots and `directoryCa`.
fn builder(config: &AcmeConfig) -> Result<AccountBuilder, String> {
    let provider = crate::crypto::tls_provider();
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up the ACME client: {e}"))?
        .with_root_certificates(crate::tls::backend_trust::roots(&config.directory_ca_certs))
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, BodyWrapper<Bytes>>(connector);
    Ok(Account::builder_with_http(Box::new(client)))
}
