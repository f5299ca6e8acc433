//! Getting a name its certificate, fleet-wide: the back-off check, the order lock, the order,
//! and what follows it (the certificate into `tls:<name>`, or the failure into the back-off),
//! with one log line per order started, finished or failed, and the orders counter.
//!
//! A node that finds the lock taken waits (on demand) for the other node's certificate, and
//! takes the order over if the lock goes without one (its owner died): the lock expires
//! [`LOCK_TTL`] after its owner's last renewal.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Value;
use tokio::time::{sleep, Instant};
use tracing::{debug, info, warn};

use super::keys::{self, is_due};
use super::lock::{OrderLock, LOCK_TTL, RENEW_EVERY};
use super::order::{self, OrderError};
use super::Inner;
use crate::escape::Escaped;
use crate::metrics::{self, names::Counter};
use crate::routes::redis::StoreError;
use crate::routes::{
    TLS_CERTIFICATE_FIELD, TLS_EXPIRES_FIELD, TLS_KEY_FIELD, TLS_PREFIX, TLS_SOURCE_FIELD,
};
use crate::tls::certs::{self as pem, Loaded};

/// Longest a handshake's order (ours or another node's) is waited for by this node's task.
const WAIT_FOR_ORDER: Duration = Duration::from_secs(180);
/// Longest one order may take, account and polling included.
const ORDER_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How often a node waiting for another's order looks.
const POLL: Duration = Duration::from_millis(250);

/// Why a name's certificate is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// A handshake found none.
    OnDemand,
    /// The one held is due for renewal: only the node that gets the lock acts.
    Renewal,
}

impl Inner {
    /// Makes sure `name` has a certificate not due for renewal, ordering one when this node
    /// gets the lock; the certificate `name` has in the end, if any.
    pub(super) async fn obtain(&self, name: &str, why: Why) -> Option<Arc<Loaded>> {
        let deadline = Instant::now() + WAIT_FOR_ORDER;
        loop {
            if let Some(reason) = self.backed_off(name).await {
                debug!(name = %Escaped(name), reason = %Escaped(&reason), "acme order backed off");
                return self.current(name).await;
            }
            match OrderLock::acquire(&self.routes, name).await {
                Ok(Some(lock)) => return self.order_locked(name, lock).await,
                Ok(None) if why == Why::Renewal => return None,
                Ok(None) => {}
                Err(error) => {
                    warn!(name = %Escaped(name), %error, "acme order lock unavailable");
                    return None;
                }
            }
            loop {
                sleep(POLL).await;
                if let Some(found) = self.current(name).await {
                    return Some(found);
                }
                if Instant::now() >= deadline {
                    return None;
                }
                if !OrderLock::is_held(&self.routes, name).await.unwrap_or(true) {
                    break;
                }
            }
        }
    }

    async fn order_locked(&self, name: &str, lock: OrderLock) -> Option<Arc<Loaded>> {
        if let Some(found) = self.current(name).await {
            let not_after = found.facts.as_ref().map_or(0, |f| f.not_after);
            if !is_due(not_after, unix_now(), self.config.renew_before) {
                let _ = lock.release().await;
                return Some(found);
            }
        }
        info!(name = %Escaped(name), challenge = self.config.challenge.name(), "acme order started");
        let ordered = async {
            let account = self.account().await.map_err(OrderError::Refused)?;
            order::run(&account, &self.routes, name, self.config.challenge).await
        };
        // A hung ACME server must not keep the lock (and the name) forever.
        let ordered = async {
            tokio::time::timeout(ORDER_TIMEOUT, ordered)
                .await
                .unwrap_or_else(|_| {
                    Err(OrderError::Refused("the ACME server timed out".to_owned()))
                })
        };
        let outcome = tokio::select! {
            outcome = ordered => outcome,
            () = keep(&lock) => Err(OrderError::Refused("lost the order lock".to_owned())),
        };
        let result = match outcome {
            Ok(issued) => match self.store(name, &issued).await {
                Ok(loaded) => {
                    metrics::count(Counter::AcmeOrdersIssued);
                    let expires = loaded.facts.as_ref().map(|f| f.not_after);
                    info!(name = %Escaped(name), expires, "acme order finished");
                    Some(loaded)
                }
                Err(reason) => {
                    self.failed(name, &reason).await;
                    None
                }
            },
            Err(error) => {
                self.failed(name, &error.to_string()).await;
                self.current(name).await
            }
        };
        let _ = lock.release().await;
        result
    }

    /// The certificate `tls:<name>` holds now, read from Redis (not from the worker's cache,
    /// which another node's write may not have reached yet).
    pub(super) async fn current(&self, name: &str) -> Option<Arc<Loaded>> {
        let key = format!("{}{TLS_PREFIX}{name}", self.routes.prefix());
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(&key)
            .arg(TLS_CERTIFICATE_FIELD)
            .arg(TLS_KEY_FIELD);
        let value = self
            .routes
            .execute(&key, &pipe)
            .await
            .ok()?
            .into_iter()
            .next()?;
        let fields: Vec<Option<Vec<u8>>> = redis::from_redis_value(value).ok()?;
        let [Some(cert), Some(key)] = fields.as_slice() else {
            return None;
        };
        pem::from_pem(cert, key, &self.provider).ok().map(Arc::new)
    }

