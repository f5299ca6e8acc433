use super::*;

fn store(text: Option<&str>) -> (tempfile::TempDir, FileStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.json");
    if let Some(text) = text {
        std::fs::write(&path, text).unwrap();
    }
    let store = FileStore::new(&path);
    (dir, store)
}

fn text(store: &FileStore) -> String {
    std::fs::read_to_string(&store.path).unwrap()
}

fn add_frontend(id: &str, urls: &[&str]) -> Edit {
    Edit::AddFrontend {
        id: id.into(),
        urls: urls.iter().map(|s| s.to_string()).collect(),
        replace: false,
    }
}

#[test]
fn edits_keep_other_keys_and_write_one_readable_line_per_key() {
    let (_dir, store) = store(Some(
        r#"{"hchecker_ping": 1, "dead:b.test": ["1"], "frontend:b.test": ["b", "http://h:1", "http://h:2"]}"#,
    ));
    store
        .apply("a.test", &add_frontend("a", &["http://h:3"]))
        .unwrap();
    assert_eq!(
        text(&store),
        "{\n    \"frontend:a.test\": [\"a\", \"http://h:3\"],\n    \
         \"frontend:b.test\": [\"b\", \"http://h:1\", \"http://h:2\"],\n    \
         \"dead:b.test\": [\"1\"],\n    \
         \"hchecker_ping\": 1\n}\n"
    );
    // What was written is what the proxy's file driver reads.
    let summaries = store.frontends().unwrap();
    assert_eq!(summaries.len(), 2);
    assert_eq!(store.read("b.test").unwrap().dead, [1]);
}

#[test]
fn backend_rm_rewrites_the_dead_marks_and_frontend_rm_drops_both_keys() {
    let (_dir, store) = store(Some(
        r#"{"frontend:b.test": ["b", "http://h:1", "http://h:2", "http://h:3"], "dead:b.test": [0, 2]}"#,
    ));
    store
        .apply(
            "b.test",
            &Edit::RemoveBackend {
                url: "http://h:1".into(),
            },
        )
        .unwrap();
    let routes = store.read("b.test").unwrap();
    assert_eq!(routes.list, ["b", "http://h:2", "http://h:3"]);
    assert_eq!(routes.dead, [1]);
    store.apply("b.test", &Edit::RemoveFrontend).unwrap();
    assert_eq!(text(&store), "{}\n");
}

#[test]
fn a_missing_file_is_created_by_frontend_add_only() {
    let (dir, store) = store(None);
    let error = store.apply("a.test", &Edit::RemoveFrontend).unwrap_err();
    let message = crate::logging::chain(&error);
    assert!(
        message.contains("routes.json: cannot read the routes file: "),
        "{message}"
    );
    assert!(store.frontends().is_err());
    store
        .apply("a.test", &add_frontend("a", &["http://h:1"]))
        .unwrap();
    assert_eq!(store.read("a.test").unwrap().list, ["a", "http://h:1"]);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn broken_files_are_reported_and_left_alone() {
    let broken = r#"{"frontend:a.test": "http://h:1"}"#;
    let (_dir, store) = store(Some(broken));
    let error = store
        .apply(
            "a.test",
            &Edit::AddBackend {
                url: "http://h:2".into(),
            },
        )
        .unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("routes.json: frontend:a.test: expected a list of strings"),
        "{error}"
    );
    assert_eq!(text(&store), broken);
    let (_dir, store) = store_with_invalid_json();
    assert!(store
        .frontends()
        .unwrap_err()
        .to_string()
        .contains("invalid routes file"));
}

fn store_with_invalid_json() -> (tempfile::TempDir, FileStore) {
    store(Some("{\"frontend:a.test\": [\"a\""))
}

#[test]
fn the_new_file_keeps_the_old_ones_permissions() {
    use std::os::unix::fs::PermissionsExt as _;
    let (_dir, store) = store(Some("{}"));
    std::fs::set_permissions(&store.path, std::fs::Permissions::from_mode(0o644)).unwrap();
    store
        .apply("a.test", &add_frontend("a", &["http://h:1"]))
        .unwrap();
    let mode = std::fs::metadata(&store.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
}

#[test]
fn a_state_is_written_beside_the_host_keys_and_read_back() {
    let (_dir, store) = store(Some(
        r#"{"frontend:a.test": ["a", "http://h:1", "http://h:2"]}"#,
    ));
    let drain = Edit::SetState {
        url: "http://h:2".into(),
        state: crate::routes::BackendState::Draining,
    };
    store.apply("a.test", &drain).unwrap();
    assert_eq!(
        text(&store),
        "{\n    \"frontend:a.test\": [\"a\", \"http://h:1\", \"http://h:2\"],\n    \
         \"state:a.test\": {\"http://h:2/\":\"drain\"}\n}\n"
    );
    // What was written is what the proxy's file driver reads.
    crate::routes::file::FileRoutes::open(
        &store.path,
        std::time::Duration::from_secs(1),
        Default::default(),
    )
    .unwrap();
    let routes = store.read("a.test").unwrap();
    assert_eq!(
        routes.backend_states(),
        [
            crate::routes::BackendState::Enabled,
            crate::routes::BackendState::Draining
        ]
    );
    let enable = Edit::SetState {
        url: "http://h:2/".into(),
        state: crate::routes::BackendState::Enabled,
    };
    store.apply("a.test", &enable).unwrap();
    assert!(!text(&store).contains("state:"), "{}", text(&store));
}
