//! Route edits on the file driver's JSON (`file:routes.json`, the Redis layout as an object).
//!
//! An edit holds an exclusive `flock` on the file's folder (so two edits cannot lose each
//! other's change), reads the file, [`plan`]s, and replaces the file whole: a temporary file in
//! the same folder, flushed, given the old file's permissions, then renamed over it. The proxy
//! therefore reads either the old or the new file, never half of one. Every other key (other
//! hosts, `hchecker_ping`, anything unknown) is kept. The file is written one key per line,
//! each host's `frontend:`, `dead:` and `state:` keys together, so it stays readable and diffs well.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde_json::{Map, Value};

use crate::routes::file::dead_indexes;
use crate::routes::{DEAD_PREFIX, FRONTEND_PREFIX, STATE_PREFIX};

use super::edit::{plan, Change, Edit, HostRoutes};
use super::render::Summary;
use super::ManageError;

pub(crate) struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub(crate) fn new(path: &Path) -> FileStore {
        FileStore {
            path: path.to_owned(),
        }
    }

    pub(crate) fn frontends(&self) -> Result<Vec<Summary>, ManageError> {
        let entries = self.load(false)?;
        let mut summaries = Vec::new();
        for (key, value) in &entries {
            let Some(host) = key.strip_prefix(FRONTEND_PREFIX) else {
                continue;
            };
            let list = self.list(key, value)?;
            if let Some((id, backends)) = list.split_first() {
                summaries.push(Summary {
                    host: host.to_owned(),
                    id: id.clone(),
                    backends: backends.len(),
                });
            }
        }
        Ok(summaries)
    }

    pub(crate) fn read(&self, host: &str) -> Result<HostRoutes, ManageError> {
        let entries = self.load(false)?;
        self.host_routes(&entries, host)
    }

    pub(crate) fn apply(&self, host: &str, edit: &Edit) -> Result<(), ManageError> {
        let _lock = self.lock()?;
        // Only a new frontend may create the file; any other edit of a missing file is a mistake
        // (most likely a wrong path) worth reporting.
        let mut entries = self.load(matches!(edit, Edit::AddFrontend { .. }))?;
        let current = self.host_routes(&entries, host)?;
        let (frontend_key, dead_key, state_key) = (
            format!("{FRONTEND_PREFIX}{host}"),
            format!("{DEAD_PREFIX}{host}"),
            format!("{STATE_PREFIX}{host}"),
        );
        let put_states = |entries: &mut Map<String, Value>, states: Vec<(String, String)>| {
            if states.is_empty() {
                entries.remove(&state_key);
            } else {
                let states: Map<String, Value> = (states.into_iter())
                    .map(|(url, word)| (url, Value::from(word)))
                    .collect();
                entries.insert(state_key.clone(), Value::Object(states));
            }
        };
        match plan(host, edit, &current)? {
            Change::Delete => {
                entries.remove(&frontend_key);
                entries.remove(&dead_key);
                entries.remove(&state_key);
            }
            Change::States(states) => put_states(&mut entries, states),
            Change::Put { list, dead, states } => {
                entries.insert(frontend_key, Value::from(list));
                match dead {
                    Some(dead) if dead.is_empty() => {
                        entries.remove(&dead_key);
                    }
                    Some(dead) => {
                        entries.insert(dead_key, Value::from(dead));
                    }
                    None => {}
                }
                if let Some(states) = states {
                    put_states(&mut entries, states);
                }
            }
        }
        self.replace(&render(&entries))
    }

    /// The file's object; an empty one for a missing file when `missing_is_empty`.
    fn load(&self, missing_is_empty: bool) -> Result<Map<String, Value>, ManageError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound && missing_is_empty => String::new(),
            Err(source) => return Err(self.io("read the routes file", source)),
        };
        if text.trim().is_empty() {
            return Ok(Map::new());
        }
        serde_json::from_str(&text).map_err(|e| self.problem(format!("invalid routes file: {e}")))
    }

    fn host_routes(
        &self,
        entries: &Map<String, Value>,
        host: &str,
    ) -> Result<HostRoutes, ManageError> {
        let frontend_key = format!("{FRONTEND_PREFIX}{host}");
        let dead_key = format!("{DEAD_PREFIX}{host}");
        let list = match entries.get(&frontend_key) {
            Some(value) => self.list(&frontend_key, value)?,
            None => Vec::new(),
        };
        let mut dead = match entries.get(&dead_key) {
            Some(value) => dead_indexes(value)
                .ok_or_else(|| self.problem(format!("{dead_key}: expected a list of indexes")))?,
            None => Vec::new(),
        };
        dead.sort_unstable();
        dead.dedup();
        let state_key = format!("{STATE_PREFIX}{host}");
        let states = match entries.get(&state_key) {
            Some(value) => {
                let states: Map<String, Value> = serde_json::from_value(value.clone())
                    .map_err(|_| self.problem(format!("{state_key}: expected an object")))?;
                (states.into_iter())
                    .filter_map(|(url, word)| Some((url, word.as_str()?.to_owned())))
                    .collect()
            }
            None => Vec::new(),
        };
        Ok(HostRoutes {
            list,
            dead,
            dead_ttl: None,
            states,
        })
    }

    fn list(&self, key: &str, value: &Value) -> Result<Vec<String>, ManageError> {
        serde_json::from_value(value.clone())
            .map_err(|_| self.problem(format!("{key}: expected a list of strings")))
    }

    /// Held until dropped. The folder, not the file, is locked: the file's inode changes with
    /// every rename, so a lock on it would not exclude the next edit.
    fn lock(&self) -> Result<Flock<File>, ManageError> {
        let folder = self.folder();
        let dir = File::open(&folder).map_err(|e| self.io("open the routes file's folder", e))?;
        Flock::lock(dir, FlockArg::LockExclusive)
            .map_err(|(_, errno)| self.io("lock the routes file's folder", errno.into()))
    }

    fn replace(&self, text: &str) -> Result<(), ManageError> {
        let name = self
            .path
            .file_name()
            .map_or_else(|| "routes".into(), |n| n.to_string_lossy());
        let temporary = self
            .folder()
            .join(format!(".{name}.{}.tmp", std::process::id()));
        let written = write_new(&temporary, text, &self.path)
            .and_then(|()| std::fs::rename(&temporary, &self.path));
        if let Err(source) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(self.io("write the routes file", source));
        }
        Ok(())
    }

    fn folder(&self) -> PathBuf {
        match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    fn problem(&self, problem: String) -> ManageError {
        ManageError::File {
            path: self.path.clone(),
            problem,
        }
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> ManageError {
        ManageError::Io {
            path: self.path.clone(),
            action,
            source,
        }
    }
}

/// Writes `text` to the new file `path`, on disk before it is renamed, with `like`'s permissions
/// (the proxy may run as another user than the operator).
fn write_new(path: &Path, text: &str, like: &Path) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(text.as_bytes())?;
    if let Ok(metadata) = std::fs::metadata(like) {
        file.set_permissions(metadata.permissions())?;
    }
    file.sync_all()
}

/// One key per line, ordered by host with `frontend:` before `dead:` and `state:`, other keys
/// last.
fn render(entries: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = entries.keys().collect();
    keys.sort_by_key(|key| {
        if let Some(host) = key.strip_prefix(FRONTEND_PREFIX) {
            (0, host, 0)
        } else if let Some(host) = key.strip_prefix(DEAD_PREFIX) {
            (0, host, 1)
        } else if let Some(host) = key.strip_prefix(STATE_PREFIX) {
            (0, host, 2)
        } else {
            (1, key.as_str(), 0)
        }
    });
    let lines: Vec<String> = keys
        .iter()
        .map(|key| {
            format!(
                "    {}: {}",
                Value::from(key.as_str()),
                compact(&entries[*key])
            )
        })
        .collect();
    if lines.is_empty() {
        return "{}\n".to_owned();
    }
    format!("{{\n{}\n}}\n", lines.join(",\n"))
}

/// `["a", "b"]` rather than serde_json's `["a","b"]`.
fn compact(value: &Value) -> String {
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(compact).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