    /// Whether ACME wrote the certificate `tls:<name>` holds (an operator's, written over it
    /// with `cert add` or by hand, is theirs to renew).
    pub(super) async fn is_ours(&self, name: &str) -> bool {
        let key = format!("{}{TLS_PREFIX}{name}", self.routes.prefix());
        let mut pipe = redis::pipe();
        pipe.cmd("HGET").arg(&key).arg(TLS_SOURCE_FIELD);
        let source = self
            .routes
            .execute(&key, &pipe)
            .await
            .ok()
            .and_then(|v| v.into_iter().next());
        matches!(source, Some(Value::BulkString(s)) if s == keys::SOURCE_ACME.as_bytes())
    }

    /// The reason of the failure that backs `name` off, while it does.
    pub(super) async fn backed_off(&self, name: &str) -> Option<String> {
        let key = format!("{}{}{name}", self.routes.prefix(), keys::BACKOFF);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&key);
        match self
            .routes
            .execute(&key, &pipe)
            .await
            .ok()?
            .into_iter()
            .next()?
        {
            Value::BulkString(reason) => Some(String::from_utf8_lossy(&reason).into_owned()),
            _ => None,
        }
    }

    /// Writes the issued certificate where every worker of the fleet serves it from.
    async fn store(&self, name: &str, issued: &order::Issued) -> Result<Arc<Loaded>, String> {
        let loaded = pem::from_pem(
            issued.chain_pem.as_bytes(),
            issued.key_pem.as_bytes(),
            &self.provider,
        )
        .map_err(|e| format!("the issued certificate is unusable: {e}"))?;
        let expires = loaded.facts.as_ref().map_or(0, |f| f.not_after);
        let prefix = self.routes.prefix();
        let key = format!("{prefix}{TLS_PREFIX}{name}");
        let mut pipe = redis::pipe();
        pipe.cmd("HSET")
            .arg(&key)
            .arg(TLS_CERTIFICATE_FIELD)
            .arg(&issued.chain_pem)
            .arg(TLS_KEY_FIELD)
            .arg(&issued.key_pem)
            .arg(TLS_SOURCE_FIELD)
            .arg(keys::SOURCE_ACME)
            .arg(TLS_EXPIRES_FIELD)
            .arg(expires);
        let text = |e: StoreError| e.to_string();
        self.routes.execute(&key, &pipe).await.map_err(text)?;
        let names = format!("{prefix}{}", keys::NAMES);
        let mut pipe = redis::pipe();
        pipe.cmd("SADD").arg(&names).arg(name);
        self.routes.execute(&names, &pipe).await.map_err(text)?;
        let failures = format!("{prefix}{}{name}", keys::FAILURES);
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(&failures);
        let _ = self.routes.execute(&failures, &pipe).await;
        Ok(Arc::new(loaded))
    }

    /// Counts a failure of `name` and backs the whole fleet off it.
    async fn failed(&self, name: &str, reason: &str) {
        metrics::count(Counter::AcmeOrdersFailed);
        let prefix = self.routes.prefix();
        let failures_key = format!("{prefix}{}{name}", keys::FAILURES);
        let mut pipe = redis::pipe();
        pipe.cmd("INCR").arg(&failures_key);
        pipe.cmd("PEXPIRE")
            .arg(&failures_key)
            .arg(keys::FAILURES_MEMORY.as_millis() as u64);
        let failures = match self.routes.execute(&failures_key, &pipe).await {
            Ok(values) => match values.first() {
                Some(Value::Int(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
                _ => 1,
            },
            Err(_) => 1,
        };
        let delay = keys::backoff(failures);
        let backoff_key = format!("{prefix}{}{name}", keys::BACKOFF);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&backoff_key)
            .arg(reason)
            .arg("PX")
            .arg(delay.as_millis() as u64);
        let _ = self.routes.execute(&backoff_key, &pipe).await;
        warn!(
            name = %Escaped(name),
            reason = %Escaped(reason),
            failures,
            retry_in_secs = delay.as_secs(),
            "acme order failed"
        );
    }
}

/// Renews `lock` until it is lost (returns) or the caller stops polling.
async fn keep(lock: &OrderLock) {
    loop {
        sleep(RENEW_EVERY).await;
        match lock.renew().await {
            Ok(true) => {}
            Ok(false) => return,
            // Redis unreachable: the lock still runs for LOCK_TTL; try again.
            Err(error) => {
                debug!(%error, ttl_secs = LOCK_TTL.as_secs(), "acme order lock renewal failed")
            }
        }
    }
}

pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
