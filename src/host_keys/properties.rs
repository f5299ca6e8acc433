//! Property tests of `Host` parsing and frontend candidates, bounded for `cargo test`.

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

/// Host names with labels, sometimes a port, sometimes an IPv6 literal, sometimes anything.
fn host_header() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9-]{0,5}(\\.[a-zA-Z0-9-]{0,5}){0,9}(:[0-9]{0,6})?",
        1 => "\\[[0-9a-f:]{0,12}\\](:[0-9]{0,5})?",
        1 => any::<String>(),
    ]
}

#[test]
fn hosts_lose_only_their_port() {
    proptest!(config(), |(header in host_header())| {
        match parse_host(&header) {
            HostRequest::Ping => prop_assert_eq!(header.as_str(), PING_HOST),
            HostRequest::Route(host) => {
                prop_assert!(header.starts_with(host));
                if !header.starts_with('[') {
                    prop_assert_eq!(host, header.split(':').next().unwrap_or_default());
                } else if let Some(end) = header.find(']') {
                    prop_assert_eq!(host, &header[..=end]);
                }
            }
        }
    });
}

#[test]
fn candidates_run_from_the_host_through_its_suffixes_to_star() {
    proptest!(config(), |(header in host_header())| {
        let HostRequest::Route(host) = parse_host(&header) else { return Ok(()) };
        let host = normalize(host);
        let lower = host.to_ascii_lowercase();
        prop_assert_eq!(&*host, lower.as_str());
        let keys = candidates(&host);
        let labels = host.split('.').count().min(MAX_LABELS);
        prop_assert_eq!(keys.len(), labels + 1);
        prop_assert_eq!(keys.first().map(String::as_str), Some(&*host));
        prop_assert_eq!(keys.last().map(String::as_str), Some("*"));
        let wildcards = &keys[1..keys.len() - 1];
        for (key, shorter) in wildcards.iter().zip(wildcards.iter().skip(1)) {
            prop_assert!(key.len() > shorter.len(), "{:?}", keys);
        }
        for key in wildcards {
            let suffix = key.strip_prefix('*').unwrap_or_default();
            prop_assert!(suffix.starts_with('.') && host.ends_with(suffix), "{:?}", keys);
        }
    });
}
