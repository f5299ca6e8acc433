//! Process log setup: tracing to stderr, `debug` in the config (or `RUST_LOG`) for verbosity, and
//! `RUST_LOG_FORMAT=json` for one JSON object per line (time, level, target, message, fields)
//! that a log pipeline reads without a parser of its own.

use tracing_subscriber::EnvFilter;

/// The environment variable that chooses the process log's format.
pub const FORMAT_ENV: &str = "RUST_LOG_FORMAT";

/// Installs the global subscriber. `RUST_LOG` wins over the config's `debug` flag.
pub fn init(debug: bool) {
    let default = if debug { "hipache=debug,info" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if is_json(std::env::var(FORMAT_ENV).ok().as_deref()) {
        builder.json().flatten_event(true).try_init()
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        builder.with_ansi(ansi).try_init()
    };
}

/// Whether `RUST_LOG_FORMAT` asks for JSON lines (anything else is the text format).
fn is_json(format: Option<&str>) -> bool {
    format.is_some_and(|f| f.eq_ignore_ascii_case("json"))
}

/// `error: cause: cause`: the whole chain in one log field (an error's `Display` shows only its
/// own level).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors (redis's server errors) already show their source in their own text.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Echo);

    /// Shows its source in its own text, as redis's errors do.
    #[derive(Debug, thiserror::Error)]
    #[error("echo: {0}")]
    struct Echo(#[source] std::io::Error);

    #[test]
    fn chain_names_each_cause_once() {
        let error = Outer(Echo(std::io::Error::other("refused")));
        assert_eq!(chain(&error), "outer: echo: refused");
    }
}
