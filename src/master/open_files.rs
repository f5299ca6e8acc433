//! The open-file limit the proxy runs under: each proxied connection takes two descriptors
//! (client and backend), and the soft `RLIMIT_NOFILE` a service manager leaves (often 1,024)
//! would stop a worker near 500 of them, while the hard limit allows far more. Raised once at
//! start by the master; the workers it spawns inherit it.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Where to stop when the hard limit is unlimited: the kernel's usual `nr_open`.
const UNLIMITED_CAP: u64 = 1 << 20;

/// Raises the soft limit to the hard one and logs what it allows; a failure is logged and the
/// limit left as it was (the proxy still runs, with fewer connections).
pub(super) fn raise() {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(error) => return tracing::warn!(%error, "cannot read the open file limit"),
    };
    let wanted = match hard {
        nix::libc::RLIM_INFINITY => UNLIMITED_CAP.max(soft),
        hard => hard,
    };
    let open_files = if wanted > soft {
        match setrlimit(Resource::RLIMIT_NOFILE, wanted, hard) {
            Ok(()) => wanted,
            Err(error) => {
                tracing::warn!(%error, soft, hard, "cannot raise the open file limit");
                soft
            }
        }
    } else {
        soft
    };
    tracing::info!(
        open_files,
        was = soft,
        proxied_connections = open_files / 2,
        "open file limit per process"
    );
}
