//! What an edit does to one host's routes (pure): checking the operator's input, and turning the
//! current frontend list and dead set into the ones to write.
//!
//! Both stores (Redis, file) read a [`HostRoutes`], call [`plan`], and write the [`Change`]
//! atomically, so the two drivers cannot disagree on the rules.

use std::time::Duration;

use crate::host_keys::{self, HostRequest};
use crate::host_name;
use crate::routes::{BackendState, BackendUrl, Frontend, Held};

use super::ManageError;

/// One host's routes as stored: `frontend:<host>`, `dead:<host>` and `state:<host>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HostRoutes {
    /// `[id, url, url, ...]`; empty when there is no frontend for the host.
    pub(crate) list: Vec<String>,
    /// Indexes in `dead:<host>` (0 = first backend), sorted.
    pub(crate) dead: Vec<usize>,
    /// Time left on `dead:<host>`; `None` when it has no expiry (or the driver has none).
    pub(crate) dead_ttl: Option<Duration>,
    /// `state:<host>` as stored: backend URL, state word.
    pub(crate) states: Vec<(String, String)>,
}

impl HostRoutes {
    pub(crate) fn exists(&self) -> bool {
        !self.list.is_empty()
    }

    /// The state of each backend entry, in list order, as the proxy reads it.
    pub(crate) fn backend_states(&self) -> Vec<BackendState> {
        let entries = self.list.len().saturating_sub(1);
        let Some(frontend) = Frontend::from_list("", &self.list, |_, _| {}) else {
            return Vec::new();
        };
        let held = Held::resolve(
            &frontend.backends,
            (self.states.iter()).map(|(url, word)| (url.as_str(), word.as_str())),
        );
        (0..entries).map(|index| held.state_of(index)).collect()
    }
}

/// An edit of one host, with its input already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Edit {
    AddFrontend {
        id: String,
        urls: Vec<String>,
        replace: bool,
    },
    RemoveFrontend,
    AddBackend {
        url: String,
    },
    RemoveBackend {
        url: String,
    },
    /// Drain, disable or enable the backend `url`.
    SetState {
        url: String,
        state: BackendState,
    },
}

/// What to write for the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Replace the frontend list; replace the dead set too when `dead` is given (same TTL), and
    /// the state hash when `states` is.
    Put {
        list: Vec<String>,
        dead: Option<Vec<usize>>,
        states: Option<Vec<(String, String)>>,
    },
    /// Replace the state hash only (empty: delete it).
    States(Vec<(String, String)>),
    /// Delete the frontend list, the dead set and the state hash.
    Delete,
}

