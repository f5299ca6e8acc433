//! Route management from the command line: `hipache frontend add|ls|show|rm` and
//! `hipache backend add|rm|drain|disable|enable`, so operators need no `redis-cli` gymnastics.
//!
//! Owns the subcommands, the rules of an edit ([`edit`], pure, shared by both drivers), their
//! atomic application to the configured driver ([`redis`]: `WATCH` + `MULTI`/`EXEC` on the write
//! server; [`file`]: a locked rewrite through a temporary file and a rename) and what is printed
//! ([`render`]). It writes Hipache's layout (and our `state:` hashes beside it) and nothing else,
//! so a running proxy needs no signal: Redis tracking or the file watcher shows it the change.
//!
//! It does not own the layout's key names or the backend URL parser (`routes`), nor how the config
//! is found and loaded (`cli`, `config`).

mod cert;
mod edit;
mod file;
mod redis;

pub(crate) use redis::ping as ping_redis;
mod render;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, Driver};
use crate::escape::{self, Escaped};
use crate::routes::{BackendState, BackendUrlError};
pub use cert::CertCommand;
use edit::{Edit, HostRoutes};

/// A route-management subcommand; without one, `hipache` runs the proxy.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Add, list, show or remove frontends (a host and its backends)
    #[command(subcommand)]
    Frontend(FrontendCommand),
    /// Add or remove one backend of an existing frontend
    #[command(subcommand)]
    Backend(BackendCommand),
    /// Add, list, show or remove the certificates kept in Redis for the whole fleet
    #[command(subcommand)]
    Cert(CertCommand),
}

/// `hipache frontend ...`
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum FrontendCommand {
    /// Register HOST (a name, `*.example.com` or `*`) with identifier ID and its backend URLs
    Add {
        /// Host name, lowercased, without a port
        host: String,
        /// Frontend identifier, shown in the access log
        id: String,
        /// Backend URLs (http://host:port)
        #[arg(required = true, value_name = "URL")]
        urls: Vec<String>,
        /// Redefine HOST if it exists (its dead marks are cleared)
        #[arg(long)]
        replace: bool,
    },
    /// List every frontend with its identifier and number of backends
    Ls {
        /// Print one JSON document (an array of host, id, backends)
        #[arg(long)]
        json: bool,
    },
    /// Show a frontend's backends with their index and state, and the dead marks with their
    /// time left
    Show {
        /// The frontend's host, exactly as registered (`*.example.com` for a wildcard)
        host: String,
        /// Print one JSON document (host, id, backends with url, index, state, dead)
        #[arg(long)]
        json: bool,
    },
    /// Remove a frontend and its dead marks
    Rm {
        /// The frontend's host, exactly as registered
        host: String,
    },
}

/// `hipache backend ...`
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum BackendCommand {
    /// Append URL to HOST's backends
    Add {
        /// The frontend's host, exactly as registered
        host: String,
        /// Backend URL (http://host:port)
        url: String,
    },
    /// Remove URL from HOST's backends; dead marks of the backends after it follow them
    Rm {
        /// The frontend's host, exactly as registered
        host: String,
        /// Backend URL, in any spelling of the same address (http://h:80 is http://h:80/)
        url: String,
    },
    /// Send no new client to URL; clients whose sticky session names it keep going there
    Drain {
        /// The frontend's host, exactly as registered (not a wildcard: a state holds for one
        /// request host, as dead marks do)
        host: String,
        /// Backend URL, in any spelling of the same address
        url: String,
    },
    /// Send no request at all to URL, without removing it
    Disable {
        /// The frontend's host, exactly as registered (not a wildcard)
        host: String,
        /// Backend URL, in any spelling of the same address
        url: String,
    },
    /// Put a drained or disabled URL back in rotation
    Enable {
        /// The frontend's host, exactly as registered (not a wildcard)
        host: String,
        /// Backend URL, in any spelling of the same address
        url: String,
    },
}

/// Why a command did nothing. Every message names what the operator gave.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ManageError {
    #[error("\"{}\": invalid backend url", shown(.url))]
    BadUrl {
        url: String,
        #[source]
        source: BackendUrlError,
    },
    #[error("\"{}\": invalid host: {problem}", shown(.host))]
    BadHost { host: String, problem: String },
    #[error("\"{}\": invalid frontend id: {problem}", shown(.id))]
    BadId { id: String, problem: &'static str },
    #[error("{}: no such frontend", Escaped(.host))]
    UnknownHost { host: String },
    #[error("{}: frontend already exists (add --replace to redefine it, or use backend add)", Escaped(.host))]
    FrontendExists { host: String },
    #[error("{}: {} is already a backend of this frontend", Escaped(.host), Escaped(.url))]
    DuplicateBackend { host: String, url: String },
    #[error("{}: {} is not a backend of this frontend", Escaped(.host), Escaped(.url))]
    NoSuchBackend { host: String, url: String },
    #[error("{}: a backend's state holds for one request host, as dead marks do: name a host this wildcard serves", Escaped(.host))]
    WildcardState { host: String },
    #[error("{}: {} is its last backend (use frontend rm to remove the frontend)", Escaped(.host), Escaped(.url))]
    LastBackend { host: String, url: String },
    #[error("redis {server}")]
    Redis {
        server: String,
        #[source]
        source: ::redis::RedisError,
    },
    #[error("redis {server}: {key} is not a {expected}")]
    RedisLayout {
        server: String,
        key: String,
        expected: &'static str,
    },
    #[error("redis {server}: {host} kept changing under us; nothing written, try again")]
    Contended { server: String, host: String },
    #[error("{}: {problem}", path.display())]
    File { path: PathBuf, problem: String },
    /// A `redis-cluster://` driver: an edit spans two keys that a cluster keeps on different
    /// nodes, where no transaction can hold both.
    #[error("the route commands do not follow a redis-cluster driver yet (an edit of frontend: and dead: keys needs one transaction, which a cluster refuses across slots)")]
    Cluster,
    #[error("{}: cannot {action}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// An argument as an error message shows it: escaped, and cut after 80 characters (a 10 KB host
/// would bury the reason).
fn shown(text: &str) -> String {
    const SHOWN: usize = 80;
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}... ({} bytes)", Escaped(&text[..cut]), text.len()),
        None => Escaped(text).to_string(),
    }
}

