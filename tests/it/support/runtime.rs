//! The runtime the tests drive their async clients on (HTTP/2, WebSocket, TLS): one
//! current-thread runtime per call, built in one place; and the thread the in-process backends
//! serve on.

use std::future::Future;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

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

/// A server on its own thread and runtime, told to stop and joined when dropped. A panic of
/// that thread fails the test (unless the test is failing already).
pub(crate) struct ServerThread {
    what: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Runs `serve(stopped)` on a new thread; `stopped` resolves when this is dropped.
    pub(crate) fn spawn<F: Future<Output = ()>>(
        what: &str,
        serve: impl FnOnce(oneshot::Receiver<()>) -> F + Send + 'static,
    ) -> ServerThread {
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::spawn(move || block_on(serve(stopped)));
        ServerThread {
            what: what.to_owned(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() && !std::thread::panicking() {
                panic!("{} thread panicked", self.what);
            }
        }
    }
}
