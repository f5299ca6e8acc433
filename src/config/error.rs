//! `ConfigError`: why a configuration file was rejected.
//!
//! Every message starts with the file, then the key path when there is one, so an operator can go
//! straight to the line: `config/config.json: server.workers: must be at least 1`.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file itself could not be read.
    #[error("{}: cannot read the config file", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Not JSON; `problem` is serde_json's message, which carries the line and column.
    #[error("{}: invalid JSON: {problem}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        problem: String,
    },
    /// A known key with a wrong type or an invalid value.
    #[error("{}: {key}: {problem}", file.display())]
    Key {
        file: PathBuf,
        key: String,
        problem: String,
    },
    /// The document as a whole is unusable (e.g. a JSON array instead of an object).
    #[error("{}: {problem}", file.display())]
    Document { file: PathBuf, problem: String },
    /// A file the config names (TLS key, certificate, CA) is not readable.
    #[error("{}: {key}: cannot read {}", file.display(), path.display())]
    Unreadable {
        file: PathBuf,
        key: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ConfigError {
    /// The key path the error is about, if any (`server.workers`, `https.bind[0]`).
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Key { key, .. } | Self::Unreadable { key, .. } => Some(key),
            Self::Read { .. } | Self::Syntax { .. } | Self::Document { .. } => None,
        }
    }

    /// The same error with its key path rewritten (to the spelling the operator used).
    pub(super) fn with_key(mut self, rename: impl FnOnce(&str) -> String) -> Self {
        if let Self::Key { key, .. } | Self::Unreadable { key, .. } = &mut self {
            *key = rename(key);
        }
        self
    }
}
