//! Redis route source in Hipache's layout (stub: replaced by the routes work).

pub mod url;

use std::time::Duration;

use super::{Backend, Frontend, Lookup, RouteError, RouteSource};
use url::RedisUrl;

#[derive(Clone)]
pub struct RedisRoutes {}

impl RedisRoutes {
    pub fn new(_read: &RedisUrl, _write: &RedisUrl, _dead_ttl: Duration) -> Self {
        unimplemented!()
    }
}

impl RouteSource for RedisRoutes {
    async fn lookup(&self, _host: &str) -> Result<Option<Lookup>, RouteError> {
        unimplemented!()
    }
    fn mark_dead(&self, _host: &str, _frontend: &Frontend, _backend: &Backend) {}
}
