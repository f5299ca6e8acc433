//! Unit tests of the file route source: loading, validation, reloads and the table's sharing.

use super::*;
use std::io::Write;

const TTL: Duration = Duration::from_secs(30);

fn routes_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

async fn frontend_id(routes: &FileRoutes, host: &str) -> Option<String> {
    routes
        .lookup(host)
        .await
        .unwrap()
        .map(|l| l.frontend.id.to_string())
}

#[tokio::test]
async fn a_state_entry_drains_or_disables_backends_of_its_host() {
    let file = routes_file(
        r#"{"frontend:a.test": ["app", "http://127.0.0.1:8080", "http://127.0.0.1:8081"],
            "state:a.test": {"http://127.0.0.1:8081/": "disable"}}"#,
    );
    let routes = FileRoutes::open(file.path(), TTL, Footprint::default()).unwrap();
    let lookup = routes.lookup("a.test").await.unwrap().unwrap();
    assert_eq!(lookup.held.disabled, [1]);
    let file = routes_file(r#"{"state:a.test": ["drain"]}"#);
    let e = FileRoutes::open(file.path(), TTL, Footprint::default())
        .unwrap_err()
        .to_string();
    assert!(e.ends_with(": state:a.test: expected an object of backend url to state"));
}

#[tokio::test]
async fn exact_then_wildcard_then_star_with_empty_lists_skipped() {
    let file = routes_file(
        r#"{"frontend:www.example.com": ["exact", "http://127.0.0.1:8080"],
            "frontend:*.example.com": ["wild", "http://127.0.0.1:8081"],
            "frontend:empty.example.com": [],
            "frontend:*": ["star", "http://127.0.0.1:8082"],
            "dead:www.example.com": [0, "1"]}"#,
    );
    let routes = FileRoutes::open(file.path(), TTL, Footprint::default()).unwrap();
    assert_eq!(
        frontend_id(&routes, "www.example.com").await.as_deref(),
        Some("exact")
    );
    assert_eq!(
        frontend_id(&routes, "a.example.com").await.as_deref(),
        Some("wild")
    );
    assert_eq!(
        frontend_id(&routes, "empty.example.com").await.as_deref(),
        Some("wild")
    );
    assert_eq!(
        frontend_id(&routes, "other.test").await.as_deref(),
        Some("star")
    );
    let lookup = routes.lookup("www.example.com").await.unwrap().unwrap();
    assert_eq!(lookup.dead, [0, 1]);
    assert!(lookup.held.is_empty());
    assert_eq!(
        lookup.frontend.backends[0].url.as_str(),
        "http://127.0.0.1:8080/"
    );
}

#[tokio::test]
async fn mark_dead_is_local_and_merged_with_file_dead_set() {
    let file = routes_file(
        r#"{"frontend:a.test": ["a", "http://h:1", "http://h:2", "http://h:3"],
            "dead:a.test": [0]}"#,
    );
    let routes = FileRoutes::open(file.path(), TTL, Footprint::default()).unwrap();
    let lookup = routes.lookup("a.test").await.unwrap().unwrap();
    routes.mark_dead("a.test", &lookup.frontend, &lookup.frontend.backends[2]);
    assert_eq!(routes.lookup("a.test").await.unwrap().unwrap().dead, [0, 2]);
    assert!(routes.lookup("nothing.other").await.unwrap().is_none());
}

#[test]
fn bad_files_are_errors_naming_path_and_key() {
    let missing = FileRoutes::open(
        Path::new("/nonexistent/routes.json"),
        TTL,
        Footprint::default(),
    )
    .unwrap_err();
    assert!(missing
        .to_string()
        .starts_with("/nonexistent/routes.json: cannot read"));
    let file = routes_file("[1, 2]");
    let e = FileRoutes::open(file.path(), TTL, Footprint::default()).unwrap_err();
    assert!(matches!(e, FileRoutesError::Json { .. }), "{e}");
    let file = routes_file(r#"{"frontend:a.test": "http://h:1"}"#);
    let e = FileRoutes::open(file.path(), TTL, Footprint::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with(": frontend:a.test: expected a list of strings"),
        "{e}"
    );
    let file = routes_file(r#"{"dead:a.test": ["x"]}"#);
    let e = FileRoutes::open(file.path(), TTL, Footprint::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with(": dead:a.test: expected a list of indexes"),
        "{e}"
    );
    // Unknown keys only warn.
    let file = routes_file(r#"{"hchecker_ping": 1, "frontend:a.test": ["a"]}"#);
    assert!(FileRoutes::open(file.path(), TTL, Footprint::default()).is_ok());
}

/// Waits, bounded, until `host` resolves to `id`.
async fn wait_for_id(routes: &FileRoutes, host: &str, id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while frontend_id(routes, host).await.as_deref() != Some(id) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{host} never became {id}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// Under the paused clock the watcher's polls are counted, not timed: the broken file is
// seen by exactly the polls the loop below waits for, however busy the machine is.
#[tokio::test(start_paused = true)]
async fn changed_file_is_reloaded_and_broken_one_keeps_last_routes() {
    let file = routes_file(r#"{"frontend:a.test": ["first", "http://h:1"]}"#);
    let routes = FileRoutes::open(file.path(), TTL, Footprint::default()).unwrap();
    assert_eq!(
        frontend_id(&routes, "a.test").await.as_deref(),
        Some("first")
    );

    std::fs::write(
        file.path(),
        r#"{"frontend:a.test": ["second", "http://h:1"]}"#,
    )
    .unwrap();
    wait_for_id(&routes, "a.test", "second").await;

    std::fs::write(file.path(), r#"{"frontend:a.test": ["third", "#).unwrap();
    // The watcher has seen the broken file once it picks up the next good write; until
    // then every lookup must still answer with the last good routes.
    for _ in 0..10 {
        assert_eq!(
            frontend_id(&routes, "a.test").await.as_deref(),
            Some("second")
        );
        tokio::time::sleep(POLL_INTERVAL / 2).await;
    }
    std::fs::write(
        file.path(),
        r#"{"frontend:b.test": ["fourth", "http://h:1"]}"#,
    )
    .unwrap();
    wait_for_id(&routes, "b.test", "fourth").await;
    assert!(routes.lookup("a.test").await.unwrap().is_none());
}

#[test]
fn frontends_of_one_application_share_their_backend_list_and_id() {
    // 10,000 hosts of 100 applications, all on one origin: what a big routes file looks like.
    let mut routes = serde_json::Map::new();
    for n in 0..10_000 {
        let list = serde_json::json!([format!("app{}", n % 100), "http://10.0.0.1:8080"]);
        routes.insert(format!("frontend:h{n}.test"), list);
    }
    let text = Value::Object(routes).to_string();
    let table = parse(&text, Path::new("routes.json")).unwrap();
    let (a, b) = (&table.frontends["h1.test"], &table.frontends["h101.test"]);
    assert!(Arc::ptr_eq(&a.id, &b.id), "one id per application");
    let c = &table.frontends["h2.test"];
    assert!(
        Arc::ptr_eq(&a.backends, &c.backends),
        "one list per backend list"
    );
    // What the table counts per frontend: its name twice (map key and frontend key), the
    // frontend's block and its map slot; a list of its own would add some 200 bytes.
    let per_frontend = table.bytes / 10_000;
    assert!((100..=200).contains(&per_frontend), "{per_frontend} bytes");
}
