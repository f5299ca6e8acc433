//! Dropping root privileges after the listening sockets are bound (Hipache's rule).
//!
//! Started as root, the process becomes `user`/`group` (default `www-data`), unless the config
//! says `"user": "root"`. Started as anyone else, nothing changes. A user or group that does not
//! exist is an error: running on as root by accident is worse than not starting.

use nix::unistd::{self, Gid, Group, Uid, User};

/// Why privileges could not be dropped as configured.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// `user` names no user.
    #[error("user {0:?} does not exist (config key `user`)")]
    NoSuchUser(String),
    /// `group` names no group.
    #[error("group {0:?} does not exist (config key `group`)")]
    NoSuchGroup(String),
    /// The user database could not be read.
    #[error("cannot look up user or group {name:?}")]
    Lookup {
        /// The user or group looked up.
        name: String,
        /// The OS error.
        #[source]
        source: nix::Error,
    },
    /// `setgid`/`setuid` failed.
    #[error("cannot switch to {user}:{group}")]
    Switch {
        /// The configured user.
        user: String,
        /// The configured group.
        group: String,
        /// The OS error.
        #[source]
        source: nix::Error,
    },
}

/// What `drop_to` did, for the caller's log line.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not started as root: nothing to drop.
    NotRoot,
    /// Started as root with `"user": "root"`: stayed root.
    StayedRoot,
    /// Now running as the configured user and group.
    Dropped,
}

/// The ids to become: `None` when not running as root, or when the config asks to stay root.
/// Checked by the master at startup, so that a missing user is reported once, before any worker.
pub(crate) fn target(user: &str, group: &str) -> Result<Option<(Uid, Gid)>, PrivilegeError> {
    if !Uid::effective().is_root() || user == "root" || user == "0" {
        return Ok(None);
    }
    let lookup = |source| PrivilegeError::Lookup {
        name: user.to_owned(),
        source,
    };
    let account = User::from_name(user)
        .map_err(lookup)?
        .ok_or_else(|| PrivilegeError::NoSuchUser(user.to_owned()))?;
    let gid = if group.is_empty() {
        account.gid
    } else {
        let lookup = |source| PrivilegeError::Lookup {
            name: group.to_owned(),
            source,
        };
        Group::from_name(group)
            .map_err(lookup)?
            .ok_or_else(|| PrivilegeError::NoSuchGroup(group.to_owned()))?
            .gid
    };
    Ok(Some((account.uid, gid)))
}

/// Becomes `user`/`group` when running as root and `user` is not `root`.
pub fn drop_to(user: &str, group: &str) -> Result<Outcome, PrivilegeError> {
    let Some((uid, gid)) = target(user, group)? else {
        return Ok(if Uid::effective().is_root() {
            Outcome::StayedRoot
        } else {
            Outcome::NotRoot
        });
    };
    let switch = |source| PrivilegeError::Switch {
        user: user.to_owned(),
        group: group.to_owned(),
        source,
    };
    // Order matters: supplementary groups and gid can only be changed while still root.
    unistd::setgroups(&[gid]).map_err(switch)?;
    unistd::setgid(gid).map_err(switch)?;
    unistd::setuid(uid).map_err(switch)?;
    Ok(Outcome::Dropped)
}
