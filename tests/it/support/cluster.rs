//! A real Redis Cluster per test: nodes from [`RedisServer::start_cluster_node`] (free loopback
//! ports, own temp dirs, killed in `Drop`), joined by `redis-cli --cluster create`.

use std::process::Command;
use std::time::Duration;

use super::redis::RedisServer;
use super::wait::{wait_for, wait_until};

const REDIS_CLI: &str = "/usr/bin/redis-cli";
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct RedisCluster {
    /// The first `masters` nodes were created masters; the rest replicas.
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// `masters` masters sharing the 16384 slots, each with `replicas` replicas, once every node
    /// says the cluster is ok (and every replica is in sync). With replicas a master silent for
    /// 1 s is replaced.
    pub(crate) fn start(masters: usize, replicas: usize) -> RedisCluster {
        assert!(
            std::path::Path::new(REDIS_CLI).exists(),
            "{REDIS_CLI} is missing; install it with: apt-get install -y redis-tools"
        );
        // With replicas, a dead master is replaced within seconds. Without, nothing can replace
        // one, and a node slowed down by a busy machine must not be taken for dead (a longer
        // timeout also delays the cluster's first `ok` by as much, up to 5 s).
        let node_timeout_ms = if replicas > 0 { 1_000 } else { 2_000 };
        let nodes: Vec<RedisServer> = (0..masters * (1 + replicas))
            .map(|_| RedisServer::start_cluster_node(node_timeout_ms))
            .collect();
        let output = Command::new(REDIS_CLI)
            .args(["--cluster", "create"])
            .args(nodes.iter().map(RedisServer::address))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("running redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = RedisCluster { nodes };
        wait_until(JOIN_TIMEOUT, "every node to see the cluster ok", || {
            cluster.nodes.iter().all(|node| {
                let info: Option<String> = node.try_query(&["CLUSTER", "INFO"]);
                info.is_some_and(|info| {
                    info.contains("cluster_state:ok")
                        && info.contains(&format!("cluster_known_nodes:{}", cluster.nodes.len()))
                })
            })
        });
        wait_until(JOIN_TIMEOUT, "every replica in sync", || {
            cluster.nodes[masters..].iter().all(|node| {
                let info: Option<String> = node.try_query(&["INFO", "replication"]);
                info.is_some_and(|info| info.contains("master_link_status:up"))
            })
        });
        cluster
    }

    /// The proxy's `driver`: node `seed` only; the rest is for the proxy to discover.
    pub(crate) fn driver(&self, seed: usize) -> String {
        format!("redis-cluster://{}", self.nodes[seed].address())
    }

    pub(crate) fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    pub(crate) fn node_mut(&mut self, index: usize) -> &mut RedisServer {
        &mut self.nodes[index]
    }

    /// The index of the node serving `key` now, as a live node's `CLUSTER SLOTS` says.
    pub(crate) fn owner_of(&self, key: &str) -> usize {
        wait_for(JOIN_TIMEOUT, &format!("an owner for {key}"), || {
            self.nodes.iter().find_map(|node| {
                let slot: i64 = node.try_query(&["CLUSTER", "KEYSLOT", key])?;
                let ranges: Vec<::redis::Value> = node.try_query(&["CLUSTER", "SLOTS"])?;
                let port = ranges.iter().find_map(|range| slot_owner(range, slot))?;
                self.nodes.iter().position(|n| i64::from(n.port()) == port)
            })
        })
    }

    /// The node's cluster id.
    pub(crate) fn id(&self, index: usize) -> String {
        self.nodes[index].query(&["CLUSTER", "MYID"])
    }

    /// Whether every live node sees the cluster ok.
    pub(crate) fn is_ok(&self) -> bool {
        self.nodes.iter().all(|node| {
            let info: Option<String> = node.try_query(&["CLUSTER", "INFO"]);
            info.is_none_or(|info| info.contains("cluster_state:ok"))
        })
    }

    /// Calls of `command` a node has run so far (from `INFO commandstats`).
    pub(crate) fn calls(&self, index: usize, command: &str) -> u64 {
        let info: String = self.nodes[index].query(&["INFO", "commandstats"]);
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    }
}

/// The port of the master of `range` (one `CLUSTER SLOTS` entry) if it serves `slot`.
fn slot_owner(range: &::redis::Value, slot: i64) -> Option<i64> {
    use ::redis::Value;
    let Value::Array(fields) = range else {
        return None;
    };
    let [Value::Int(first), Value::Int(last), Value::Array(master), ..] = fields.as_slice() else {
        return None;
    };
    let [_, Value::Int(port), ..] = master.as_slice() else {
        return None;
    };
    (*first..=*last).contains(&slot).then_some(*port)
}
