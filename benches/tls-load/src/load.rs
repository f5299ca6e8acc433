//! The connection loops: CLIENTS of them spread over THREADS threads, each thread its own
//! current-thread runtime (no work stealing, no cross-thread wake-ups), all counting in the same
//! window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::timeout_at;

use crate::conn::{Outcome, Target};

/// A connection still going after this is counted as failed.
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// What connection loops counted in the measured seconds.
#[derive(Default)]
pub(crate) struct Tally {
    /// Microseconds per connection that got its answer (any status).
    pub(crate) latencies_us: Vec<u32>,
    pub(crate) errors: u64,
    pub(crate) not_200: u64,
    /// The first error or unexpected status line, for the message on stderr.
    pub(crate) first_problem: Option<String>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        self.not_200 += other.not_200;
        if self.first_problem.is_none() {
            self.first_problem = other.first_problem;
        }
    }
}

/// The loops of one thread; returns when `end` has passed.
pub(crate) fn thread(target: Arc<Target>, loops: usize, from: Instant, end: Instant) -> Tally {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return Tally {
                errors: 1,
                first_problem: Some(format!("cannot start a runtime: {e}")),
                ..Tally::default()
            }
        }
    };
    runtime.block_on(async {
        let handles: Vec<_> = (0..loops)
            .map(|_| tokio::spawn(client_loop(target.clone(), from.into(), end.into())))
            .collect();
        let mut total = Tally::default();
        for handle in handles {
            match handle.await {
                Ok(tally) => total.add(tally),
                Err(e) => total.add(Tally {
                    errors: 1,
                    first_problem: Some(format!("a client loop failed: {e}")),
                    ..Tally::default()
                }),
            }
        }
        total
    })
}

/// Sums the threads' tallies.
pub(crate) fn merge(tallies: impl IntoIterator<Item = Tally>) -> Tally {
    let mut total = Tally::default();
    for tally in tallies {
        total.add(tally);
    }
    total
}

/// Connections back to back until `end`; those that finish in [`from`, `end`) are counted.
async fn client_loop(
    target: Arc<Target>,
    from: tokio::time::Instant,
    end: tokio::time::Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let start = tokio::time::Instant::now();
        if start >= end {
            return tally;
        }
        // Cut at `end`: a connection in flight then is neither counted nor waited for.
        let deadline = end.min(start + CONNECTION_TIMEOUT);
        let result = timeout_at(deadline, target.once(&mut buf)).await;
        let done = tokio::time::Instant::now();
        if done >= end {
            return tally;
        }
        let counted = done >= from;
        let us = u32::try_from(done.duration_since(start).as_micros()).unwrap_or(u32::MAX);
        let problem = match result {
            Ok(Ok(Outcome::Ok)) => None,
            Ok(Ok(Outcome::NotOk(line))) => Some((false, format!("answer: {line:?}"))),
            Ok(Err(e)) => Some((true, format!("error: {e}"))),
            Err(_) => Some((true, "error: timed out".to_owned())),
        };
        let failed = matches!(problem, Some((true, _)));
        if counted {
            match problem {
                None => tally.latencies_us.push(us),
                Some((false, text)) => {
                    tally.latencies_us.push(us);
                    tally.not_200 += 1;
                    tally.first_problem.get_or_insert(text);
                }
                Some((true, text)) => {
                    tally.errors += 1;
                    tally.first_problem.get_or_insert(text);
                }
            }
        }
        if failed {
            // No hot loop of instant failures against a port that refuses.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
