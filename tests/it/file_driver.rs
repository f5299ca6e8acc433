//! The file driver: routes read from a JSON file with the Redis layout, changes picked up live.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::support::{wait_until, Backend, Config, Hipache};

/// A routes file, rewritten atomically (write aside, then rename) so the proxy never reads half.
struct RoutesFile {
    dir: TempDir,
}

impl RoutesFile {
    fn new(routes: &Value) -> RoutesFile {
        let file = RoutesFile {
            dir: tempfile::tempdir().expect("routes temp dir"),
        };
        file.write(routes);
        file
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("routes.json")
    }

    fn write(&self, routes: &Value) {
        let aside = self.dir.path().join("routes.json.new");
        std::fs::write(&aside, routes.to_string()).expect("write routes");
        std::fs::rename(&aside, self.path()).expect("replace routes");
    }
}

#[test]
fn routes_file_frontends_are_served() {
    let backend = Backend::named("b1");
    let routes = RoutesFile::new(&json!({"frontend:file.local": ["file-app", backend.url()]}));
    let hipache = Hipache::start(Config::file(&routes.path()));

    let response = hipache.get("file.local", "/");

    assert_eq!((response.status, response.text().as_str()), (200, "b1"));
}

#[test]
fn routes_file_unknown_host_answers_400() {
    let routes = RoutesFile::new(&json!({}));
    let hipache = Hipache::start(Config::file(&routes.path()));

    hipache
        .get("nobody.local", "/")
        .assert_error_page(400, "No Application Configured");
}

#[test]
fn routes_file_dead_entries_are_skipped() {
    let (b1, b2) = (Backend::named("b1"), Backend::named("b2"));
    let routes = RoutesFile::new(&json!({
        "frontend:pair.local": ["pair", b1.url(), b2.url()],
        "dead:pair.local": [0]
    }));
    let hipache = Hipache::start(Config::file(&routes.path()));

    for _ in 0..10 {
        assert_eq!(hipache.get("pair.local", "/").text(), "b2");
    }
}

#[test]
fn routes_file_changes_are_picked_up_without_restart() {
    let (old, new) = (Backend::named("old"), Backend::named("new"));
    let routes = RoutesFile::new(&json!({"frontend:app.local": ["app", old.url()]}));
    let hipache = Hipache::start(Config::file(&routes.path()));
    assert_eq!(hipache.get("app.local", "/").text(), "old");

    routes.write(&json!({
        "frontend:app.local": ["app", new.url()],
        "frontend:added.local": ["added", new.url()]
    }));

    wait_until(
        Duration::from_secs(5),
        "app.local to move to the new backend",
        || hipache.get("app.local", "/").text() == "new",
    );
    assert_eq!(hipache.get("added.local", "/").text(), "new");
}

#[test]
fn a_replacement_keeping_length_and_mtime_is_picked_up() {
    let backend = Backend::named("b");
    let routes = RoutesFile::new(&json!({"frontend:old.local": ["app", backend.url()]}));
    let hipache = Hipache::start(Config::file(&routes.path()));
    assert_eq!(hipache.get("new.local", "/").status, 400);

    // Same length, and the old file's mtime kept (as `cp -p` or `rsync -t` would), renamed over.
    let mtime = std::fs::metadata(routes.path())
        .unwrap()
        .modified()
        .unwrap();
    let aside = routes.dir.path().join("routes.json.new");
    let text = json!({"frontend:new.local": ["app", backend.url()]}).to_string();
    std::fs::write(&aside, &text).unwrap();
    let file = std::fs::File::options().write(true).open(&aside).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    assert_eq!(
        std::fs::metadata(&aside).unwrap().len(),
        std::fs::metadata(routes.path()).unwrap().len()
    );
    std::fs::rename(&aside, routes.path()).unwrap();

    wait_until(Duration::from_secs(5), "new.local to be routed", || {
        hipache.get("new.local", "/").status == 200
    });
}
