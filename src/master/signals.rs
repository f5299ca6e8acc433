//! The master's signals, turned into [`MasterSignal`] values once, here: SIGTERM/SIGINT stop,
//! SIGHUP reloads, SIGUSR1 reopens logs, SIGUSR2 is ignored (as Hipache does).

use tokio::signal::unix::{signal, SignalKind};

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MasterSignal {
    Terminate,
    Reload,
    ReopenLogs,
}

pub(super) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
        })
    }

    pub(super) async fn next(&mut self) -> MasterSignal {
        loop {
            tokio::select! {
                _ = self.term.recv() => return MasterSignal::Terminate,
                _ = self.int.recv() => return MasterSignal::Terminate,
                _ = self.hup.recv() => return MasterSignal::Reload,
                _ = self.usr1.recv() => return MasterSignal::ReopenLogs,
                // Hipache ignores SIGUSR2; installing a handler keeps it from killing us.
                _ = self.usr2.recv() => {}
            }
        }
    }
}
