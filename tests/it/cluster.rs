//! The `redis-cluster://` driver against a real cluster (3 masters, with a replica each where a
//! failover is needed): routes on every master are served and their changes reach the next
//! request, dead marks land on the node owning the dead set, a slot migration and a master
//! failover cost no request.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::support::{pause, wait_until, Backend, Config, Hipache, RedisCluster};

const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

fn proxy(cluster: &RedisCluster) -> Hipache {
    proxy_seeded(cluster, 0)
}

/// A proxy whose driver names only node `seed`.
fn proxy_seeded(cluster: &RedisCluster, seed: usize) -> Hipache {
    let driver = cluster.driver(seed);
    let config = Config::redis(&cluster.nodes()[0]).with(json!({ "driver": driver }));
    Hipache::start(config)
}

/// The first `<name><n>.test` whose keys `key_owner` accepts (given the owners of its
/// `frontend:` and `dead:` keys).
fn host_where(
    cluster: &RedisCluster,
    name: &str,
    accept: impl Fn(usize, usize) -> bool,
) -> (String, usize, usize) {
    (0..1_000)
        .map(|n| format!("{name}{n}.test"))
        .find_map(|host| {
            let frontend = cluster.owner_of(&format!("frontend:{host}"));
            let dead = cluster.owner_of(&format!("dead:{host}"));
            accept(frontend, dead).then_some((host, frontend, dead))
        })
        .expect("a host with keys on the wanted nodes")
}

#[test]
fn routes_on_every_master_are_served_and_a_change_on_any_master_reaches_the_next_request() {
    let cluster = RedisCluster::start(3, 0);
    let (old, new) = (Backend::named("old"), Backend::named("new"));
    let hosts: Vec<(String, usize)> = (0..3)
        .map(|master| {
            let (host, owner, _) = host_where(&cluster, "r", |frontend, _| frontend == master);
            cluster.nodes()[owner].frontend(&host, &host, &[&old.url()]);
            (host, owner)
        })
        .collect();
    let hipache = proxy(&cluster);
    for (host, owner) in &hosts {
        assert_eq!(hipache.get(host, "/").text(), "old", "{host}");
        // Tracking on every master: the answer comes from the cache once tracking is on.
        wait_until(Duration::from_secs(10), "a cached answer", || {
            let before = cluster.calls(*owner, "lrange");
            assert_eq!(hipache.get(host, "/").text(), "old", "{host}");
            cluster.calls(*owner, "lrange") == before
        });
    }
    for (host, owner) in &hosts {
        let key = format!("frontend:{host}");
        let _: String = cluster.nodes()[*owner].query(&["LSET", &key, "1", &new.url()]);
        assert_eq!(
            hipache.get(host, "/").text(),
            "new",
            "{host} on node {owner}"
        );
    }
}

#[test]
fn hosts_on_every_node_are_found_from_the_first_request_after_a_start() {
    const STARTS: usize = 20;
    let cluster = RedisCluster::start(3, 0);
    let backend = Backend::named("b");
    // Ten hosts whose `frontend:` key each master owns.
    let hosts: Vec<String> = (0..3)
        .flat_map(|master| {
            let mut found = Vec::new();
            for n in 0..1_000 {
                let host = format!("h{master}-{n}.test");
                if cluster.owner_of(&format!("frontend:{host}")) == master {
                    cluster.nodes()[master].frontend(&host, &host, &[&backend.url()]);
                    found.push(host);
                    if found.len() == 10 {
                        break;
                    }
                }
            }
            assert_eq!(found.len(), 10, "hosts on node {master}");
            found
        })
        .collect();
    for start in 0..STARTS {
        // Production shape: the master as root, its workers as nobody.
        let config = Config::redis(&cluster.nodes()[0]).with(json!({
            "driver": cluster.driver(0),
            "user": "nobody",
            "server": { "workers": 2 }
        }));
        let hipache = Hipache::start(config);
        // From the moment the proxy says it is ready, while its tracking connections come up,
        // and after: an existing host is never "not configured".
        for round in 0..3 {
            for host in &hosts {
                let response = hipache.get(host, "/");
                assert_ne!(
                    response.status, 400,
                    "start {start}, round {round}: {host} answered 400"
                );
            }
        }
    }
}

