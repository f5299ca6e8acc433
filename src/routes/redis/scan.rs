//! Walking a server's frontend keys without blocking it, for the users of routes that list
//! them (the health checker, the status page): `SCAN` steps matching the frontends under a
//! prefix, never `KEYS`, which holds the server for as long as it walks every key.

use crate::routes::FRONTEND_PREFIX;

/// Keys asked for per `SCAN` step: small enough that each step is quick for Redis.
pub(crate) const SCAN_COUNT: usize = 500;

/// The `SCAN` step from `cursor` over the frontend keys that `pattern` matches.
pub(crate) fn scan_step(cursor: u64, pattern: &str) -> redis::Cmd {
    let mut scan = redis::cmd("SCAN");
    scan.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    scan
}

/// The `MATCH` pattern of every frontend key under `prefix`, the prefix taken literally.
pub(crate) fn frontend_pattern(prefix: &str) -> String {
    format!("{}*", glob_escape(&format!("{prefix}{FRONTEND_PREFIX}")))
}

/// `text` as a literal inside a `SCAN MATCH` pattern (a prefix may hold glob characters).
pub(crate) fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_glob_characters_are_literal() {
        assert_eq!(glob_escape("app:"), "app:");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(frontend_pattern("a*p:"), "a\\*p:frontend:*");
    }
}
