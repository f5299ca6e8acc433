//! `driver`: Redis URLs, read/write pairs and the file route source.

use super::*;

#[test]
fn file_driver_resolves_relative_to_config_folder() {
    let c = parse(r#"{"driver": "file:routes_demo.json"}"#).config;
    assert_eq!(
        c.driver,
        Driver::File(PathBuf::from("config/routes_demo.json"))
    );
    let c = parse(r#"{"driver": ["file:///etc/hipache/routes.json"]}"#).config;
    assert_eq!(
        c.driver,
        Driver::File(PathBuf::from("/etc/hipache/routes.json"))
    );
    let c = Config::parse(r#"{"driver": "file:r.json"}"#, Path::new("hipache.json"))
        .unwrap()
        .config;
    assert_eq!(c.driver, Driver::File(PathBuf::from("r.json")));
}

#[test]
fn driver_arrays_and_unsupported_drivers() {
    let c = parse(r#"{"driver": ["redis://slave:1", "redis://master:2"]}"#).config;
    let Driver::Redis { read, write } = c.driver else {
        panic!()
    };
    assert_eq!(
        (read.host.as_str(), write.host.as_str()),
        ("slave", "master")
    );
    assert!(error(r#"{"driver": []}"#).contains("driver: expected 1 or 2 URLs, got 0"));
    assert!(error(r#"{"driver": ["redis:", "redis:", "redis:"]}"#).contains("got 3"));
    let e = error(r#"{"driver": "etcd://127.0.0.1:4001"}"#);
    assert!(
        e.starts_with("config/config.json: driver: unsupported driver") && e.contains("redis://"),
        "{e}"
    );
    assert!(error(r#"{"driver": "redis://h:notaport"}"#).contains("driver: "));
}

#[test]
fn cluster_driver_stands_alone_or_is_refused() {
    let one = r#"{"driver": "redis-cluster://127.0.0.1:7000,127.0.0.1:7001#p:"}"#;
    let Driver::Redis { read, write } = parse(one).config.driver else {
        panic!()
    };
    assert_eq!(read, write);
    assert_eq!(read.cluster.map(|seeds| seeds.nodes.len()), Some(2));
    let same = r#"{"driver": ["redis-cluster://n:1", "redis-cluster://n:1"]}"#;
    assert!(matches!(parse(same).config.driver, Driver::Redis { .. }));
    for mixed in [
        r#"{"driver": ["redis-cluster://n:1", "redis://n:2"]}"#,
        r#"{"driver": ["redis://n:2", "redis-cluster://n:1"]}"#,
        r#"{"driver": ["redis-cluster://n:1", "redis-cluster://m:1"]}"#,
    ] {
        let e = error(mixed);
        assert!(
            e.starts_with("config/config.json: driver: a redis-cluster driver cannot be split"),
            "{e}"
        );
    }
    let e = error(r#"{"driver": "redis-cluster://n:1/2"}"#);
    assert!(
        e.contains("driver: ") && e.contains("a cluster has no database"),
        "{e}"
    );
}
