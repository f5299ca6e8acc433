//! JSON route file in Hipache's layout (stub: replaced by the routes work).

use std::path::Path;
use std::time::Duration;

use super::{Backend, Frontend, Lookup, RouteError, RouteSource};

#[derive(Clone)]
pub struct FileRoutes {}

#[derive(Debug, thiserror::Error)]
pub enum FileRoutesError {}

impl FileRoutes {
    pub fn open(_path: &Path, _dead_ttl: Duration) -> Result<Self, FileRoutesError> {
        unimplemented!()
    }
}

impl RouteSource for FileRoutes {
    async fn lookup(&self, _host: &str) -> Result<Option<Lookup>, RouteError> {
        unimplemented!()
    }
    fn mark_dead(&self, _host: &str, _frontend: &Frontend, _backend: &Backend) {}
}
