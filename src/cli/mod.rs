//! The command line: `hipache [-c|--config FILE] [-d|--dry]` (or a route-management subcommand,
//! see `manage`), and where the config file is when
//! `--config` is not given (`SETTINGS_FLAVOR`, then the installation's `config/` folder).
//!
//! Resolution is split into pure functions over candidate paths so it is testable without
//! touching the environment or the disk.

mod manual;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

pub use manual::{print_completions, print_manual};

const AFTER_HELP: &str = "\
Without --config, the file is config/config.json, or config/config_<flavor>.json when the
SETTINGS_FLAVOR environment variable is set (e.g. SETTINGS_FLAVOR=test uses config/config_test.json).
It is looked up in the current directory first, then next to the installation (the folder above
the executable's, or the one above that).";

/// `--version`'s long form: what the binary is made of.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("HIPACHE_COMMIT"),
    "\ncrypto: ",
    env!("HIPACHE_CRYPTO"),
    " (rustls)\nfeatures: ",
    env!("HIPACHE_FEATURES"),
);

/// Hipache: a distributed HTTP and WebSocket proxy.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "hipache", version, long_version = LONG_VERSION, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Location of the configuration file
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    pub(crate) config: Option<PathBuf>,
    /// Test the configuration, print the effective result and exit (does not start hipache)
    #[arg(short = 'd', long = "dry")]
    pub dry: bool,
    /// Internal: run as a worker process started by the master (listeners are inherited).
    #[arg(long = "worker", hide = true)]
    pub worker: bool,
    /// Route management, or the manual and completions, instead of running the proxy.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `hipache <subcommand>` does instead of running the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Route management (`frontend ...`, `backend ...`).
    #[command(flatten)]
    Routes(crate::manage::Command),
    /// Print the shell completion script for SHELL
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff; `hipache man | man -l -` shows it)
    Man,
}

/// `config/config.json`, or `config/config_<flavor>.json` for a non-empty flavor.
pub(crate) fn default_config_path(flavor: Option<&str>) -> PathBuf {
    match flavor.filter(|f| !f.is_empty()) {
        Some(flavor) => Path::new("config").join(format!("config_{flavor}.json")),
        None => Path::new("config").join("config.json"),
    }
}

impl Cli {
    /// The process's arguments, or clap's usage error and exit: like `Cli::parse`, and also
    /// refusing a route-management subcommand next to the daemon's `--dry` or `--worker`.
    pub fn from_env() -> Cli {
        let cli = Cli::parse();
        if let Some(problem) = cli.conflict() {
            use clap::CommandFactory as _;
            Cli::command()
                .error(clap::error::ErrorKind::ArgumentConflict, problem)
                .exit();
        }
        cli
    }

    fn conflict(&self) -> Option<&'static str> {
        let daemon_flag = self.dry || self.worker;
        (self.command.is_some() && daemon_flag)
            .then_some("--dry and --worker are for the proxy; they take no subcommand")
    }

    /// `--config` if given, else the default file for `SETTINGS_FLAVOR`, found as `candidates`
    /// describes.
    pub fn config_path(&self) -> PathBuf {
        if let Some(path) = &self.config {
            return path.clone();
        }
        let flavor = std::env::var("SETTINGS_FLAVOR").ok();
        let relative = default_config_path(flavor.as_deref());
        let exe = std::env::current_exe().ok();
        first_existing(candidates(&relative, exe.as_deref()), |p| p.is_file())
    }

    /// Without `--config`: which file `SETTINGS_FLAVOR` chose and where it was looked for, to
    /// follow the error when no file could be read.
    pub fn config_search(&self) -> Option<String> {
        if self.config.is_some() {
            return None;
        }
        let flavor = std::env::var("SETTINGS_FLAVOR").ok();
        let relative = default_config_path(flavor.as_deref());
        let exe = std::env::current_exe().ok();
        let places = candidates(&relative, exe.as_deref());
        Some(describe_search(flavor.as_deref(), &places))
    }
}

fn describe_search(flavor: Option<&str>, places: &[PathBuf]) -> String {
    let chose = match flavor.filter(|f| !f.is_empty()) {
        Some(flavor) => format!("SETTINGS_FLAVOR={flavor} selects"),
        None => "SETTINGS_FLAVOR is not set, which selects".to_owned(),
    };
    let places: Vec<String> = places.iter().map(|p| p.display().to_string()).collect();
    let relative = places.first().map_or("", String::as_str);
    format!(
        "no --config given; {chose} {relative}, looked for in: {}",
        places.join(", ")
    )
}

/// Where the default file may be, in order: the current directory (our README runs the binary
/// from the repository root), then the folders above the executable's, so that
/// `target/release/hipache` started elsewhere still finds the repository's `config/`.
fn candidates(relative: &Path, exe: Option<&Path>) -> Vec<PathBuf> {
    let mut out = vec![relative.to_path_buf()];
    let exe_dir = exe.and_then(Path::parent);
    for base in exe_dir
        .iter()
        .flat_map(|dir| dir.ancestors().skip(1).take(2))
    {
        out.push(base.join(relative));
    }
    out
}

