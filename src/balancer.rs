//! Choosing a backend: a random one among those neither dead nor already tried (pure).
//!
//! Hipache picks uniformly at random among live backends and may pick a failed one again; we leave
//! out the backends this request already tried, so a retry always goes somewhere new.

use rand::Rng;

use crate::routes::Backend;

/// A uniformly random backend of `backends` whose index is in neither `dead` nor `tried`.
pub fn pick<'a>(
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

/// Whether any backend is left to pick.
pub fn any_left(backends: &[Backend], dead: &[usize], tried: &[usize]) -> bool {
    backends.iter().any(|b| is_candidate(b, dead, tried))
}

/// The backends one request tries, each at most once, within `retryOnError` retries.
pub struct Attempts<'a> {
    backends: &'a [Backend],
    dead: &'a [usize],
    tried: Vec<usize>,
    retry_on_error: u32,
}

impl<'a> Attempts<'a> {
    pub fn new(backends: &'a [Backend], dead: &'a [usize], retry_on_error: u32) -> Self {
        Self {
            backends,
            dead,
            tried: Vec::new(),
            retry_on_error,
        }
    }

    /// The backend for the next attempt, if any is left.
    pub fn next(&mut self, rng: &mut impl Rng) -> Option<&'a Backend> {
        let backend = pick(self.backends, self.dead, &self.tried, rng)?;
        self.tried.push(backend.index);
        Some(backend)
    }

    /// Whether the attempt just picked is the last one this request may make.
    pub fn is_last(&self) -> bool {
        self.retries() >= self.retry_on_error || !any_left(self.backends, self.dead, &self.tried)
    }

    /// Whether a failure that is `retryable` may be followed by another attempt.
    pub fn may_retry(&self, retryable: bool) -> bool {
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
        assert!(!any_left(&all, &[0, 1], &[2, 3]));
        assert!(any_left(&all, &[0, 1], &[2]));
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
}
