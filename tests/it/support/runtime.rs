//! The runtime the tests drive their async clients on (HTTP/2, WebSocket, TLS): one
//! current-thread runtime per call, built in one place.

use std::future::Future;
use std::time::Duration;

/// A fresh current-thread runtime with I/O and timers.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// Runs `test` to its end on a fresh runtime.
pub(crate) fn block_on<F: Future>(test: F) -> F::Output {
    runtime().block_on(test)
}

/// Runs `test` on a fresh runtime, failing the test if it has not ended within `limit` (for
/// exchanges where a proxy holding something back would leave both sides waiting).
pub(crate) fn block_on_within<F: Future>(limit: Duration, test: F) -> F::Output {
    runtime()
        .block_on(async { tokio::time::timeout(limit, test).await })
        .expect("the exchange finished")
}