/// Runs `command` against the driver of `config`, printing the result on stdout and any error on
/// stderr. Exit status: 0 done, 1 refused or failed (nothing written).
pub fn run(command: &Command, config: &Config) -> ExitCode {
    if let Command::Cert(command) = command {
        return cert::run(command, config);
    }
    match execute(command, &config.driver) {
        Ok(text) => {
            // A closed stdout (`hipache frontend ls | head`) is the reader's choice, not an error.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(error) => {
            // The causes (a Redis server's reply) are text from outside too.
            let message = crate::logging::chain(&error);
            eprintln!("hipache: {}", escape::Controls(&message));
            ExitCode::FAILURE
        }
    }
}

/// Checks the input, then reads or edits the store; returns what to print.
fn execute(command: &Command, driver: &Driver) -> Result<String, ManageError> {
    if let Driver::Redis { read, .. } = driver {
        if read.cluster.is_some() {
            return Err(ManageError::Cluster);
        }
    }
    let (host, edit) = match command {
        Command::Frontend(FrontendCommand::Ls { json }) => {
            let summaries = Store::open(driver).frontends()?;
            return Ok(match json {
                true => render::frontends_json(&summaries),
                false => render::frontends(&summaries),
            });
        }
        Command::Frontend(FrontendCommand::Show { host, json }) => {
            let host = edit::existing_host(host)?;
            let routes = Store::open(driver).read(&host)?;
            if !routes.exists() {
                return Err(ManageError::UnknownHost { host });
            }
            return Ok(match json {
                true => render::frontend_json(&host, &routes),
                false => render::frontend(&host, &routes),
            });
        }
        Command::Frontend(FrontendCommand::Add {
            host,
            id,
            urls,
            replace,
        }) => {
            let id = edit::frontend_id(id)?;
            let urls = urls
                .iter()
                .map(|url| edit::backend_url(url))
                .collect::<Result<_, _>>()?;
            let edit = Edit::AddFrontend {
                id,
                urls,
                replace: *replace,
            };
            (host, edit)
        }
        Command::Frontend(FrontendCommand::Rm { host }) => (host, Edit::RemoveFrontend),
        Command::Backend(BackendCommand::Add { host, url }) => {
            let url = edit::backend_url(url)?;
            (host, Edit::AddBackend { url })
        }
        Command::Backend(BackendCommand::Rm { host, url }) => {
            (host, Edit::RemoveBackend { url: url.clone() })
        }
        Command::Backend(BackendCommand::Drain { host, url }) => {
            (host, edit::set_state(url, BackendState::Draining))
        }
        Command::Backend(BackendCommand::Disable { host, url }) => {
            (host, edit::set_state(url, BackendState::Disabled))
        }
        Command::Backend(BackendCommand::Enable { host, url }) => {
            (host, edit::set_state(url, BackendState::Enabled))
        }
        // `run` hands these to `cert` before this point.
        Command::Cert(_) => return Ok(String::new()),
    };
    let host = match edit {
        Edit::AddFrontend { .. } | Edit::AddBackend { .. } => edit::host(host)?,
        // A key written by other means stays reachable, to be shown or removed.
        Edit::RemoveFrontend | Edit::RemoveBackend { .. } | Edit::SetState { .. } => {
            edit::existing_host(host)?
        }
    };
    Store::open(driver).apply(&host, &edit)?;
    Ok(render::done(&host, &edit))
}

/// The driver the config names; both keep Hipache's layout.
enum Store {
    Redis(redis::RedisStore),
    File(file::FileStore),
}

impl Store {
    fn open(driver: &Driver) -> Store {
        match driver {
            Driver::Redis { read, write } => Store::Redis(redis::RedisStore::new(read, write)),
            Driver::File(path) => Store::File(file::FileStore::new(path)),
        }
    }

    fn frontends(&self) -> Result<Vec<render::Summary>, ManageError> {
        match self {
            Store::Redis(store) => store.frontends(),
            Store::File(store) => store.frontends(),
        }
    }

    fn read(&self, host: &str) -> Result<HostRoutes, ManageError> {
        match self {
            Store::Redis(store) => store.read(host),
            Store::File(store) => store.read(host),
        }
    }

    fn apply(&self, host: &str, edit: &Edit) -> Result<(), ManageError> {
        match self {
            Store::Redis(store) => store.apply(host, edit),
            Store::File(store) => store.apply(host, edit),
        }
    }
}
