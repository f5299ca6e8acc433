//! Property tests of backend URLs, bounded for `cargo test`: no panic on any text,
//! and the normalised form reads back as the same backend.

use proptest::prelude::*;
use proptest::test_runner::Config;

use super::*;

fn config() -> Config {
    Config {
        cases: 1000,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Mostly URL-shaped text: scheme, user info, host or IPv6 literal, port, path.
fn url_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => " ?[a-zA-Z+]{0,5}://([a-z]{0,3}(:[a-z]{0,3})?@)?([a-zA-Z0-9.\\-]{0,12}|\\[[0-9a-fA-F:]{0,12}\\])(:[0-9]{0,6})?(/[a-z/?#]{0,6})? ?",
        1 => any::<String>(),
    ]
}

#[test]
fn normalised_backend_urls_read_back_the_same() {
    proptest!(config(), |(text in url_text())| {
        if let Ok(url) = BackendUrl::parse(&text) {
            prop_assert_eq!(BackendUrl::parse(&url.to_string()), Ok(url.clone()), "{:?}", text);
            prop_assert!(!url.host().is_empty());
        }
    });
}
