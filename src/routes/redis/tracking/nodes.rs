//! A cluster's tracking connections: one session per master of the current slot map, started
//! when a node becomes a master and let go when it no longer is one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::watch;

use super::super::cluster::slots::SlotMap;
use super::super::reconnect::{self, Health};
use super::super::sentinel::Locator;
use super::connection::TrackingSession;
use super::{Conn, State};
use crate::config::redis_url::Address;
use crate::config::RedisUrl;
use crate::routes::lock;

/// Keeps one tracking session per master of the maps `maps` publishes, until the state is gone.
pub(super) async fn follow_masters(
    url: RedisUrl,
    mut maps: watch::Receiver<Arc<SlotMap>>,
    state: Weak<Mutex<State>>,
) {
    let mut ids: HashMap<Address, u64> = HashMap::new();
    let mut next_id = 0;
    loop {
        let masters = maps.borrow_and_update().masters();
        let Some(shared) = state.upgrade() else {
            return;
        };
        update(&url, &state, &shared, masters, &mut ids, &mut next_id);
        drop(shared);
        if maps.changed().await.is_err() {
            return;
        }
    }
}

/// Starts sessions for new masters and forgets the nodes that are no longer masters.
fn update(
    url: &RedisUrl,
    state: &Weak<Mutex<State>>,
    shared: &Mutex<State>,
    masters: Vec<Address>,
    ids: &mut HashMap<Address, u64>,
    next_id: &mut u64,
) {
    let mut current = lock(shared);
    let before = ids.len();
    ids.retain(|node, id| {
        let kept = masters.contains(node);
        if !kept {
            // Its session sees it gone and ends.
            current.conns.retain(|conn| conn.id != *id);
        }
        kept
    });
    let mut changed = ids.len() != before;
    for node in masters {
        if ids.contains_key(&node) {
            continue;
        }
        *next_id += 1;
        let next_id = *next_id;
        changed = true;
        ids.insert(node.clone(), next_id);
        // Until this connection is up, tracking is off: a master we do not hear from yet.
        current.conns.push(Conn::new(next_id));
        let node_url = url.node(&node);
        let session = TrackingSession {
            locator: Locator::new(&node_url),
            url: node_url.clone(),
            state: state.clone(),
            id: next_id,
            refused_logged: false,
        };
        tokio::spawn(reconnect::keep(session, Health::new(&node_url)));
    }
    if changed {
        current.cache.make_all_stale();
        current.epoch += 1;
    }
}
