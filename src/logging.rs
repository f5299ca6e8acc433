//! Process log setup: tracing to stderr, `debug` in the config (or `RUST_LOG`) for verbosity.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` wins over the config's `debug` flag.
pub fn init(debug: bool) {
    let default = if debug { "hipache=debug,info" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// `error: cause: cause`: the whole chain in one log field (an error's `Display` shows only its
/// own level).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