#[test]
fn dead_marks_land_on_the_node_owning_the_dead_set() {
    let cluster = RedisCluster::start(3, 0);
    let (live, refusing) = (
        Backend::named("live"),
        Backend::builder().name("refusing").refusing().start(),
    );
    // Both keys away from the seed node, on different nodes.
    let (host, frontend, dead) = host_where(&cluster, "d", |frontend, dead| {
        frontend != dead && frontend != 0 && dead != 0
    });
    cluster.nodes()[frontend].frontend(&host, "d", &[&refusing.url(), &live.url()]);
    let hipache = proxy(&cluster);
    wait_until(
        Duration::from_secs(10),
        "the refusing backend marked dead on the dead set's node",
        || {
            assert_eq!(hipache.get(&host, "/").text(), "live");
            cluster.nodes()[dead].smembers(&format!("dead:{host}")) == ["0"]
        },
    );
    assert!(cluster.nodes()[dead].ttl(&format!("dead:{host}")) > 0);
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn hchecker_ping_is_read_from_its_owning_node() {
    let cluster = RedisCluster::start(3, 0);
    let (live, refusing) = (
        Backend::named("live"),
        Backend::builder().name("refusing").refusing().start(),
    );
    let owner = cluster.owner_of("hchecker_ping");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let _: String = cluster.nodes()[owner].query(&["SET", "hchecker_ping", &now]);
    let (host, frontend, dead) = host_where(&cluster, "h", |_, _| true);
    cluster.nodes()[frontend].frontend(&host, "h", &[&refusing.url(), &live.url()]);
    let messages = cluster.nodes()[dead].subscribe("dead");
    // Seeded with another node, which would answer MOVED for the heartbeat.
    let hipache = proxy_seeded(&cluster, (owner + 1) % 3);
    // The log line is the evidence that the heartbeat was read and acted on; nothing else tells
    // that passive checks are off before the first request.
    wait_until(Duration::from_secs(10), "the heartbeat read", || {
        hipache
            .log_lines()
            .iter()
            .any(|line| line.contains("disabling passive checks (active hchecker detected)"))
    });
    wait_until(
        Duration::from_secs(10),
        "the dead backend published",
        || {
            assert_eq!(hipache.get(&host, "/").text(), "live");
            messages
                .messages()
                .iter()
                .any(|m| m.contains(&refusing.url()))
        },
    );
    let set: Vec<String> = cluster.nodes()[dead].smembers(&format!("dead:{host}"));
    assert!(set.is_empty(), "the checker owns dead sets, yet {set:?}");
}

/// Requests `host` from another thread until stopped; counts those not answered by a backend.
fn load<'a>(
    scope: &'a std::thread::Scope<'a, '_>,
    hipache: &'a Hipache,
    host: &'a str,
    stop: &'a AtomicBool,
    failed: &'a AtomicUsize,
    served: &'a AtomicUsize,
) {
    scope.spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let response = hipache.get(host, "/");
            if response.status == 200 {
                served.fetch_add(1, Ordering::SeqCst);
            } else {
                failed.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
}

#[test]
fn a_slot_migration_under_load_is_followed_without_a_failed_request() {
    let cluster = RedisCluster::start(3, 0);
    let (one, two, three) = (
        Backend::named("one"),
        Backend::named("two"),
        Backend::named("three"),
    );
    let (host, source, _) = host_where(&cluster, "m", |_, _| true);
    let target = (source + 1) % 3;
    let key = format!("frontend:{host}");
    cluster.nodes()[source].frontend(&host, "m", &[&one.url()]);
    let hipache = proxy(&cluster);
    assert_eq!(hipache.get(&host, "/").text(), "one");
    let slot: i64 = cluster.nodes()[source].query(&["CLUSTER", "KEYSLOT", &key]);
    let slot = slot.to_string();
    let (source_id, target_id) = (cluster.id(source), cluster.id(target));
    let (stop, failed, served) = (
        AtomicBool::new(false),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    std::thread::scope(|scope| {
        load(scope, &hipache, &host, &stop, &failed, &served);
        // Stops the load even when an assertion below fails, or the scope would wait forever.
        let _stop = StopOnDrop(&stop);
        let nodes = cluster.nodes();
        let _: String =
            nodes[target].query(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &source_id]);
        let _: String =
            nodes[source].query(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &target_id]);
        let port = nodes[target].port().to_string();
        let _: String =
            nodes[source].query(&["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS", &key]);
        // The key is on the target, the slot still the source's: the source answers ASK, and
        // only the target (asked with ASKING) knows the route changed.
        let _: ((), String) = ::redis::pipe()
            .cmd("ASKING")
            .cmd("LSET")
            .arg(&key)
            .arg(1)
            .arg(two.url())
            .query(&mut nodes[target].connection())
            .expect("ASKING LSET on the importing node");
        assert_eq!(
            hipache.get(&host, "/").text(),
            "two",
            "during the migration"
        );
        for node in [target, source, 3 - target - source] {
            let _: String = nodes[node].query(&["CLUSTER", "SETSLOT", &slot, "NODE", &target_id]);
        }
        // The source answers MOVED; the route is read from the target and changes there.
        assert_eq!(hipache.get(&host, "/").text(), "two", "after the migration");
        let _: String = nodes[target].query(&["LSET", &key, "1", &three.url()]);
        assert_eq!(
            hipache.get(&host, "/").text(),
            "three",
            "changed on the new owner"
        );
        wait_until(Duration::from_secs(5), "requests under load", || {
            served.load(Ordering::SeqCst) > 10
        });
        stop.store(true, Ordering::SeqCst);
    });
    assert_eq!(failed.load(Ordering::SeqCst), 0, "failed requests");
    assert_eq!(cluster.owner_of(&key), target);
}

