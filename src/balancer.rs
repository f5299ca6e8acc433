//! Choosing a backend: a random one among those neither dead nor already tried (pure).
//!
//! Hipache picks uniformly at random among live backends and may pick a failed one again; we leave
//! out the backends this request already tried, so a retry always goes somewhere new. Backends an
//! operator took out of rotation ([`Held`]) are left out as HAProxy does: a disabled one always,
//! a draining one unless it is the sticky client's own.

use rand::Rng;

use crate::routes::{Backend, Held};

/// A uniformly random backend of `backends` whose index is in neither `dead` nor `tried`.
pub(crate) fn pick<'a>(
    backends: &'a [Backend],
    dead: &[usize],
    tried: &[usize],
    rng: &mut impl Rng,
) -> Option<&'a Backend> {
    let is_live = |b: &&Backend| is_candidate(b, dead, tried);
    let live = backends.iter().filter(is_live).count();
    if live == 0 {
        return None;
    }
    backends
        .iter()
        .filter(is_live)
        .nth(rng.random_range(0..live))
}

/// The backends one request tries, each at most once, within `retryOnError` retries.
pub(crate) struct Attempts<'a> {
    backends: &'a [Backend],
    dead: &'a [usize],
    tried: Vec<usize>,
    retry_on_error: u32,
    /// A backend to try first while it is live (sticky sessions).
    preferred: Option<usize>,
    held: Option<&'a Held>,
}

impl<'a> Attempts<'a> {
    pub(crate) fn new(backends: &'a [Backend], dead: &'a [usize], retry_on_error: u32) -> Self {
        Self {
            backends,
            dead,
            tried: Vec::new(),
            retry_on_error,
            preferred: None,
            held: None,
        }
    }

    /// Leaves out the backends `held` disables, and those it drains unless preferred.
    pub(crate) fn holding(mut self, held: &'a Held) -> Self {
        self.held = Some(held);
        self
    }

    /// Makes the first attempt go to the backend at `index` if it is listed, not dead and not
    /// disabled (a draining one still takes its sticky clients); the later ones are picked as
    /// usual.
    pub(crate) fn preferring(mut self, index: Option<usize>) -> Self {
        self.preferred = index;
        self
    }

    /// The backend for the next attempt, if any is left.
    pub(crate) fn next(&mut self, rng: &mut impl Rng) -> Option<&'a Backend> {
        let no_one = Held::default();
        let held = self.held.unwrap_or(&no_one);
        let preferred = self.preferred.take().and_then(|index| {
            self.backends.iter().find(|b| {
                b.index == index
                    && !held.disabled.contains(&index)
                    && is_candidate(b, self.dead, &self.tried)
            })
        });
        let backend = match preferred {
            Some(backend) => backend,
            None if held.is_empty() => pick(self.backends, self.dead, &self.tried, rng)?,
            None => {
                let out: Vec<usize> = (self.dead.iter())
                    .chain(&held.draining)
                    .chain(&held.disabled)
                    .copied()
                    .collect();
                pick(self.backends, &out, &self.tried, rng)?
            }
        };
        self.tried.push(backend.index);
        Some(backend)
    }

    /// Whether a failure that is `retryable` may be followed by another attempt.
    pub(crate) fn may_retry(&self, retryable: bool) -> bool {
        retryable && self.retries() < self.retry_on_error
    }

    fn retries(&self) -> u32 {
        (self.tried.len() as u32).saturating_sub(1)
    }
}

