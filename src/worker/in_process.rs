//! An in-process worker for tests: `serve` on a listener bound to `127.0.0.1:0`, inside the
//! test's own runtime (so under tokio's paused clock when the test starts paused), ended by a
//! oneshot. Tests of timing decisions drive it instead of the binary, so their verdicts read
//! the runtime's clock, never the wall clock.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{serve, Opened, WorkerError};
use crate::config::Config;
use crate::supervision::Listener;

/// A worker serving in this runtime's `LocalSet`; drained and awaited by `stop`.
pub(crate) struct InProcess {
    addr: SocketAddr,
    drain: oneshot::Sender<()>,
    task: JoinHandle<Result<(), WorkerError>>,
    /// Holds the routes file of the file driver for as long as the worker serves.
    _routes: TempDir,
}

impl InProcess {
    /// Serves the config `settings` (a JSON object, `driver` excluded) with the file driver
    /// over an empty routes file. Must be called inside a `LocalSet`.
    pub(crate) fn start(settings: serde_json::Value) -> InProcess {
        let routes = tempfile::tempdir().unwrap();
        let routes_file = routes.path().join("routes.json");
        std::fs::write(&routes_file, "{}").unwrap();
        let mut text = settings;
        text["driver"] = format!("file:{}", routes_file.display()).into();
        let config = Config::parse(&text.to_string(), Path::new("in-process.json"))
            .unwrap()
            .config;

        let socket = TcpListener::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let addr = socket.local_addr().unwrap();
        let opened = Opened {
            listeners: vec![Listener {
                socket,
                address: addr,
                https: None,
                quic: None,
            }],
            access_log: None,
            certificates: None,
            stats: None,
            footprint: Default::default(),
        };
        let (drain, drained) = oneshot::channel::<()>();
        let task = tokio::task::spawn_local(serve(config, opened, || {}, async move {
            let _ = drained.await;
        }));
        InProcess {
            addr,
            drain,
            task,
            _routes: routes,
        }
    }

    /// The address the worker accepts on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Tells the worker to drain and waits until `serve` returns.
    pub(crate) async fn stop(self) {
        let _ = self.drain.send(());
        self.task.await.unwrap().unwrap();
    }
}
