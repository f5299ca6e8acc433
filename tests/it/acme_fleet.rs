//! Built-in ACME across a fleet: three proxies on one Redis and one pebble. Whichever node a
//! handshake reaches, exactly one order runs per name and every node serves its certificate
//! (pebble validates on one node's ports: that node answers for the others' orders); a lock
//! left by a node that died mid-order is taken over when it expires; a certificate due for
//! renewal is renewed by exactly one node.

use std::time::Duration;

use serde_json::json;

use crate::acme::{
    acme_config, expiring_cert, issued, logged, orders, store_acme_cert, verified_names,
    RENEW_BEFORE_DAYS,
};
use crate::support::pebble::{free_port, Pebble, PebblePlan};
use crate::support::{wait_until, Config, Hipache, RedisServer};

/// Pebble validating on port `http` (where the first node will listen), and three nodes.
fn fleet(redis: &RedisServer, patch: serde_json::Value) -> (Pebble, Vec<Hipache>) {
    let plan = PebblePlan::new();
    let http = free_port();
    let pebble = plan.start(http, free_port(), &[]);
    let node = |port: u16| -> Config {
        acme_config(redis, pebble.plan(), "http-01")
            .with(json!({ "http": { "port": port } }))
            .with(patch.clone())
    };
    let nodes = vec![
        Hipache::start(node(http)),
        Hipache::start(node(0)),
        Hipache::start(node(0)),
    ];
    (pebble, nodes)
}

#[test]
fn twenty_names_asked_of_three_nodes_at_once_are_ordered_once_each_and_served_by_all() {
    let redis = RedisServer::start();
    let names: Vec<String> = (0..20).map(|n| format!("n{n}.fleet.test")).collect();
    for name in &names {
        redis.frontend(name, "fleet", &["http://127.0.0.1:1"]);
    }
    let (pebble, nodes) = fleet(&redis, json!({}));
    let root = pebble.root();

    std::thread::scope(|scope| {
        for name in &names {
            for node in &nodes {
                let (addr, root) = (node.https_addr(), &root);
                scope.spawn(move || {
                    let _ = verified_names(addr, name, root);
                });
            }
        }
    });
    for node in &nodes {
        for name in &names {
            wait_until(
                Duration::from_secs(60),
                &format!("{name} on every node"),
                || {
                    verified_names(node.https_addr(), name, &root)
                        .is_ok_and(|n| n == [name.clone()])
                },
            );
        }
    }
    assert_eq!((orders(&pebble), issued(&pebble)), (20, 20));
    let finished: usize = nodes
        .iter()
        .map(|node| logged(node, "acme order finished"))
        .sum();
    assert_eq!(finished, 20);
    let failed: usize = nodes.iter().map(|n| logged(n, "acme order failed")).sum();
    assert_eq!(failed, 0);
}

#[test]
fn a_lock_left_by_a_node_that_died_mid_order_is_taken_over_when_it_expires() {
    let redis = RedisServer::start();
    redis.frontend("taken.fleet.test", "fleet", &["http://127.0.0.1:1"]);
    let (pebble, nodes) = fleet(&redis, json!({}));
    let root = pebble.root();
    // What a node killed with SIGKILL while ordering leaves: its lock, until it expires.
    let _: String = redis.query(&[
        "SET",
        "acme:lock:taken.fleet.test",
        "a-dead-node",
        "PX",
        "3000",
    ]);

    let second = &nodes[1];
    wait_until(
        Duration::from_secs(60),
        "the certificate, ordered by a live node",
        || verified_names(second.https_addr(), "taken.fleet.test", &root).is_ok(),
    );
    assert_eq!((orders(&pebble), issued(&pebble)), (1, 1));
    let started: usize = nodes.iter().map(|n| logged(n, "acme order started")).sum();
    assert_eq!(started, 1);
    let lock: Option<String> = redis.try_query(&["GET", "acme:lock:taken.fleet.test"]);
    assert_eq!(lock, None, "released after the order");
}

#[test]
fn a_node_killed_mid_order_leaves_the_order_to_another_node() {
    let redis = RedisServer::start();
    redis.frontend("killed.fleet.test", "fleet", &["http://127.0.0.1:1"]);
    let (pebble, nodes) = fleet(&redis, json!({}));
    let root = pebble.root();
    let (victim, survivor) = (&nodes[2], &nodes[1]);

    // The ACME server stalls, so the victim's order is still running (its lock held and
    // renewed) when the victim's master and workers are killed.
    pebble.freeze();
    let asking = {
        let (addr, root) = (victim.https_addr(), root.clone());
        std::thread::spawn(move || verified_names(addr, "killed.fleet.test", &root))
    };
    wait_until(
        Duration::from_secs(10),
        "the victim's order and its lock",
        || {
            logged(victim, "acme order started") == 1
                && redis
                    .try_query::<String>(&["GET", "acme:lock:killed.fleet.test"])
                    .is_some()
        },
    );
    for pid in victim.worker_pids() {
        victim.kill_worker(pid);
    }
    victim.signal(libc::SIGKILL);
    assert!(
        asking.join().unwrap().is_err(),
        "the victim died mid-handshake"
    );
    pebble.thaw();

    wait_until(
        Duration::from_secs(60),
        "the certificate, ordered by a survivor",
        || verified_names(survivor.https_addr(), "killed.fleet.test", &root).is_ok(),
    );
    assert_eq!(issued(&pebble), 1);
    let finished: usize = nodes[..2]
        .iter()
        .map(|n| logged(n, "acme order finished"))
        .sum();
    assert_eq!(finished, 1);
}

#[test]
fn a_certificate_due_for_renewal_is_renewed_by_exactly_one_node() {
    let redis = RedisServer::start();
    redis.frontend("renew.fleet.test", "fleet", &["http://127.0.0.1:1"]);
    let old = expiring_cert("renew.fleet.test");
    store_acme_cert(&redis, "renew.fleet.test", &old);
    let (pebble, nodes) = fleet(
        &redis,
        json!({ "acme": { "renewBefore": RENEW_BEFORE_DAYS } }),
    );
    let root = pebble.root();

    for node in &nodes {
        wait_until(Duration::from_secs(60), "the renewed certificate", || {
            verified_names(node.https_addr(), "renew.fleet.test", &root).is_ok()
        });
        wait_until(Duration::from_secs(30), "each node's renewal check", || {
            logged(node, "acme renewal checked") > 0
        });
    }
    assert_eq!((orders(&pebble), issued(&pebble)), (1, 1));
    let finished: usize = nodes.iter().map(|n| logged(n, "acme order finished")).sum();
    assert_eq!(finished, 1);
    let source: String = redis.query(&["HGET", "tls:renew.fleet.test", "source"]);
    assert_eq!(source, "acme");
}