fn is_candidate(backend: &Backend, dead: &[usize], tried: &[usize]) -> bool {
    !dead.contains(&backend.index) && !tried.contains(&backend.index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::BackendUrl;
    use rand::SeedableRng;

    fn backends(n: usize) -> Vec<Backend> {
        (0..n)
            .map(|index| Backend {
                index,
                url: BackendUrl::parse(&format!("http://b{index}:80")).unwrap(),
            })
            .collect()
    }

    #[test]
    fn dead_and_tried_backends_are_never_picked() {
        let all = backends(4);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let picked = pick(&all, &[1], &[3], &mut rng).unwrap();
            assert!(picked.index == 0 || picked.index == 2);
        }
        assert!(pick(&all, &[0, 1], &[2, 3], &mut rng).is_none());
        assert!(pick(&[], &[], &[], &mut rng).is_none());
    }

    #[test]
    fn every_live_backend_gets_picked() {
        let all = backends(3);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut seen = [0; 3];
        for _ in 0..300 {
            seen[pick(&all, &[], &[], &mut rng).unwrap().index] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }

    #[test]
    fn attempts_try_each_live_backend_once_within_the_retry_budget() {
        let all = backends(4);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        // Two retries allowed: three attempts, on three different live backends.
        let mut attempts = Attempts::new(&all, &[2], 2);
        let mut tried = Vec::new();
        // Bounded: a budget that is never spent must fail the test, not hang it.
        for _ in 0..10 {
            let Some(backend) = attempts.next(&mut rng) else {
                break;
            };
            tried.push(backend.index);
            if !attempts.may_retry(true) {
                break;
            }
        }
        assert_eq!(tried.len(), 3, "{tried:?}");
        assert!(!tried.contains(&2), "a dead backend was tried: {tried:?}");
        tried.sort_unstable();
        tried.dedup();
        assert_eq!(tried.len(), 3, "a backend was tried twice");
    }

    #[test]
    fn a_preferred_live_backend_goes_first_and_a_dead_one_is_passed_over() {
        let all = backends(3);
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for _ in 0..50 {
            let mut attempts = Attempts::new(&all, &[], 2).preferring(Some(2));
            assert_eq!(attempts.next(&mut rng).unwrap().index, 2);
            assert_ne!(attempts.next(&mut rng).unwrap().index, 2);
            let mut attempts = Attempts::new(&all, &[2], 2).preferring(Some(2));
            assert_ne!(attempts.next(&mut rng).unwrap().index, 2);
        }
        // Not listed: an ordinary pick.
        let mut attempts = Attempts::new(&all, &[], 0).preferring(Some(7));
        assert!(attempts.next(&mut rng).is_some());
    }

    #[test]
    fn a_disabled_backend_is_never_picked_even_for_its_sticky_client() {
        let all = backends(3);
        let held = Held {
            draining: Vec::new(),
            disabled: vec![1],
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..100 {
            let mut attempts = Attempts::new(&all, &[], 5)
                .holding(&held)
                .preferring(Some(1));
            let mut tried = Vec::new();
            while let Some(backend) = attempts.next(&mut rng) {
                tried.push(backend.index);
            }
            assert!(!tried.contains(&1), "{tried:?}");
            assert_eq!(tried.len(), 2);
        }
    }

    #[test]
    fn a_draining_backend_takes_only_its_sticky_clients() {
        let all = backends(3);
        let held = Held {
            draining: vec![2],
            disabled: Vec::new(),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        for _ in 0..100 {
            // A new client, or one sticky to another backend: never sent to the draining one,
            // not even on a retry.
            for preferred in [None, Some(0)] {
                let mut attempts = Attempts::new(&all, &[], 5)
                    .holding(&held)
                    .preferring(preferred);
                while let Some(backend) = attempts.next(&mut rng) {
                    assert_ne!(backend.index, 2);
                }
            }
            // Its own sticky client keeps it, unless it is dead.
            let mut attempts = Attempts::new(&all, &[], 5)
                .holding(&held)
                .preferring(Some(2));
            assert_eq!(attempts.next(&mut rng).unwrap().index, 2);
            assert_ne!(attempts.next(&mut rng).unwrap().index, 2);
            let mut attempts = Attempts::new(&all, &[2], 5)
                .holding(&held)
                .preferring(Some(2));
            assert_ne!(attempts.next(&mut rng).unwrap().index, 2);
        }
    }

    #[test]
    fn every_backend_held_or_dead_leaves_nothing_to_try() {
        let all = backends(3);
        let held = Held {
            draining: vec![0],
            disabled: vec![1],
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        assert!(Attempts::new(&all, &[2], 3)
            .holding(&held)
            .next(&mut rng)
            .is_none());
    }

    #[test]
    fn attempts_stop_when_the_failure_forbids_a_retry_or_no_backend_is_left() {
        let all = backends(3);
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut attempts = Attempts::new(&all, &[], 5);
        assert!(attempts.next(&mut rng).is_some());
        // A body already sent cannot go elsewhere, whatever the budget.
        assert!(!attempts.may_retry(false));
        assert!(attempts.may_retry(true));
        assert!(attempts.next(&mut rng).is_some());
        assert!(attempts.next(&mut rng).is_some());
        // Budget left, but every backend was tried.
        assert!(attempts.may_retry(true));
        assert!(attempts.next(&mut rng).is_none());
        // No retry at all: one attempt, then none.
        let mut once = Attempts::new(&all, &[], 0);
        assert!(once.next(&mut rng).is_some());
        assert!(!once.may_retry(true));
        // Everything dead: nothing to try.
        assert!(Attempts::new(&all, &[0, 1, 2], 3).next(&mut rng).is_none());
    }
}
