//! Signals as a worker sees them: SIGTERM/SIGINT end it gracefully, SIGUSR1 reopens the access
//! log, SIGHUP re-reads the TLS certificates, SIGUSR2 is ignored (Hipache's workers ignore both
//! SIGUSRs by default).

use std::rc::Rc;

use tokio::signal::unix::{signal, SignalKind};

use crate::access_log::AccessLog;
use crate::tls::Certificates;

/// Resolves on the first SIGTERM or SIGINT.
pub(crate) async fn terminated() {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install SIGTERM/SIGINT handlers");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; draining"),
        _ = int.recv() => tracing::info!("SIGINT received; draining"),
    }
}

/// Runs for the worker's lifetime: reopens the access log on each SIGUSR1, reloads the
/// certificates on each SIGHUP (keeping the current ones if that fails), swallows SIGUSR2.
pub(crate) async fn handle_user_signals(
    access_log: Option<Rc<AccessLog>>,
    certificates: Option<Rc<Certificates>>,
) {
    let (Ok(mut usr1), Ok(mut usr2), Ok(mut hup)) = (
        signal(SignalKind::user_defined1()),
        signal(SignalKind::user_defined2()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install SIGUSR1/SIGUSR2/SIGHUP handlers");
        return;
    };
    loop {
        tokio::select! {
            Some(()) = usr1.recv() => {
                if let Some(log) = &access_log {
                    log.reopen();
                }
            }
            Some(()) = usr2.recv() => {}
            Some(()) = hup.recv() => {
                if let Some(certificates) = &certificates {
                    // The outcome is logged by `reload`.
                    let _ = certificates.reload();
                }
            }
            else => return,
        }
    }
}
