//! Many proxies on one Redis, as Hipache was deployed: every node serves a route change on its
//! next request, and a backend one node marks dead is skipped by the others (each would pick it
//! half the time on its own).

use crate::support::{Backend, Config, Hipache, RedisServer};

fn fleet(redis: &RedisServer) -> Vec<Hipache> {
    let nodes: Vec<Hipache> = (0..3)
        .map(|_| Hipache::start(Config::redis(redis)))
        .collect();
    for node in &nodes {
        node.wait_for_tracking(redis);
    }
    nodes
}

#[test]
fn a_route_change_is_served_by_every_proxy_on_its_next_request() {
    let redis = RedisServer::start();
    let old = Backend::named("old");
    let new = Backend::named("new");
    redis.frontend("fleet.local", "fleet", &[&old.url()]);
    let nodes = fleet(&redis);
    // Each node has the old route in its cache, and "no frontend" for the host added later.
    for node in &nodes {
        assert_eq!(node.get("fleet.local", "/").text(), "old");
        assert_eq!(node.get("later.local", "/").status, 400);
    }

    let _: () = redis.query(&["LSET", "frontend:fleet.local", "1", &new.url()]);
    redis.frontend("later.local", "later", &[&new.url()]);

    for (number, node) in nodes.iter().enumerate() {
        assert_eq!(node.get("fleet.local", "/").text(), "new", "proxy {number}");
        let later = node.get("later.local", "/");
        assert_eq!(
            (later.status, later.text().as_str()),
            (200, "new"),
            "proxy {number}"
        );
    }
}

#[test]
fn a_backend_marked_dead_by_one_proxy_is_skipped_by_the_others() {
    let redis = RedisServer::start();
    // A 503 without Retry-After marks its backend dead and reaches the client as it is: a node
    // that still picked it would answer 503.
    let broken = Backend::builder().name("broken").status(503).start();
    let live = Backend::named("live");
    redis.frontend("shared.local", "shared", &[&broken.url(), &live.url()]);
    let nodes = fleet(&redis);

    let mut marked = false;
    for _ in 0..50 {
        nodes[0].get("shared.local", "/");
        if redis.smembers("dead:shared.local") == ["0"] {
            marked = true;
            break;
        }
    }
    assert!(
        marked,
        "proxy 0 never marked the broken backend in 50 requests"
    );

    for (number, node) in nodes.iter().enumerate().skip(1) {
        for _ in 0..20 {
            let response = node.get("shared.local", "/");
            assert_eq!(
                (response.status, response.text().as_str()),
                (200, "live"),
                "proxy {number} sent a request to the backend proxy 0 marked dead"
            );
        }
    }
}
