//! What one backend's probes have shown so far, and when that changes its mark (pure).

/// Consecutive results of one backend of one frontend.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Tally {
    failures: u32,
    successes: u32,
    /// What the checker last wrote: `None` until it wrote anything (a mark left by someone
    /// else, or by a checker before a restart, is cleared once the backend proves healthy).
    dead: Option<bool>,
}

/// What a probe result asks of the dead set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Nothing to write.
    Keep,
    /// Newly failing: `SADD`, `EXPIRE`, `PUBLISH dead`, as the proxy's own marks.
    MarkDead,
    /// Still failing: the mark's TTL is renewed so it outlives the next probe.
    Renew,
    /// Healthy: `SREM`. `revived` when the checker had marked it (otherwise it clears what
    /// someone else, or a checker before a restart, may have left).
    Clear { revived: bool },
}

impl Tally {
    /// Counts one probe; `unhealthy` failures in a row mark, `healthy` successes in a row clear.
    pub(super) fn record(&mut self, ok: bool, unhealthy: u32, healthy: u32) -> Verdict {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.successes >= healthy && self.dead != Some(false) {
                let revived = self.dead.replace(false).is_some();
                return Verdict::Clear { revived };
            }
            return Verdict::Keep;
        }
        self.successes = 0;
        self.failures = self.failures.saturating_add(1);
        if self.failures < unhealthy {
            return Verdict::Keep;
        }
        match self.dead.replace(true) {
            Some(true) => Verdict::Renew,
            _ => Verdict::MarkDead,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_after_unhealthy_failures_and_clears_after_healthy_successes() {
        let mut tally = Tally::default();
        assert_eq!(tally.record(false, 2, 3), Verdict::Keep);
        assert_eq!(tally.record(false, 2, 3), Verdict::MarkDead);
        assert_eq!(tally.record(false, 2, 3), Verdict::Renew);
        assert_eq!(tally.record(true, 2, 3), Verdict::Keep);
        assert_eq!(tally.record(true, 2, 3), Verdict::Keep);
        assert_eq!(tally.record(true, 2, 3), Verdict::Clear { revived: true });
        assert_eq!(tally.record(true, 2, 3), Verdict::Keep);
        // A failure in between restarts the count.
        assert_eq!(tally.record(false, 2, 3), Verdict::Keep);
        assert_eq!(tally.record(true, 2, 3), Verdict::Keep);
        assert_eq!(tally.record(false, 2, 3), Verdict::Keep);
        assert_eq!(tally.record(false, 2, 3), Verdict::MarkDead);
    }

    #[test]
    fn a_healthy_backend_is_cleared_once_then_left_alone() {
        let mut tally = Tally::default();
        assert_eq!(tally.record(true, 1, 1), Verdict::Clear { revived: false });
        assert_eq!(tally.record(true, 1, 1), Verdict::Keep);
        assert_eq!(tally.record(false, 1, 1), Verdict::MarkDead);
        assert_eq!(tally.record(true, 1, 1), Verdict::Clear { revived: true });
    }
}
