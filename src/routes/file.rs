//! The file route source: a JSON file in Hipache's Redis layout, for a machine without Redis.
//!
//! ```json
//! {"frontend:www.example.com": ["mysite", "http://127.0.0.1:8080"], "dead:www.example.com": [0],
//!  "state:www.example.com": {"http://127.0.0.1:8080": "drain"}}
//! ```
//!
//! `state:<host>` is optional, as in Redis: backend URL to `drain` or `disable`.
//!
//! It owns loading and validating that file, watching it (a background task polls its mtime,
//! length, inode and ctime; a change is picked up within a second), and answering lookups from a
//! prebuilt map.
//! Dead marks only live in this process ([`DeadMarks`]): the file is never written.

use std::collections::{HashMap, HashSet};
use std::mem::{size_of, size_of_val};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tracing::{info, warn};

use super::dead::DeadMarks;
use super::footprint::{self, Footprint};
use super::{
    Backend, Frontend, Held, Lookup, RouteError, RouteSource, DEAD_PREFIX, FRONTEND_PREFIX,
    STATE_PREFIX,
};
use crate::escape::Escaped;

/// How often the watcher looks at the file's metadata.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Why the routes file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileRoutesError {
    #[error("{}: cannot read routes file", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: invalid routes file", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {key}: expected {expected}", path.display())]
    Entry {
        path: PathBuf,
        key: String,
        expected: &'static str,
    },
}

/// Cheap-to-clone handle on the routes of one file.
#[derive(Clone)]
pub(crate) struct FileRoutes {
    shared: Arc<Shared>,
}

struct Shared {
    table: RwLock<Arc<Table>>,
    marks: DeadMarks,
    dead_ttl: Duration,
    /// The current table's bytes, for the memory watchdog.
    footprint: Footprint,
}

/// One successful load of the file: what a lookup reads.
#[derive(Debug, Default)]
struct Table {
    frontends: HashMap<String, Arc<Frontend>>,
    dead: HashMap<String, Vec<usize>>,
    /// `state:<host>` as written: backend URL to state word.
    states: HashMap<String, Vec<(String, String)>>,
    /// What it holds, as [`footprint`] estimates it.
    bytes: usize,
}

/// What tells the watcher the file changed: its mtime and length, and its inode and ctime,
/// which move even when a replacement keeps the first two (a file renamed over it that was
/// copied with its timestamps, a rewrite within the file system's mtime granularity).
type Signature = (Option<SystemTime>, u64, u64, (i64, i64));

impl FileRoutes {
    /// Loads `path` and, inside a tokio runtime, starts watching it for changes. The table's
    /// bytes are published in `footprint`.
    pub(crate) fn open(
        path: &Path,
        dead_ttl: Duration,
        footprint: Footprint,
    ) -> Result<Self, FileRoutesError> {
        let signature = signature(std::fs::metadata(path));
        let text = std::fs::read_to_string(path).map_err(|source| FileRoutesError::Read {
            path: path.to_owned(),
            source,
        })?;
        let table = parse(&text, path)?;
        info!(path = %path.display(), frontends = table.frontends.len(), "routes loaded");
        footprint.set(table.bytes);
        let shared = Arc::new(Shared {
            table: RwLock::new(Arc::new(table)),
            marks: DeadMarks::new(),
            dead_ttl,
            footprint,
        });
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(watch(Arc::downgrade(&shared), path.to_owned(), signature));
            }
            Err(_) => warn!(path = %path.display(), "no async runtime; routes file not watched"),
        }
        Ok(Self { shared })
    }

    fn table(&self) -> Arc<Table> {
        // The lock only guards an Arc swap, so a poisoned lock still holds a whole table.
        self.shared
            .table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl std::fmt::Debug for FileRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRoutes")
            .field("frontends", &self.table().frontends.len())
            .finish()
    }
}

impl RouteSource for FileRoutes {
    async fn lookup(&self, host: &str) -> Result<Option<Lookup>, RouteError> {
        let table = self.table();
        // The host's own key is the first candidate: looked up before the wildcard keys are
        // made, which most requests then never need.
        let frontend = table.frontends.get(host).or_else(|| {
            let candidates = crate::host_keys::candidates(host);
            candidates[1..]
                .iter()
                .find_map(|key| table.frontends.get(key))
        });
        let Some(frontend) = frontend else {
            return Ok(None);
        };
        let mut dead = table.dead.get(host).cloned().unwrap_or_default();
        self.shared.marks.add_to(host, frontend, &mut dead);
        let states = table.states.get(host).into_iter().flatten();
        let held = Held::resolve(
            &frontend.backends,
            states.map(|(url, word)| (url.as_str(), word.as_str())),
        );
        Ok(Some(Lookup {
            frontend: frontend.clone(),
            dead,
            held,
        }))
    }

    fn mark_dead(&self, host: &str, _frontend: &Frontend, backend: &Backend) {
        self.shared.marks.mark(host, backend, self.shared.dead_ttl);
    }
}

