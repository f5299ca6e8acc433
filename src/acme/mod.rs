//! Built-in ACME (RFC 8555): certificates issued on demand and renewed, with every piece of
//! state in Redis so that the whole fleet acts as one client.
//!
//! Owns: the account ([`account`]), one order ([`order`]), the challenge answers any node
//! gives ([`challenge`]), the per-name order lock ([`lock`]), the flow around an order with its
//! back-off ([`issue`]), renewal ([`renewal`]) and the key layout ([`keys`]). Issued
//! certificates go to the `tls:<name>` hashes `routes::redis` serves; this module does not serve
//! them. The session (`proxy`) asks it for http-01 answers and the handshake (`worker`) for
//! tls-alpn-01 certificates and on-demand issuance.
//!
//! Each worker runs its own client on its own thread: the order lock in Redis, not anything
//! local, makes exactly one node order a name; within a worker, concurrent handshakes for one
//! name share one task.

mod account;
mod challenge;
mod issue;
mod keys;
mod lock;
mod order;
mod renewal;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use instant_acme::Account;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

pub(crate) use challenge::{http_token, ACME_TLS_ALPN};
use issue::Why;

use crate::config::acme::Acme as AcmeConfig;
use crate::routes::redis::RedisRoutes;
use crate::routes::{lock as locked, RouteSource};
use crate::tls::certs::Loaded;

/// A worker's ACME client; cheap to clone.
#[derive(Clone)]
pub(crate) struct Acme {
    inner: Arc<Inner>,
}

/// The end of one name's task: `None` while it runs.
type Done = Option<Option<Arc<Loaded>>>;

struct Inner {
    config: AcmeConfig,
    routes: RedisRoutes,
    provider: Arc<CryptoProvider>,
    /// The fleet's account, once loaded or registered.
    account: tokio::sync::Mutex<Option<Account>>,
    /// Names whose task runs in this worker.
    running: Mutex<HashMap<String, watch::Receiver<Done>>>,
}

impl Acme {
    /// The client of `config` over `routes`; starts the renewal checks. Call it inside the
    /// worker's runtime.
    pub(crate) fn start(
        config: &AcmeConfig,
        routes: RedisRoutes,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        let inner = Arc::new(Inner {
            config: config.clone(),
            routes,
            provider,
            account: tokio::sync::Mutex::new(None),
            running: Mutex::new(HashMap::new()),
        });
        tokio::spawn(renewal::run(inner.clone()));
        Self { inner }
    }

    /// With `onDemand`, the certificate issued for `server_name` (a handshake found none):
    /// only for a name a frontend routes (exactly or by a wildcard; the catch-all `*` does not
    /// count), never for an address. Waits for this node's order or another's; the caller
    /// bounds the wait, and the order goes on without it.
    pub(crate) async fn on_demand(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let inner = &self.inner;
        if !inner.config.on_demand {
            return None;
        }
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        if crate::host_name::check(&name).is_err() || name.parse::<IpAddr>().is_ok() {
            return None;
        }
        match inner.routes.lookup(&name).await {
            Ok(Some(lookup)) if lookup.frontend.key != "*" => {}
            _ => return None,
        }
        let mut done = {
            let mut running = locked(&inner.running);
            match running.get(&name) {
                Some(done) => done.clone(),
                None => {
                    let (tell, done) = watch::channel(None);
                    running.insert(name.clone(), done.clone());
                    let inner = inner.clone();
                    tokio::spawn(async move {
                        let found = inner.obtain(&name, Why::OnDemand).await;
                        locked(&inner.running).remove(&name);
                        let _ = tell.send(Some(found));
                    });
                    done
                }
            }
        };
        let found = done
            .wait_for(Option::is_some)
            .await
            .ok()?
            .clone()
            .flatten()?;
        Some(found.key.clone())
    }

    /// The key authorization an http-01 validation of `token` expects, if an order of the
    /// fleet published one.
    pub(crate) async fn http_answer(&self, token: &str) -> Option<String> {
        challenge::http_answer(&self.inner.routes, token)
            .await
            .ok()
            .flatten()
    }

    /// The tls-alpn-01 certificate for `server_name`, if an order of the fleet published one.
    pub(crate) async fn alpn_answer(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        challenge::alpn_answer(&self.inner.routes, &name, &self.inner.provider)
            .await
            .ok()
            .flatten()
    }
}

impl Inner {
    /// The fleet's account, loaded from Redis (or registered) on first use.
    async fn account(&self) -> Result<Account, String> {
        let mut account = self.account.lock().await;
        if let Some(account) = account.as_ref() {
            return Ok(account.clone());
        }
        let loaded = account::load_or_create(&self.routes, &self.config).await?;
        *account = Some(loaded.clone());
        Ok(loaded)
    }
}
