//! Route sources: where frontends, their backends, dead marks and backend states come from.
//!
//! One trait, two implementations: [`redis::RedisRoutes`] (production, Hipache's key layout) and
//! [`file::FileRoutes`] (a JSON file in the same layout, for a machine without Redis). The proxy
//! only sees [`RouteSource`], [`Lookup`] and [`Frontend`]; how a source stores, caches or marks is
//! its own business.

pub(crate) mod dead;
pub(crate) mod file;
pub(crate) mod footprint;
pub(crate) mod redis;

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub(crate) use crate::frontend::{
    Backend, BackendState, BackendUrl, BackendUrlError, Frontend, Held,
};
pub(crate) use footprint::Footprint;

/// Key prefixes of Hipache's layout, shared by every source.
pub(crate) const FRONTEND_PREFIX: &str = "frontend:";
pub(crate) const DEAD_PREFIX: &str = "dead:";
/// Ours, beside Hipache's layout: `state:<host>` maps a backend URL to `drain` or `disable`
/// (see [`BackendState`]), for the same host as `dead:<host>`.
pub(crate) const STATE_PREFIX: &str = "state:";
/// hipache-raft's certificate hashes: `tls:<server name>` holds `certificate` and `key` (PEM).
pub(crate) const TLS_PREFIX: &str = "tls:";
/// The fields of a `tls:` hash.
pub(crate) const TLS_CERTIFICATE_FIELD: &str = "certificate";
pub(crate) const TLS_KEY_FIELD: &str = "key";
/// Ours, beside them in the certificates ACME issued: `source` (`acme`) and `expires` (Unix
/// seconds). A certificate written by other means has neither, and is never renewed.
pub(crate) const TLS_SOURCE_FIELD: &str = "source";
pub(crate) const TLS_EXPIRES_FIELD: &str = "expires";

/// The answer to a lookup: the frontend that matched, the backend indexes currently dead and
/// those an operator drains or disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lookup {
    pub(crate) frontend: Arc<Frontend>,
    /// Indexes (see [`Backend::index`]) flagged dead for the request's host.
    pub(crate) dead: Vec<usize>,
    /// Backends drained or disabled for the request's host (`state:<host>`).
    pub(crate) held: Held,
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
    /// wildcards, then `*` (see [`crate::host_keys::candidates`]), with the dead set and the
    /// backend states of `host`.
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
