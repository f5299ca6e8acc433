//! The per-name order lock: `SET acme:lock:<name> <token> NX PX`, so exactly one node of the
//! fleet orders a name. The owner renews it while the order runs; it is released by
//! compare-and-delete, so a node whose lock expired (stalled, then resumed) never deletes the
//! next owner's. A node that dies leaves a lock that expires within [`LOCK_TTL`], after which
//! another node takes the order over.

use std::time::Duration;

use rand::Rng as _;
use redis::Value;

use crate::routes::redis::{RedisRoutes, StoreError};

/// How long a lock lives without renewal: how soon another node takes over from a dead one.
pub(super) const LOCK_TTL: Duration = Duration::from_secs(15);
/// How often the owner renews it.
pub(super) const RENEW_EVERY: Duration = Duration::from_secs(5);

/// Extends the lock if `token` still owns it: 1 if so, 0 if not.
const RENEW: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                     return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
/// Deletes the lock if `token` still owns it.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                       return redis.call('del', KEYS[1]) else return 0 end";

/// A lock this node holds.
pub(super) struct OrderLock {
    routes: RedisRoutes,
    key: String,
    token: String,
}

impl OrderLock {
    /// Takes the lock of `name` if no node holds it.
    pub(super) async fn acquire(
        routes: &RedisRoutes,
        name: &str,
    ) -> Result<Option<Self>, StoreError> {
        let key = format!("{}{}{name}", routes.prefix(), super::keys::LOCK);
        let token = format!("{:032x}", rand::rng().random::<u128>());
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(millis(LOCK_TTL));
        let taken = matches!(
            routes.execute(&key, &pipe).await?.first(),
            Some(Value::Okay | Value::SimpleString(_))
        );
        Ok(taken.then(|| Self {
            routes: routes.clone(),
            key,
            token,
        }))
    }

    /// Whether any node holds the lock of `name`.
    pub(super) async fn is_held(routes: &RedisRoutes, name: &str) -> Result<bool, StoreError> {
        let key = format!("{}{}{name}", routes.prefix(), super::keys::LOCK);
        let mut pipe = redis::pipe();
        pipe.cmd("EXISTS").arg(&key);
        Ok(matches!(
            routes.execute(&key, &pipe).await?.first(),
            Some(Value::Int(1))
        ))
    }

    /// Extends the lock; `false` when it was lost (it expired and another node may own it).
    pub(super) async fn renew(&self) -> Result<bool, StoreError> {
        self.script(RENEW, Some(LOCK_TTL)).await
    }

    /// Gives the lock up, if still ours.
    pub(super) async fn release(self) -> Result<bool, StoreError> {
        self.script(RELEASE, None).await
    }

    async fn script(&self, script: &str, ttl: Option<Duration>) -> Result<bool, StoreError> {
        let mut pipe = redis::pipe();
        let cmd = pipe
            .cmd("EVAL")
            .arg(script)
            .arg(1)
            .arg(&self.key)
            .arg(&self.token);
        if let Some(ttl) = ttl {
            cmd.arg(millis(ttl));
        }
        Ok(matches!(
            self.routes.execute(&self.key, &pipe).await?.first(),
            Some(Value::Int(1))
        ))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
