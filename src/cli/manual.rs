//! The manual page (`hipache man`) and shell completions (`hipache completions SHELL`), both
//! generated from the command-line definition so that neither can miss a flag or a subcommand.
//! The page adds what the definition cannot say: environment, signals, files, exit status.

use std::io::{self, Write};

use clap::CommandFactory;
use clap_mangen::roff::{roman, Roff};
use clap_mangen::Man;

use super::Cli;
use crate::supervision::exit_code;

/// Writes the completion script for `shell` to standard output.
pub fn print_completions(shell: clap_complete::Shell) -> io::Result<()> {
    let mut command = Cli::command();
    let mut out = io::stdout().lock();
    clap_complete::generate(shell, &mut command, "hipache", &mut out);
    out.flush()
}

/// Writes the manual page, in roff, to standard output.
pub fn print_manual() -> io::Result<()> {
    let mut out = io::stdout().lock();
    render(&mut out)?;
    out.flush()
}

fn render(out: &mut dyn Write) -> io::Result<()> {
    let command = Cli::command();
    let man = Man::new(command.clone()).section("1");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    commands_section(&command).to_writer(out)?;
    for (title, paragraphs) in FIXED_SECTIONS {
        let mut roff = Roff::new();
        roff.control("SH", [*title]);
        for (tag, text) in *paragraphs {
            match tag {
                Some(tag) => roff.control("TP", []).text([roman(*tag)]),
                None => roff.control("PP", []),
            };
            roff.text([roman(*text)]);
        }
        roff.to_writer(out)?;
    }
    exit_status_section().to_writer(out)?;
    man.render_version_section(out)
}

/// Every leaf subcommand with its usage and its arguments, as `--help` shows them.
fn commands_section(command: &clap::Command) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    let mut leaves = Vec::new();
    collect_leaves(command, "hipache", &mut leaves);
    for (path, leaf) in leaves {
        roff.control("SS", [path.as_str()]);
        let help = leaf.clone().bin_name(&path).render_long_help().to_string();
        roff.control("nf", []);
        for line in help.lines() {
            roff.text([roman(line)]);
        }
        roff.control("fi", []);
    }
    roff
}

fn collect_leaves<'a>(
    command: &'a clap::Command,
    path: &str,
    out: &mut Vec<(String, &'a clap::Command)>,
) {
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_path = format!("{path} {}", sub.get_name());
        if sub.has_subcommands() {
            collect_leaves(sub, &sub_path, out);
        } else {
            out.push((sub_path, sub));
        }
    }
}

fn exit_status_section() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    let codes = [
        (exit_code::DRAINED, "Stopped on request (SIGTERM, SIGINT) after draining; --dry and the route commands: success."),
        (exit_code::STARTUP, "Could not start: a port in use or not permitted, a user that does not exist, a certificate that does not load, Redis refusing a route command."),
        (exit_code::CONFIG, "The configuration file could not be read or is invalid; the message names the file, the key and the cause."),
    ];
    for (code, text) in codes {
        roff.control("TP", []);
        roff.text([roman(code.to_string())]);
        roff.text([roman(text)]);
    }
    roff
}

/// (section title, paragraphs: an optional tag and its text).
type Section = (
    &'static str,
    &'static [(Option<&'static str>, &'static str)],
);

const FIXED_SECTIONS: &[Section] = &[
    (
        "ENVIRONMENT",
        &[
            (Some("SETTINGS_FLAVOR"), "Without --config, selects config/config_<flavor>.json instead of config/config.json."),
            (Some("RUST_LOG"), "The process log's filter (tracing's syntax, e.g. hipache=debug); it wins over server.debug."),
            (Some("RUST_LOG_FORMAT"), "json: the process log is one JSON object per line (timestamp, level, message, target and the event's fields); anything else: text."),
            (Some("NOTIFY_SOCKET"), "Set by systemd for Type=notify services: the master reports READY=1 once every worker serves, RELOADING=1 and READY=1 around a reload, STOPPING=1, and the addresses it serves in STATUS."),
        ],
    ),
    (
        "SIGNALS",
        &[
            (Some("SIGTERM, SIGINT"), "The master stops accepting, lets every worker finish what it serves (at most server.gracefulWait), then exits."),
            (Some("SIGHUP"), "Reload: the configuration file is read again; when it is valid, a new generation of workers starts and the old one drains once the new one is ready. An invalid file keeps the running configuration and says why in the log."),
            (Some("SIGUSR1"), "Reopen the access log (log rotation)."),
            (Some("SIGUSR2"), "Ignored by workers, as in Hipache."),
        ],
    ),
    (
        "FILES",
        &[
            (Some("/etc/hipache/config.json"), "The configuration the Debian package installs and its service uses."),
            (Some("config/config.json"), "The default configuration when --config is not given, looked up in the current directory and beside the installation."),
            (Some("/var/log/hipache/access.log"), "The access log of the packaged configuration (server.accessLog), one line per request in Hipache's format."),
            (Some("static/error_<code>.html"), "Error pages (server.staticDir), with error_default.html as the fallback."),
        ],
    ),
    (
        "SEE ALSO",
        &[(None, "redis-cli(1), systemctl(1). The README lists every configuration key and the Redis layout.")],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> String {
        let mut out = Vec::new();
        render(&mut out).unwrap();
        // roff writes a dash as `\-`.
        String::from_utf8(out).unwrap().replace("\\-", "-")
    }

    #[test]
    fn the_page_names_every_flag_and_subcommand_of_the_definition() {
        let page = page();
        let command = Cli::command();
        for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                assert!(page.contains(&format!("--{long}")), "--{long}:\n{page}");
            }
        }
        let mut leaves = Vec::new();
        collect_leaves(&command, "hipache", &mut leaves);
        assert!(leaves.len() >= 8, "{leaves:?}");
        for (path, leaf) in &leaves {
            assert!(page.contains(path.as_str()), "{path}");
            for arg in leaf.get_arguments().filter_map(|a| a.get_long()) {
                assert!(page.contains(&format!("--{arg}")), "{path} --{arg}");
            }
        }
        for section in [
            "ENVIRONMENT",
            "SIGNALS",
            "FILES",
            "EXIT STATUS",
            "SIGHUP",
            "SETTINGS_FLAVOR",
        ] {
            assert!(page.contains(section), "{section}");
        }
    }

    #[test]
    fn completions_know_the_subcommands() {
        let mut command = Cli::command();
        let mut out = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut command,
            "hipache",
            &mut out,
        );
        let script = String::from_utf8(out).unwrap();
        for word in ["frontend", "backend", "completions", "--config", "--dry"] {
            assert!(script.contains(word), "{word}");
        }
    }
}
