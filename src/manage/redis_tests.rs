use super::*;

#[test]
fn an_edit_raced_by_a_dead_mark_is_planned_again_on_fresh_data() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(crate::routes::redis::tests::RedisServer::start(&[]));
    let url = server.url("");
    let mut proxy = connect(&url).unwrap();
    redis::cmd("RPUSH")
        .arg("frontend:h")
        .arg(&["id", "http://a:1", "http://b:2", "http://c:3"])
        .exec(&mut proxy)
        .unwrap();
    let store = RedisStore::new(&url, &url);
    let edit = Edit::RemoveBackend {
        url: "http://a:1".into(),
    };
    let mut plans = 0;

    store
        .apply_planned("h", |current| {
            plans += 1;
            if plans == 1 {
                // A proxy marks c (index 2) dead after our read, before our EXEC.
                redis::cmd("SADD")
                    .arg("dead:h")
                    .arg(2)
                    .exec(&mut proxy)
                    .unwrap();
            }
            plan("h", &edit, current)
        })
        .unwrap();

    assert_eq!(plans, 2);
    let routes = store.read("h").unwrap();
    assert_eq!(routes.list, ["id", "http://b:2", "http://c:3"]);
    // The mark was not lost, and it moved with c to index 1.
    assert_eq!(routes.dead, [1]);
}

#[test]
fn password_database_and_prefix_of_the_driver_url_are_used() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(crate::routes::redis::tests::RedisServer::start(&[
        "--requirepass",
        "secret",
    ]));
    let url = RedisUrl {
        database: 3,
        prefix: "p[1]:".into(),
        ..server.url(":secret@")
    };
    let store = RedisStore::new(&url, &url);
    let edit = Edit::AddFrontend {
        id: "id".into(),
        urls: vec!["http://a:1".into()],
        replace: false,
    };

    store.apply("h", &edit).unwrap();

    let mut conn = connect(&url).unwrap();
    let list: Vec<String> = redis::cmd("LRANGE")
        .arg("p[1]:frontend:h")
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap();
    assert_eq!(list, ["id", "http://a:1"]);
    let database_0 = RedisUrl {
        database: 0,
        ..url.clone()
    };
    let in_0: i64 = redis::cmd("DBSIZE")
        .query(&mut connect(&database_0).unwrap())
        .unwrap();
    assert_eq!(in_0, 0);
    let listed = store.frontends().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].host.as_str(), listed[0].backends), ("h", 1));
    let without_password = RedisUrl {
        password: None,
        ..url
    };
    let error = RedisStore::new(&without_password, &without_password)
        .frontends()
        .unwrap_err();
    assert!(matches!(error, ManageError::Redis { .. }), "{error}");
}

#[test]
fn prefix_glob_characters_are_literal_in_scan_patterns() {
    assert_eq!(glob_escape("app*[1]:frontend:"), r"app\*\[1\]:frontend:");
    assert_eq!(glob_escape("frontend:"), "frontend:");
}

#[test]
fn removing_a_backend_rewrites_list_and_dead_set_keeping_its_ttl() {
    let change = Change::Put {
        list: vec!["id".into(), "http://b:2".into()],
        dead: Some(vec![0]),
        states: None,
    };
    let pipe = transaction(&keys("h"), &change, Some(Duration::from_millis(1500)));
    let packed = String::from_utf8(pipe.get_packed_pipeline()).unwrap();
    let words: Vec<&str> = packed
        .split("\r\n")
        .filter(|w| !w.starts_with(['*', '$']) && !w.is_empty())
        .collect();
    assert_eq!(
        words,
        [
            "MULTI",
            "DEL",
            "frontend:h",
            "RPUSH",
            "frontend:h",
            "id",
            "http://b:2",
            "DEL",
            "dead:h",
            "SADD",
            "dead:h",
            "0",
            "PEXPIRE",
            "dead:h",
            "1500",
            "EXEC"
        ]
    );
    let appended = Change::Put {
        list: vec!["id".into()],
        dead: None,
        states: None,
    };
    let packed =
        String::from_utf8(transaction(&keys("h"), &appended, None).get_packed_pipeline()).unwrap();
    assert!(!packed.contains("dead") && !packed.contains("SADD") && !packed.contains("state"));
}
fn keys(host: &str) -> Keys {
    Keys {
        frontend: format!("frontend:{host}"),
        dead: format!("dead:{host}"),
        state: format!("state:{host}"),
    }
}

#[test]
fn a_state_change_writes_only_the_state_hash() {
    let change = Change::States(vec![("http://b:2/".into(), "drain".into())]);
    let packed =
        String::from_utf8(transaction(&keys("h"), &change, None).get_packed_pipeline()).unwrap();
    let words: Vec<&str> = packed
        .split("\r\n")
        .filter(|w| !w.starts_with(['*', '$']) && !w.is_empty())
        .collect();
    assert_eq!(
        words,
        [
            "MULTI",
            "DEL",
            "state:h",
            "HSET",
            "state:h",
            "http://b:2/",
            "drain",
            "EXEC"
        ]
    );
    let cleared = transaction(&keys("h"), &Change::States(Vec::new()), None);
    let packed = String::from_utf8(cleared.get_packed_pipeline()).unwrap();
    assert!(
        packed.contains("DEL") && !packed.contains("HSET"),
        "{packed}"
    );
}
