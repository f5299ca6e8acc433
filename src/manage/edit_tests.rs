use super::*;
use crate::routes::{BackendState, BackendUrlError};

fn routes(list: &[&str], dead: &[usize]) -> HostRoutes {
    HostRoutes {
        list: list.iter().map(|s| s.to_string()).collect(),
        dead: dead.to_vec(),
        dead_ttl: Some(Duration::from_secs(20)),
        states: Vec::new(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn add_backend(url: &str) -> Edit {
    Edit::AddBackend { url: url.into() }
}

fn remove_backend(url: &str) -> Edit {
    Edit::RemoveBackend { url: url.into() }
}

#[test]
fn hosts_are_lowercased_and_keys_the_proxy_cannot_match_are_refused() {
    assert_eq!(host(" WWW.Example.COM ").unwrap(), "www.example.com");
    assert_eq!(host("*.example.com").unwrap(), "*.example.com");
    assert_eq!(host("*").unwrap(), "*");
    assert_eq!(host("[::1]").unwrap(), "[::1]");
    for bad in ["", "  ", "a b", "a/b", "example.com:8080"] {
        let error = host(bad).unwrap_err();
        assert!(
            matches!(error, ManageError::BadHost { .. }),
            "{bad}: {error}"
        );
    }
    let message = host("example.com:8080").unwrap_err().to_string();
    assert!(
        message.contains("\"example.com:8080\"") && message.contains("port"),
        "{message}"
    );
}

#[test]
fn hosts_no_lookup_could_produce_are_refused_with_the_reason() {
    for (bad, reason) in [
        ("Bad_Host..com", "empty label"),
        ("bücher.de", "punycode"),
        ("a\r\nb.com", "not allowed"),
        ("*.a..b", "empty label"),
        ("a*.com", "not allowed"),
        ("__ping__", "liveness probe"),
    ] {
        let message = host(bad).unwrap_err().to_string();
        assert!(message.contains(reason), "{bad:?}: {message}");
    }
    let message = host(&"a".repeat(10_000)).unwrap_err().to_string();
    assert!(message.contains("longer than 253 bytes"), "{message}");
    assert_eq!(host("xn--bcher-kva.de").unwrap(), "xn--bcher-kva.de");
    assert_eq!(host("*.My_Service.Local").unwrap(), "*.my_service.local");
}

#[test]
fn a_key_written_by_other_means_can_still_be_shown_or_removed() {
    assert_eq!(existing_host(" Bad_Host..com ").unwrap(), "bad_host..com");
    assert!(existing_host("").is_err());
    assert!(existing_host("a\nb").is_err());
}

#[test]
fn frontend_ids_with_controls_are_refused() {
    assert_eq!(frontend_id("my app").unwrap(), "my app");
    for bad in ["", " ", "a\r\nb", "a\x1b[2J"] {
        assert!(
            matches!(frontend_id(bad), Err(ManageError::BadId { .. })),
            "{bad:?}"
        );
    }
    let message = frontend_id("a\nb").unwrap_err().to_string();
    assert_eq!(
        message,
        "\"a\\x0Ab\": invalid frontend id: it must not hold control characters (CR, LF, ESC...)"
    );
}

#[test]
fn backend_urls_the_proxy_would_misread_are_refused() {
    for (bad, source) in [
        (
            "ftp://a.test:21",
            BackendUrlError::UnsupportedScheme("ftp".into()),
        ),
        ("http://a.test:80/app", BackendUrlError::IgnoredPath),
        (
            "http://exa mple.com:80",
            BackendUrlError::InvalidHost(crate::host_name::HostNameError::BadCharacter(' ')),
        ),
        (
            "http://127.0.0.1:80 http://127.0.0.1:81",
            BackendUrlError::InvalidHost(crate::host_name::HostNameError::BadCharacter(':')),
        ),
    ] {
        match backend_url(bad) {
            Err(ManageError::BadUrl { source: got, .. }) => assert_eq!(got, source, "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn backend_urls_go_through_the_proxys_parser() {
    assert_eq!(
        backend_url(" http://10.0.0.1:8080 ").unwrap(),
        "http://10.0.0.1:8080"
    );
    let error = backend_url("10.0.0.1:8080").unwrap_err();
    assert!(
        matches!(
            error,
            ManageError::BadUrl {
                source: BackendUrlError::MissingScheme,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(error.to_string(), "\"10.0.0.1:8080\": invalid backend url");
    assert!(matches!(
        backend_url("http://a:99999"),
        Err(ManageError::BadUrl {
            source: BackendUrlError::InvalidPort,
            ..
        })
    ));
}

#[test]
fn add_frontend_refuses_an_existing_host_unless_replacing_and_clears_old_marks() {
    let edit = Edit::AddFrontend {
        id: "site".into(),
        urls: strings(&["http://a:1", "http://b:2"]),
        replace: false,
    };
    let new = plan("h", &edit, &HostRoutes::default()).unwrap();
    let expected = Change::Put {
        list: strings(&["site", "http://a:1", "http://b:2"]),
        dead: Some(vec![]),
        states: Some(vec![]),
    };
    assert_eq!(new, expected);
    let existing = routes(&["old", "http://z:9"], &[0]);
    assert!(matches!(
        plan("h", &edit, &existing),
        Err(ManageError::FrontendExists { .. })
    ));
    let replace = Edit::AddFrontend {
        id: "site".into(),
        urls: strings(&["http://a:1", "http://b:2"]),
        replace: true,
    };
    assert_eq!(plan("h", &replace, &existing).unwrap(), expected);
}

#[test]
fn add_backend_appends_keeps_marks_and_refuses_duplicates_and_unknown_hosts() {
    let current = routes(&["site", "http://a:1"], &[0]);
    assert_eq!(
        plan("h", &add_backend("http://b:2"), &current).unwrap(),
        Change::Put {
            list: strings(&["site", "http://a:1", "http://b:2"]),
            dead: None,
            states: None,
        }
    );
    // Same backend in another spelling.
    assert!(matches!(
        plan("h", &add_backend("http://A:1/"), &current),
        Err(ManageError::DuplicateBackend { .. })
    ));
    assert!(matches!(
        plan("h", &add_backend("http://b:2"), &HostRoutes::default()),
        Err(ManageError::UnknownHost { .. })
    ));
}

#[test]
fn remove_backend_moves_the_later_dead_marks_with_their_backends() {
    let current = routes(
        &[
            "site",
            "http://a:1",
            "http://b:2",
            "http://c:3",
            "http://d:4",
        ],
        &[0, 1, 3],
    );
    // b (index 1) leaves: a's mark stays 0, b's goes, d's mark follows d from 3 to 2.
    assert_eq!(
        plan("h", &remove_backend("http://b:2/"), &current).unwrap(),
        Change::Put {
            list: strings(&["site", "http://a:1", "http://c:3", "http://d:4"]),
            dead: Some(vec![0, 2]),
            states: Some(vec![]),
        }
    );
}

#[test]
fn remove_backend_takes_every_copy_and_unusable_entries_by_their_text() {
    let current = routes(
        &["site", "http://a:1", "junk", "http://a:1/", "http://c:3"],
        &[3],
    );
    assert_eq!(
        plan("h", &remove_backend("http://a:1"), &current).unwrap(),
        Change::Put {
            list: strings(&["site", "junk", "http://c:3"]),
            dead: Some(vec![1]),
            states: Some(vec![]),
        }
    );
    assert_eq!(
        plan("h", &remove_backend("junk"), &current).unwrap(),
        Change::Put {
            list: strings(&["site", "http://a:1", "http://a:1/", "http://c:3"]),
            dead: Some(vec![2]),
            states: Some(vec![]),
        }
    );
}

#[test]
fn remove_backend_refusals_name_the_cause() {
    let current = routes(&["site", "http://a:1", "http://b:2"], &[]);
    assert!(matches!(
        plan("h", &remove_backend("http://z:9"), &current),
        Err(ManageError::NoSuchBackend { .. })
    ));
    assert!(matches!(
        plan("h", &remove_backend("z:9"), &current),
        Err(ManageError::BadUrl { .. })
    ));
    let single = routes(&["site", "http://a:1"], &[]);
    assert!(matches!(
        plan("h", &remove_backend("http://a:1"), &single),
        Err(ManageError::LastBackend { .. })
    ));
    assert!(matches!(
        plan("h", &remove_backend("http://a:1"), &HostRoutes::default()),
        Err(ManageError::UnknownHost { .. })
    ));
}

#[test]
fn remove_frontend_needs_one() {
    assert_eq!(
        plan("h", &Edit::RemoveFrontend, &routes(&["site"], &[])).unwrap(),
        Change::Delete
    );
    assert!(matches!(
        plan("h", &Edit::RemoveFrontend, &HostRoutes::default()),
        Err(ManageError::UnknownHost { .. })
    ));
}

#[test]
fn remap_drops_removed_marks_and_shifts_the_rest() {
    assert_eq!(remap_dead(&[0, 2, 5, 6], &[2, 4]), [0, 3, 4]);
    assert_eq!(remap_dead(&[], &[0]), Vec::<usize>::new());
    assert_eq!(remap_dead(&[1, 2], &[]), [1, 2]);
}

fn set_state(url: &str, state: BackendState) -> Edit {
    super::set_state(url, state)
}

#[test]
fn a_state_is_stored_once_under_the_normalised_url_and_enable_removes_it() {
    let mut current = routes(&["site", "http://a:1", "http://b:2"], &[]);
    current.states = vec![
        ("http://A:1".into(), "disable".into()),
        ("http://b:2/".into(), "drain".into()),
    ];
    assert_eq!(
        plan(
            "h",
            &set_state("http://a:1/", BackendState::Draining),
            &current
        )
        .unwrap(),
        Change::States(vec![
            ("http://b:2/".into(), "drain".into()),
            ("http://a:1/".into(), "drain".into()),
        ])
    );
    assert_eq!(
        plan(
            "h",
            &set_state("http://b:2", BackendState::Enabled),
            &current
        )
        .unwrap(),
        Change::States(vec![("http://A:1".into(), "disable".into())])
    );
    assert_eq!(
        current.backend_states(),
        [BackendState::Disabled, BackendState::Draining]
    );
}

#[test]
fn a_state_is_refused_for_an_unknown_host_or_url_or_a_wildcard() {
    let current = routes(&["site", "http://a:1"], &[]);
    let disable = |url| set_state(url, BackendState::Disabled);
    assert!(matches!(
        plan("h", &disable("http://a:1"), &HostRoutes::default()),
        Err(ManageError::UnknownHost { .. })
    ));
    assert!(matches!(
        plan("h", &disable("http://z:1"), &current),
        Err(ManageError::NoSuchBackend { .. })
    ));
    assert!(matches!(
        plan("h", &disable("a:1"), &current),
        Err(ManageError::BadUrl { .. })
    ));
    assert!(matches!(
        plan("*.h", &disable("http://a:1"), &current),
        Err(ManageError::WildcardState { .. })
    ));
}

#[test]
fn removing_a_backend_or_redefining_the_frontend_drops_states_of_urls_gone() {
    let mut current = routes(&["site", "http://a:1", "http://b:2"], &[]);
    current.states = vec![
        ("http://a:1/".into(), "disable".into()),
        ("http://b:2/".into(), "drain".into()),
    ];
    let Change::Put { states, .. } = plan("h", &remove_backend("http://a:1"), &current).unwrap()
    else {
        panic!("not a put");
    };
    assert_eq!(states, Some(vec![("http://b:2/".into(), "drain".into())]));
    let replace = Edit::AddFrontend {
        id: "site".into(),
        urls: strings(&["http://a:1", "http://c:3"]),
        replace: true,
    };
    let Change::Put { states, .. } = plan("h", &replace, &current).unwrap() else {
        panic!("not a put");
    };
    assert_eq!(states, Some(vec![("http://a:1/".into(), "disable".into())]));
}
