//! Counting what a drain must wait for (client connections, tunnels) and telling idle
//! connections that a drain began.

use std::cell::Cell;
use std::rc::Rc;

use tokio::sync::Notify;

/// How many of something are open; resolves `all_closed` when none is.
#[derive(Clone, Default)]
pub(crate) struct OpenCount {
    open: Rc<Cell<usize>>,
    closed: Rc<Notify>,
}

impl OpenCount {
    pub(crate) fn open(&self) -> usize {
        self.open.get()
    }

    /// Resolves once nothing is open.
    pub(crate) async fn all_closed(&self) {
        loop {
            // Created before the check: `notify_waiters` reaches a `Notified` from its creation.
            let closed = self.closed.notified();
            if self.open.get() == 0 {
                return;
            }
            closed.await;
        }
    }

    /// Counts one more until the guard is dropped.
    pub(crate) fn enter(&self) -> Open {
        self.open.set(self.open.get() + 1);
        Open(self.clone())
    }
}

/// Counts one open thing while alive.
pub(crate) struct Open(OpenCount);

impl Drop for Open {
    fn drop(&mut self) {
        let open = self.0.open.get().saturating_sub(1);
        self.0.open.set(open);
        if open == 0 {
            self.0.closed.notify_waiters();
        }
    }
}

/// The worker's HTTP/1 client connections and whether they are being drained.
#[derive(Clone, Default)]
pub(crate) struct Connections {
    pub(crate) count: OpenCount,
    draining: Rc<Cell<bool>>,
    drain_started: Rc<Notify>,
}

impl Connections {
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Idle connections close now; busy ones after their current response.
    pub(crate) fn start_draining(&self) {
        self.draining.set(true);
        self.drain_started.notify_waiters();
    }

    /// Resolves when a drain starts (at once if it has).
    pub(crate) async fn draining(&self) {
        let started = self.drain_started.notified();
        if self.draining.get() {
            return;
        }
        started.await;
    }
}
