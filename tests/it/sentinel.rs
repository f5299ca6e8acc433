//! The `redis-sentinel://` driver against real processes: a master, a replica and three
//! sentinels. The proxy asks the sentinels for the master, keeps serving known hosts while the
//! master dies and Sentinel promotes the replica, then reads routes from and writes dead marks to
//! the new master, without a restart.

use std::time::Duration;

use serde_json::json;

use crate::support::{pause, wait_until, Backend, Config, Hipache, RedisServer, Sentinel};

const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

fn sentinels_for(master: &RedisServer) -> Vec<Sentinel> {
    let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(master)).collect();
    // A failover needs the quorum to know each other and the replica to promote.
    wait_until(
        Duration::from_secs(30),
        "the sentinels to find each other and the replica",
        || sentinels.iter().all(|s| s.knows(2, 1)),
    );
    sentinels
}

fn driver(sentinels: &[Sentinel]) -> String {
    let addresses: Vec<String> = sentinels.iter().map(Sentinel::address).collect();
    format!("redis-sentinel://{}/mymaster", addresses.join(","))
}

#[test]
fn proxy_follows_a_failover_without_failing_known_hosts() {
    let mut master = RedisServer::start();
    let replica = RedisServer::start_replica_of(&master);
    let sentinels = sentinels_for(&master);
    let live = Backend::named("live");
    let refusing = Backend::builder().name("refusing").refusing().start();
    master.frontend("known.test", "known", &[&live.url()]);
    wait_until(Duration::from_secs(5), "the route on the replica", || {
        replica
            .query::<Vec<String>>(&["LRANGE", "frontend:known.test", "0", "-1"])
            .len()
            == 2
    });
    let config = Config::redis(&master).with(json!({ "driver": driver(&sentinels) }));
    let hipache = Hipache::start(config);
    assert_eq!(hipache.get("known.test", "/").text(), "live");

    master.stop();
    let mut requests = 0;
    wait_until(FAILOVER_TIMEOUT, "sentinel to promote the replica", || {
        let response = hipache.get("known.test", "/");
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "live"),
            "request {requests} during the failover"
        );
        requests += 1;
        // Paces the client through the failover; the verdict is each answer, not the time.
        pause(Duration::from_millis(20));
        sentinels[0].master_port() == Some(replica.port())
    });
    assert!(requests > 1, "no request ran while the master was down");

    // The promoted replica takes writes; the proxy reads from it.
    replica.frontend("new.test", "new", &[&live.url()]);
    wait_until(
        Duration::from_secs(10),
        "new.test from the new master",
        || hipache.get("new.test", "/").text() == "live",
    );
    assert_eq!(hipache.get("known.test", "/").text(), "live");

    // Dead marks land on the new master.
    replica.frontend("mark.test", "mark", &[&refusing.url(), &live.url()]);
    wait_until(
        Duration::from_secs(10),
        "mark.test marked dead on the new master",
        || {
            assert_eq!(hipache.get("mark.test", "/").text(), "live");
            replica.smembers("dead:mark.test") == ["0"]
        },
    );
}

#[test]
fn proxy_follows_a_manual_failover_while_the_old_master_still_runs() {
    let master = RedisServer::start();
    let replica = RedisServer::start_replica_of(&master);
    let sentinels = sentinels_for(&master);
    let (one, two) = (Backend::named("one"), Backend::named("two"));
    master.frontend("moved.test", "moved", &[&one.url()]);
    wait_until(Duration::from_secs(5), "the route on the replica", || {
        replica
            .query::<Vec<String>>(&["LRANGE", "frontend:moved.test", "0", "-1"])
            .len()
            == 2
    });
    let config = Config::redis(&master).with(json!({ "driver": driver(&sentinels) }));
    let hipache = Hipache::start(config);
    assert_eq!(hipache.get("moved.test", "/").text(), "one");

    let _: String = ::redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg("mymaster")
        .query(
            &mut ::redis::Client::open(format!("redis://{}", sentinels[0].address()))
                .and_then(|c| c.get_connection())
                .expect("sentinel connection"),
        )
        .expect("SENTINEL FAILOVER");
    wait_until(FAILOVER_TIMEOUT, "sentinel to promote the replica", || {
        assert_eq!(hipache.get("moved.test", "/").status, 200);
        sentinels[0].master_port() == Some(replica.port())
    });
    // The proxy heard of the switch from Sentinel itself (`+switch-master`), which would move it
    // off an old master that Sentinel cannot reach to disconnect its clients. The log line is
    // the only witness of which path moved it.
    wait_until(
        Duration::from_secs(10),
        "the switch in the proxy's log",
        || {
            hipache
                .log_lines()
                .iter()
                .any(|l| l.contains("sentinel switched the redis master"))
        },
    );
    wait_until(
        FAILOVER_TIMEOUT,
        "the old master to take writes no more",
        || {
            let role: Option<Vec<::redis::Value>> = master.try_query(&["ROLE"]);
            matches!(role.as_deref(), Some([::redis::Value::BulkString(r), ..]) if r == b"slave")
        },
    );
    let _: String = replica.query(&["LSET", "frontend:moved.test", "1", &two.url()]);
    wait_until(
        Duration::from_secs(10),
        "the change on the new master",
        || hipache.get("moved.test", "/").text() == "two",
    );
    // The old master, now a replica, refuses writes: dead marks land only if the proxy left it.
    let refusing = Backend::builder().name("refusing").refusing().start();
    replica.frontend("mark.test", "mark", &[&refusing.url(), &one.url()]);
    wait_until(
        Duration::from_secs(10),
        "mark.test marked dead on the new master",
        || {
            assert_eq!(hipache.get("mark.test", "/").text(), "one");
            replica.smembers("dead:mark.test") == ["0"]
        },
    );
}