/// The key part of `frontend:<host>`, exactly as the proxy looks a request's `Host` up (port
/// stripped, lowercased by [`host_keys`]); a text no lookup could ever produce is refused. A
/// wildcard is `*` or `*.` followed by a name.
pub(crate) fn host(text: &str) -> Result<String, ManageError> {
    let bad = |problem: String| ManageError::BadHost {
        host: text.to_owned(),
        problem,
    };
    let host = text.trim();
    if host == "*" {
        return Ok(host.to_owned());
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    let bracketed = name.starts_with('[') && name.ends_with(']');
    if name.contains(':') && !bracketed && !name.contains([' ', '\t', '/']) {
        // The proxy strips the port from `Host` before the lookup, so this key would never match.
        return Err(bad(
            "give the host without a port (the proxy ignores the port)".to_owned(),
        ));
    }
    host_name::check(name).map_err(|problem| bad(problem.to_string()))?;
    match host_keys::parse_host(host) {
        HostRequest::Ping => Err(bad("reserved for the proxy's liveness probe".to_owned())),
        HostRequest::Route(key) => Ok(host_keys::normalize(key).into_owned()),
    }
}

/// The key part of an existing `frontend:<host>`, for `show` and the removals: whatever was
/// written (by `redis-cli`, an older tool), lowercased as a lookup would be; only an empty text
/// or control characters are refused.
pub(crate) fn existing_host(text: &str) -> Result<String, ManageError> {
    let bad = |problem: &str| ManageError::BadHost {
        host: text.to_owned(),
        problem: problem.to_owned(),
    };
    let host = text.trim();
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    if host.chars().any(char::is_control) {
        return Err(bad("control characters are not allowed"));
    }
    Ok(host_keys::normalize(host).into_owned())
}

/// The frontend id to store: any text but an empty one, and no control characters (it is
/// written into log lines and terminals).
pub(crate) fn frontend_id(text: &str) -> Result<String, ManageError> {
    let bad = |problem| ManageError::BadId {
        id: text.to_owned(),
        problem,
    };
    if text.trim().is_empty() {
        return Err(bad("it must not be empty"));
    }
    if text.chars().any(char::is_control) {
        return Err(bad("it must not hold control characters (CR, LF, ESC...)"));
    }
    Ok(text.to_owned())
}

/// A backend URL to store: trimmed, as the operator wrote it, once the proxy's parser accepts it
/// with nothing it would ignore ([`BackendUrl::parse_to_store`]).
pub(crate) fn backend_url(text: &str) -> Result<String, ManageError> {
    let url = text.trim();
    BackendUrl::parse_to_store(url).map_err(|source| ManageError::BadUrl {
        url: text.to_owned(),
        source,
    })?;
    Ok(url.to_owned())
}

/// The edit that puts backend `url` in `state`.
pub(crate) fn set_state(url: &str, state: BackendState) -> Edit {
    Edit::SetState {
        url: url.trim().to_owned(),
        state,
    }
}

/// The changes `edit` makes to `current`, or why it cannot be done.
pub(crate) fn plan(host: &str, edit: &Edit, current: &HostRoutes) -> Result<Change, ManageError> {
    let host = host.to_owned();
    match edit {
        Edit::AddFrontend { id, urls, replace } => {
            if current.exists() && !replace {
                return Err(ManageError::FrontendExists { host });
            }
            let list = std::iter::once(id).chain(urls).cloned().collect();
            // Old dead indexes would point into the new list, so they go with the old one. States
            // are by URL: those of URLs still listed stay.
            let states = (current.states.iter())
                .filter(|(url, _)| urls.iter().any(|kept| same_url(kept, url)))
                .cloned()
                .collect();
            Ok(Change::Put {
                list,
                dead: Some(Vec::new()),
                states: Some(states),
            })
        }
        Edit::RemoveFrontend => {
            if !current.exists() {
                return Err(ManageError::UnknownHost { host });
            }
            Ok(Change::Delete)
        }
        Edit::AddBackend { url } => {
            if !current.exists() {
                return Err(ManageError::UnknownHost { host });
            }
            if !matching(&current.list, url).is_empty() {
                return Err(ManageError::DuplicateBackend {
                    host,
                    url: url.clone(),
                });
            }
            let mut list = current.list.clone();
            list.push(url.clone());
            // Appending moves no index: dead marks keep their meaning.
            Ok(Change::Put {
                list,
                dead: None,
                states: None,
            })
        }
        Edit::RemoveBackend { url } => {
            if !current.exists() {
                return Err(ManageError::UnknownHost { host });
            }
            let removed = matching(&current.list, url);
            if removed.is_empty() {
                // A URL the parser rejects is more likely a typo than an entry to remove.
                BackendUrl::parse(url).map_err(|source| ManageError::BadUrl {
                    url: url.clone(),
                    source,
                })?;
                return Err(ManageError::NoSuchBackend {
                    host,
                    url: url.clone(),
                });
            }
            if removed.len() == current.list.len() - 1 {
                return Err(ManageError::LastBackend {
                    host,
                    url: url.clone(),
                });
            }
            let list = current
                .list
                .iter()
                .enumerate()
                .filter(|(position, _)| *position == 0 || !removed.contains(&(position - 1)))
                .map(|(_, entry)| entry.clone())
                .collect();
            // A URL added back later starts enabled.
            let states = (current.states.iter())
                .filter(|(stored, _)| !same_url(url, stored))
                .cloned()
                .collect();
            Ok(Change::Put {
                list,
                dead: Some(remap_dead(&current.dead, &removed)),
                states: Some(states),
            })
        }
        Edit::SetState { url, state } => {
            if !current.exists() {
                return Err(ManageError::UnknownHost { host });
            }
            if host.starts_with('*') {
                return Err(ManageError::WildcardState { host });
            }
            let parsed = BackendUrl::parse(url).map_err(|source| ManageError::BadUrl {
                url: url.clone(),
                source,
            })?;
            if matching(&current.list, url).is_empty() {
                return Err(ManageError::NoSuchBackend {
                    host,
                    url: url.clone(),
                });
            }
            // One entry per backend, under its normalised URL, whatever spellings were there.
            let mut states: Vec<(String, String)> = (current.states.iter())
                .filter(|(stored, _)| !same_url(url, stored))
                .cloned()
                .collect();
            if *state != BackendState::Enabled {
                states.push((parsed.as_str().to_owned(), state.as_str().to_owned()));
            }
            Ok(Change::States(states))
        }
    }
}

/// Whether two URL texts name the same backend: same normalised form when both parse, same text
/// otherwise.
fn same_url(a: &str, b: &str) -> bool {
    match (BackendUrl::parse(a), BackendUrl::parse(b)) {
        (Ok(a), Ok(b)) => a.as_str() == b.as_str(),
        _ => a.trim() == b.trim(),
    }
}

/// Backend indexes of `list` (`[id, url...]`) that are `url`: same normalised form when both
/// parse (`http://a:80` is `http://a:80/`), same text otherwise (to remove an unusable entry).
fn matching(list: &[String], url: &str) -> Vec<usize> {
    let wanted = BackendUrl::parse(url).ok();
    list.iter()
        .skip(1)
        .enumerate()
        .filter(|(_, entry)| match (&wanted, BackendUrl::parse(entry)) {
            (Some(wanted), Ok(entry)) => wanted.as_str() == entry.as_str(),
            _ => entry.trim() == url.trim(),
        })
        .map(|(index, _)| index)
        .collect()
}

/// The dead set once the backends at `removed` left the list: their marks go, and every later
/// index moves down by the number of removed backends before it, so each mark stays on the
/// backend it was about.
pub(crate) fn remap_dead(dead: &[usize], removed: &[usize]) -> Vec<usize> {
    let mut remapped: Vec<usize> = dead
        .iter()
        .filter(|index| !removed.contains(index))
        .map(|&index| index - removed.iter().filter(|&&r| r < index).count())
        .collect();
    remapped.sort_unstable();
    remapped.dedup();
    remapped
}

#[cfg(test)]
#[path = "edit_tests.rs"]
mod tests;