/// The first candidate that exists; if none does, the first one, so the "cannot read" error names
/// the conventional path.
fn first_existing(candidates: Vec<PathBuf>, exists: impl Fn(&Path) -> bool) -> PathBuf {
    let fallback = candidates.first().cloned().unwrap_or_default();
    candidates
        .into_iter()
        .find(|p| exists(p))
        .unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::manage::{self, BackendCommand, FrontendCommand};

    #[test]
    fn default_path_is_config_json() {
        assert_eq!(
            default_config_path(None),
            PathBuf::from("config/config.json")
        );
        assert_eq!(
            default_config_path(Some("")),
            PathBuf::from("config/config.json")
        );
    }

    #[test]
    fn settings_flavor_picks_config_flavor_json() {
        assert_eq!(
            default_config_path(Some("test")),
            PathBuf::from("config/config_test.json")
        );
    }

    #[test]
    fn config_flag_wins() {
        let cli = Cli::parse_from(["hipache", "--config", "/etc/hipache.json"]);
        assert_eq!(cli.config_path(), PathBuf::from("/etc/hipache.json"));
        let cli = Cli::parse_from(["hipache", "-c", "x.json", "-d"]);
        assert_eq!(
            cli,
            Cli {
                config: Some("x.json".into()),
                dry: true,
                worker: false,
                command: None,
            }
        );
    }

    #[test]
    fn subcommands_do_not_mix_with_daemon_flags() {
        let cli = Cli::parse_from(["hipache", "--dry", "frontend", "ls"]);
        assert!(cli.conflict().is_some());
        let cli = Cli::parse_from(["hipache", "-c", "x.json", "frontend", "ls"]);
        assert_eq!(cli.conflict(), None);
        assert_eq!(Cli::parse_from(["hipache", "--dry"]).conflict(), None);
    }

    #[test]
    fn candidates_try_cwd_then_above_the_executable() {
        let rel = Path::new("config/config.json");
        let got = candidates(rel, Some(Path::new("/repo/target/release/hipache")));
        let want: Vec<PathBuf> = [
            "config/config.json",
            "/repo/target/config/config.json",
            "/repo/config/config.json",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(got, want);
        assert_eq!(candidates(rel, None), vec![rel.to_path_buf()]);
    }

    #[test]
    fn first_existing_candidate_wins_else_the_conventional_path() {
        let c = candidates(
            Path::new("config/config.json"),
            Some(Path::new("/repo/target/release/hipache")),
        );
        let found = first_existing(c.clone(), |p| p == Path::new("/repo/config/config.json"));
        assert_eq!(found, PathBuf::from("/repo/config/config.json"));
        assert_eq!(
            first_existing(c, |_| false),
            PathBuf::from("config/config.json")
        );
    }

    #[test]
    fn search_names_the_flavor_and_every_place() {
        let places = candidates(
            Path::new("config/config_prod.json"),
            Some(Path::new("/opt/hipache/bin/hipache")),
        );
        assert_eq!(
            describe_search(Some("prod"), &places),
            "no --config given; SETTINGS_FLAVOR=prod selects config/config_prod.json, looked for \
             in: config/config_prod.json, /opt/hipache/config/config_prod.json, \
             /opt/config/config_prod.json"
        );
        assert!(describe_search(None, &places).contains("SETTINGS_FLAVOR is not set"));
        let given = Cli::parse_from(["hipache", "-c", "x.json"]);
        assert_eq!(given.config_search(), None);
    }

    #[test]
    fn help_mentions_settings_flavor() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("SETTINGS_FLAVOR"), "{help}");
        assert!(help.contains("--dry"), "{help}");
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("hipache").chain(args.iter().copied()))
    }

    #[test]
    fn subcommands_parse_with_config_before_or_after() {
        let cli = parse(&[
            "-c",
            "x.json",
            "frontend",
            "add",
            "h",
            "id",
            "http://a:1",
            "http://b:2",
        ])
        .unwrap();
        assert_eq!(cli.config, Some("x.json".into()));
        assert_eq!(
            cli.command,
            Some(Command::Routes(manage::Command::Frontend(
                FrontendCommand::Add {
                    host: "h".into(),
                    id: "id".into(),
                    urls: vec!["http://a:1".into(), "http://b:2".into()],
                    replace: false,
                }
            )))
        );
        let cli = parse(&["backend", "rm", "h", "http://a:1", "--config", "y.json"]).unwrap();
        assert_eq!(cli.config, Some("y.json".into()));
        assert!(matches!(
            cli.command,
            Some(Command::Routes(manage::Command::Backend(
                BackendCommand::Rm { .. }
            )))
        ));
    }

    #[test]
    fn the_daemons_command_line_is_unchanged() {
        for args in [
            &[][..],
            &["-c", "f.json"],
            &["--dry"],
            &["--worker", "-c", "f"],
        ] {
            let cli = parse(args).unwrap();
            assert_eq!(cli.command, None, "{args:?}");
        }
        assert!(parse(&["--worker"]).unwrap().worker);
    }

    #[test]
    fn incomplete_or_mixed_command_lines_are_refused() {
        assert!(parse(&["frontend", "add", "h", "id"]).is_err());
        assert!(parse(&["frontend", "show"]).is_err());
        assert!(parse(&["route"]).is_err());
    }
}
