//! `ConfigError`: why a configuration file was rejected.
//!
//! Every message starts with the file, then the key path when there is one, so an operator can go
//! straight to the line: `config/config.json: server.workers: must be at least 1`.

use std::io;
use std::path::PathBuf;

/// Why a configuration file was rejected; the message names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file itself could not be read.
    #[error("{}: cannot read the config file", file.display())]
    Read {
        /// The config file.
        file: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Not JSON; `problem` is serde_json's message, which carries the line and column.
    #[error("{}: invalid JSON: {problem}", file.display())]
    Syntax {
        /// The config file.
        file: PathBuf,
        /// Where the JSON breaks (1-based).
        line: usize,
        /// Where the JSON breaks (1-based).
        column: usize,
        /// serde_json's message.
        problem: String,
    },
    /// A known key with a wrong type or an invalid value.
    #[error("{}: {key}: {problem}", file.display())]
    Key {
        /// The config file.
        file: PathBuf,
        /// The key path, as the operator wrote it (`server.workers`, `https.bind[0]`).
        key: String,
        /// What is wrong with its value.
        problem: String,
    },
    /// The document as a whole is unusable (e.g. a JSON array instead of an object).
    #[error("{}: {problem}", file.display())]
    Document {
        /// The config file.
        file: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A file the config names (TLS key, certificate, CA) is not readable.
    #[error("{}: {key}: cannot read {}", file.display(), path.display())]
    Unreadable {
        /// The config file.
        file: PathBuf,
        /// The key that names the file.
        key: String,
        /// The file named.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl ConfigError {
    /// The same error with its key path rewritten (to the spelling the operator used).
    pub(super) fn with_key(mut self, rename: impl FnOnce(&str) -> String) -> Self {
        if let Self::Key { key, .. } | Self::Unreadable { key, .. } = &mut self {
            *key = rename(key);
        }
        self
    }
}
