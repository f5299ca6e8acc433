//! Commands of other modules' own keys, beside the routes: the state the ACME client keeps in
//! Redis (its account, challenge answers, order locks, back-off) goes through the same
//! connections, under the driver's prefix, to the write server or the cluster node owning the
//! key. What the keys mean is the caller's.

use redis::{Pipeline, Value};

use super::cluster::Group;
use super::link::LinkError;
use super::servers::Servers;
use super::RedisRoutes;

/// Why a command of [`RedisRoutes::execute`] got no usable answer.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub(crate) struct StoreError(String);

impl From<LinkError> for StoreError {
    fn from(error: LinkError) -> Self {
        Self(error.to_string())
    }
}

impl RedisRoutes {
    /// The driver's key prefix, for keys the caller builds.
    pub(crate) fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// Runs `pipe` (commands on `key` only, which carries the prefix already) on the write
    /// server, or on `key`'s node; one reply per command. A command may run twice when the
    /// connection broke under it (see `Link::query`): callers send only commands whose repeat
    /// they can live with.
    pub(crate) async fn execute(
        &self,
        key: &str,
        pipe: &Pipeline,
    ) -> Result<Vec<Value>, StoreError> {
        let values = match &self.shared.servers {
            Servers::Single { write, .. } => write.query::<Vec<Value>>(pipe).await?,
            Servers::Cluster(cluster) => {
                let group = Group {
                    key: key.as_bytes().to_vec(),
                    commands: pipe.cmd_iter().cloned().collect(),
                    atomic: pipe.is_transaction(),
                };
                let (replies, _) = cluster.run(&[group]).await?;
                replies.into_iter().flat_map(|r| r.values).collect()
            }
        };
        for value in &values {
            if let Value::ServerError(error) = value {
                return Err(StoreError(format!("{error:?}")));
            }
        }
        Ok(values)
    }
}