#[test]
fn a_master_failover_costs_no_request_for_known_hosts() {
    let mut cluster = RedisCluster::start(3, 1);
    let (live, two, refusing) = (
        Backend::named("live"),
        Backend::named("two"),
        Backend::builder().name("refusing").refusing().start(),
    );
    // Route and dead set on the master that dies (not the seed node).
    let (host, master, _) = host_where(&cluster, "f", |frontend, dead| {
        frontend == dead && frontend != 0
    });
    let key = format!("frontend:{host}");
    cluster.nodes()[master].frontend(&host, "f", &[&live.url()]);
    let acked: i64 = cluster.nodes()[master].query(&["WAIT", "1", "10000"]);
    assert_eq!(acked, 1, "the route on the replica");
    let hipache = proxy(&cluster);
    assert_eq!(hipache.get(&host, "/").text(), "live");

    cluster.node_mut(master).stop();
    let mut requests = 0;
    wait_until(FAILOVER_TIMEOUT, "the replica's promotion", || {
        let response = hipache.get(&host, "/");
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "live"),
            "request {requests} during the failover"
        );
        requests += 1;
        // Paces the client through the failover; the verdict is each answer, not the time.
        pause(Duration::from_millis(20));
        cluster.owner_of(&key) != master && cluster.is_ok()
    });
    assert!(requests > 1, "no request ran while the master was down");

    let promoted = cluster.owner_of(&key);
    let node = &cluster.nodes()[promoted];
    // Written whole: under a busy machine's spurious failovers the promoted node's copy of the
    // route is Redis's business, not the proxy's.
    let _: i64 = node.query(&["DEL", &key]);
    node.frontend(&host, "f", &[&two.url()]);
    wait_until(
        Duration::from_secs(10),
        "the change on the new master",
        || hipache.get(&host, "/").text() == "two",
    );
    node.rpush(&key, &[&refusing.url()]);
    wait_until(
        Duration::from_secs(10),
        "the dead mark on the new master",
        || {
            assert_eq!(hipache.get(&host, "/").text(), "two");
            node.smembers(&format!("dead:{host}")) == ["1"]
        },
    );
}