/// Polls the file's metadata and reloads it when it changes; ends when every handle is gone.
async fn watch(shared: Weak<Shared>, path: PathBuf, mut seen: Signature) {
    let mut interval = tokio::time::interval(POLL_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let current = signature(tokio::fs::metadata(&path).await);
        if current == seen {
            continue;
        }
        // Remember the change before reading, so a broken file warns once per change and a
        // write landing during the read triggers another reload.
        seen = current;
        let loaded = match tokio::fs::read_to_string(&path).await {
            Ok(text) => parse(&text, &path),
            Err(source) => Err(FileRoutesError::Read {
                path: path.clone(),
                source,
            }),
        };
        match loaded {
            Ok(table) => {
                info!(path = %path.display(), frontends = table.frontends.len(), "routes reloaded");
                shared.footprint.set(table.bytes);
                *shared.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
            }
            Err(e) => {
                warn!(error = %crate::logging::chain(&e), "routes file reload failed; keeping last good routes");
            }
        }
    }
}

fn signature(metadata: std::io::Result<std::fs::Metadata>) -> Signature {
    use std::os::unix::fs::MetadataExt as _;
    match metadata {
        Ok(m) => (
            m.modified().ok(),
            m.len(),
            m.ino(),
            (m.ctime(), m.ctime_nsec()),
        ),
        Err(_) => (None, u64::MAX, 0, (0, 0)),
    }
}

/// Validates the file's content and prebuilds every frontend (pure, apart from logging).
fn parse(text: &str, path: &Path) -> Result<Table, FileRoutesError> {
    let entries: serde_json::Map<String, Value> =
        serde_json::from_str(text).map_err(|source| FileRoutesError::Json {
            path: path.to_owned(),
            source,
        })?;
    let entry_error = |key: &str, expected| FileRoutesError::Entry {
        path: path.to_owned(),
        key: key.to_owned(),
        expected,
    };
    let mut table = Table::default();
    // Applications list the same backends under many hosts: one shared list each, as in the
    // Redis source's cache.
    let mut lists: HashSet<Arc<[Backend]>> = HashSet::new();
    let mut ids: HashSet<Arc<str>> = HashSet::new();
    for (key, value) in &entries {
        if let Some(host) = key.strip_prefix(FRONTEND_PREFIX) {
            let list: Vec<String> = serde_json::from_value(value.clone())
                .map_err(|_| entry_error(key, "a list of strings"))?;
            let frontend = Frontend::from_list(host, &list, |entry, error| {
                warn!(frontend = %Escaped(key), entry, error = %error, "unusable backend url");
            });
            // An empty list is no frontend at all: the lookup goes on to the next candidate.
            if let Some(mut frontend) = frontend {
                frontend.backends = shared(&mut lists, frontend.backends, &mut table.bytes, |l| {
                    footprint::table_slot(size_of::<Arc<[Backend]>>()) + footprint::backends(l)
                });
                frontend.id = shared(&mut ids, frontend.id, &mut table.bytes, |id| {
                    footprint::table_slot(size_of::<Arc<str>>()) + footprint::arc_block(id.len())
                });
                table.bytes += footprint::table_slot(size_of::<(String, Arc<Frontend>)>())
                    + footprint::block(host.len())
                    + footprint::frontend(&frontend, false)
                    - footprint::arc_block(frontend.id.len());
                table.frontends.insert(host.to_owned(), Arc::new(frontend));
            }
        } else if let Some(host) = key.strip_prefix(DEAD_PREFIX) {
            let indexes =
                dead_indexes(value).ok_or_else(|| entry_error(key, "a list of indexes"))?;
            table.bytes += footprint::table_slot(size_of::<(String, Vec<usize>)>())
                + footprint::block(host.len())
                + footprint::block(size_of_val(indexes.as_slice()));
            table.dead.insert(host.to_owned(), indexes);
        } else if let Some(host) = key.strip_prefix(STATE_PREFIX) {
            let states: HashMap<String, String> = serde_json::from_value(value.clone())
                .map_err(|_| entry_error(key, "an object of backend url to state"))?;
            let states: Vec<(String, String)> = states.into_iter().collect();
            table.bytes += footprint::table_slot(size_of::<(String, Vec<(String, String)>)>())
                + footprint::block(host.len())
                + footprint::block(size_of_val(states.as_slice()))
                + (states.iter())
                    .map(|(url, word)| footprint::block(url.len()) + footprint::block(word.len()))
                    .sum::<usize>();
            table.states.insert(host.to_owned(), states);
        } else {
            warn!(path = %path.display(), key = %Escaped(key), "unknown key in routes file ignored");
        }
    }
    Ok(table)
}

/// The one copy of `value` kept in `set`; a new one adds `cost(value)` to `bytes`.
fn shared<T: ?Sized + Eq + std::hash::Hash>(
    set: &mut HashSet<Arc<T>>,
    value: Arc<T>,
    bytes: &mut usize,
    cost: impl Fn(&T) -> usize,
) -> Arc<T> {
    if let Some(kept) = set.get(&value) {
        return kept.clone();
    }
    *bytes += cost(&value);
    set.insert(value.clone());
    value
}

/// A dead set as numbers, or as numeric strings like Redis stores them.
pub(crate) fn dead_indexes(value: &Value) -> Option<Vec<usize>> {
    value
        .as_array()?
        .iter()
        .map(|item| match item {
            Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
