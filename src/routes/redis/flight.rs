//! Single-flight for cold misses: one Redis lookup in flight per host per worker; requests for
//! the same host that miss meanwhile wait for its outcome instead of sending their own.
//!
//! A request may only join a lookup sent under the same tracking [`Ticket`]: one sent before an
//! invalidation the request has already seen could answer with the state before the change, which
//! the request must not get (see [`super::tracking`] on freshness). If the leading request is
//! dropped before its answer (its client went away), the waiting ones are told so and look up
//! again themselves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::tracking::Ticket;
use crate::routes::lock;

/// The lookups in flight, by host.
pub(crate) struct Flights<T> {
    inflight: Arc<Mutex<Inflight<T>>>,
}

struct Inflight<T> {
    by_host: HashMap<Box<str>, Flight<T>>,
    next_id: u64,
}

struct Flight<T> {
    ticket: Ticket,
    id: u64,
    outcome: watch::Receiver<Option<T>>,
}

/// What a request does on a miss.
pub(crate) enum Join<T> {
    /// Look up, then [`Leader::finish`] with the outcome.
    Lead(Leader<T>),
    /// Wait for the leader's outcome with [`Follower::outcome`].
    Follow(Follower<T>),
}

pub(crate) struct Leader<T> {
    inflight: Arc<Mutex<Inflight<T>>>,
    host: Box<str>,
    id: u64,
    outcome: watch::Sender<Option<T>>,
}

pub(crate) struct Follower<T> {
    outcome: watch::Receiver<Option<T>>,
}

impl<T: Clone> Flights<T> {
    pub(crate) fn new() -> Self {
        Self {
            inflight: Arc::new(Mutex::new(Inflight {
                by_host: HashMap::new(),
                next_id: 0,
            })),
        }
    }

    /// Joins the lookup of `host` in flight under `ticket`, or starts one.
    pub(crate) fn join(&self, host: &str, ticket: Ticket) -> Join<T> {
        let mut inflight = lock(&self.inflight);
        if let Some(flight) = inflight.by_host.get(host) {
            if flight.ticket == ticket {
                return Join::Follow(Follower {
                    outcome: flight.outcome.clone(),
                });
            }
        }
        inflight.next_id += 1;
        let id = inflight.next_id;
        let (sender, receiver) = watch::channel(None);
        // A flight under an older ticket is replaced; its own leader still finishes it for the
        // requests that joined it.
        inflight.by_host.insert(
            host.into(),
            Flight {
                ticket,
                id,
                outcome: receiver,
            },
        );
        Join::Lead(Leader {
            inflight: self.inflight.clone(),
            host: host.into(),
            id,
            outcome: sender,
        })
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.inflight).by_host.len()
    }
}

impl<T> Leader<T> {
    /// Hands `outcome` to every request that joined.
    pub(crate) fn finish(self, outcome: T) {
        self.outcome.send_replace(Some(outcome));
    }
}

impl<T> Drop for Leader<T> {
    fn drop(&mut self) {
        let mut inflight = lock(&self.inflight);
        if inflight
            .by_host
            .get(&self.host)
            .is_some_and(|flight| flight.id == self.id)
        {
            inflight.by_host.remove(&self.host);
        }
    }
}

impl<T: Clone> Follower<T> {
    /// The leader's outcome; `None` when the leader was dropped without one (look up again).
    pub(crate) async fn outcome(mut self) -> Option<T> {
        let outcome = self.outcome.wait_for(Option::is_some).await.ok()?;
        outcome.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(join: Join<u32>) -> Leader<u32> {
        match join {
            Join::Lead(leader) => leader,
            Join::Follow(_) => panic!("expected to lead"),
        }
    }

    fn follow(join: Join<u32>) -> Follower<u32> {
        match join {
            Join::Follow(follower) => follower,
            Join::Lead(_) => panic!("expected to follow"),
        }
    }

    #[tokio::test]
    async fn misses_for_one_host_under_one_ticket_share_one_lookup() {
        let flights = Flights::new();
        let leader = lead(flights.join("a.test", Ticket::at(1)));
        let first = follow(flights.join("a.test", Ticket::at(1)));
        let second = follow(flights.join("a.test", Ticket::at(1)));
        let other = lead(flights.join("b.test", Ticket::at(1)));
        let waiting = tokio::spawn(async move { (first.outcome().await, second.outcome().await) });
        tokio::task::yield_now().await;
        leader.finish(7);
        assert_eq!(waiting.await.unwrap(), (Some(7), Some(7)));
        assert_eq!(flights.len(), 1, "a.test's flight is over, b.test's is not");
        drop(other);
        assert_eq!(flights.len(), 0);
        lead(flights.join("a.test", Ticket::at(1)));
    }

    #[tokio::test]
    async fn a_lookup_sent_before_an_invalidation_is_not_joined() {
        let flights = Flights::new();
        let old = lead(flights.join("a.test", Ticket::at(1)));
        let before = follow(flights.join("a.test", Ticket::at(1)));
        let new = lead(flights.join("a.test", Ticket::at(2)));
        let after = follow(flights.join("a.test", Ticket::at(2)));
        old.finish(1);
        assert_eq!(before.outcome().await, Some(1));
        assert_eq!(
            flights.len(),
            1,
            "the old leader does not end the new flight"
        );
        new.finish(2);
        assert_eq!(after.outcome().await, Some(2));
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn followers_of_a_dropped_leader_look_up_again() {
        let flights: Flights<u32> = Flights::new();
        let leader = lead(flights.join("a.test", Ticket::at(1)));
        let follower = follow(flights.join("a.test", Ticket::at(1)));
        drop(leader);
        assert_eq!(follower.outcome().await, None);
        lead(flights.join("a.test", Ticket::at(1)));
    }
}
