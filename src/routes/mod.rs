//! Route sources: where frontends, their backends and dead marks come from.
//!
//! One trait, two implementations: [`redis::RedisRoutes`] (production, Hipache's key layout) and
//! [`file::FileRoutes`] (a JSON file in the same layout, for a machine without Redis). The proxy
//! only sees [`RouteSource`], [`Lookup`] and [`Frontend`]; how a source stores, caches or marks is
//! its own business.

pub(crate) mod backend;
pub(crate) mod dead;
pub(crate) mod file;
pub(crate) mod redis;

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub(crate) use backend::{BackendUrl, BackendUrlError};

/// Key prefixes of Hipache's layout, shared by every source.
pub(crate) const FRONTEND_PREFIX: &str = "frontend:";
pub(crate) const DEAD_PREFIX: &str = "dead:";

/// One usable backend of a frontend.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Backend {
    /// Position in the frontend list minus one: the number Hipache writes into `dead:<host>`.
    pub(crate) index: usize,
    pub(crate) url: BackendUrl,
}

/// A frontend list that matched a request host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frontend {
    /// The key that matched, without prefix: `www.example.com`, `*.example.com` or `*`.
    pub(crate) key: String,
    /// Element 0 of the list, the name shown in the access log. Shared, like `backends`, by
    /// every answer a source builds from the same list (see the Redis source's cache).
    pub(crate) id: Arc<str>,
    /// Entries that parse as backend URLs; unusable ones are skipped (and logged by the source).
    pub(crate) backends: Arc<[Backend]>,
    /// Number of backend entries in the list, usable or not, as Hipache publishes it.
    pub(crate) backend_count: usize,
}

impl Frontend {
    /// Builds a frontend from the raw list (`[id, url, url, ...]`); `None` for an empty list.
    /// Entries that are not URLs are reported through `on_bad_url` and left out, keeping the
    /// indexes of the others as in the list.
    pub(crate) fn from_list(
        key: &str,
        list: &[String],
        mut on_bad_url: impl FnMut(&str, BackendUrlError),
    ) -> Option<Self> {
        let (id, entries) = list.split_first()?;
        let backends: Vec<Backend> = entries
            .iter()
            .enumerate()
            .filter_map(|(index, text)| match BackendUrl::parse(text) {
                Ok(url) => Some(Backend { index, url }),
                Err(error) => {
                    on_bad_url(text, error);
                    None
                }
            })
            .collect();
        Some(Self {
            key: key.to_owned(),
            id: id.as_str().into(),
            backends: backends.into(),
            backend_count: entries.len(),
        })
    }
}

/// The answer to a lookup: the frontend that matched and the backend indexes currently dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lookup {
    pub(crate) frontend: Arc<Frontend>,
    /// Indexes (see [`Backend::index`]) flagged dead for the request's host.
    pub(crate) dead: Vec<usize>,
}

/// Why a lookup could not be answered at all (as opposed to "no such frontend").
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum RouteError {
    #[error("route source unavailable: {reason}")]
    Unavailable { reason: String },
}

/// Where routes come from. Implementations are cheap to clone handles shared by a worker's tasks.
pub(crate) trait RouteSource: Clone + 'static {
    /// Finds the frontend for a normalised host (lowercase, no port): the host itself, then its
    /// wildcards, then `*` (see [`crate::router::candidates`]), with the dead set of `host`.
    /// `Ok(None)` means no candidate has a frontend.
    fn lookup(&self, host: &str) -> impl Future<Output = Result<Option<Lookup>, RouteError>>;

    /// Flags `backend` of `frontend` dead for `host` (Hipache's passive check). Returns at once;
    /// any write happens in the background and its failure is logged, never surfaced.
    fn mark_dead(&self, host: &str, frontend: &Frontend, backend: &Backend);
}

/// Locks state shared by a route source's tasks. Every such value (caches, dead marks, tracking
/// state) is updated in single steps that leave it consistent, so a lock poisoned by a panic
/// elsewhere is still safe to use: serving on beats failing every later request.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontend_keeps_list_indexes_and_skips_bad_urls() {
        let list: Vec<String> = ["site", "http://a:1", "not a url", "http://c:3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut bad = Vec::new();
        let frontend = Frontend::from_list("x.test", &list, |t, _| bad.push(t.to_owned())).unwrap();
        assert_eq!(&*frontend.id, "site");
        assert_eq!(frontend.backend_count, 3);
        let indexes: Vec<_> = frontend.backends.iter().map(|b| b.index).collect();
        assert_eq!(indexes, [0, 2]);
        assert_eq!(bad, ["not a url"]);
        assert!(Frontend::from_list("x.test", &[], |_, _| {}).is_none());
    }
}
