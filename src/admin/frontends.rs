//! Frontends as the metrics outputs name them: by identifier (two hosts sharing one add up),
//! the busiest by name and the rest summed under `other`, for a bounded number of series.

use std::collections::HashMap;

use crate::metrics::names::OTHER_FRONTENDS;
use crate::metrics::FrontendStats;

/// One series' frontend and what it counts.
pub(crate) struct Labelled {
    pub(crate) label: String,
    /// Its counts; `backends` is left empty, they are only counted below.
    pub(crate) stats: FrontendStats,
    /// Backends in the lists of its hosts as last looked up, and those flagged dead.
    pub(crate) backends: u64,
    pub(crate) backends_dead: u64,
}

impl Labelled {
    fn add(&mut self, other: &Labelled) {
        self.stats.add_counts(&other.stats);
        self.backends += other.backends;
        self.backends_dead += other.backends_dead;
    }
}

/// `frontends` grouped by identifier, busiest first, at most `cap` of them plus `other`.
pub(crate) fn by_id(frontends: &[FrontendStats], cap: usize) -> Vec<Labelled> {
    let mut grouped: Vec<Labelled> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for frontend in frontends {
        let label = if frontend.key.is_empty() {
            OTHER_FRONTENDS
        } else {
            frontend.id.as_str()
        };
        let this = Labelled {
            label: label.to_owned(),
            stats: FrontendStats {
                backends: Vec::new(),
                ..frontend.clone()
            },
            backends: frontend.backends.len() as u64,
            backends_dead: frontend.backends.iter().filter(|b| b.dead).count() as u64,
        };
        match at.get(label) {
            Some(&i) => grouped[i].add(&this),
            None => {
                at.insert(label, grouped.len());
                grouped.push(this);
            }
        }
    }
    grouped.sort_by(|a, b| {
        b.stats
            .requests
            .cmp(&a.stats.requests)
            .then(a.label.cmp(&b.label))
    });
    if grouped.len() > cap {
        let mut other = Labelled {
            label: OTHER_FRONTENDS.to_owned(),
            stats: FrontendStats::default(),
            backends: 0,
            backends_dead: 0,
        };
        for rest in grouped.drain(cap..) {
            other.add(&rest);
        }
        match grouped.iter_mut().find(|l| l.label == OTHER_FRONTENDS) {
            Some(l) => l.add(&other),
            None => grouped.push(other),
        }
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::BackendStats;

    fn frontend(key: &str, id: &str, requests: u64) -> FrontendStats {
        FrontendStats {
            key: key.into(),
            id: id.into(),
            requests,
            ..FrontendStats::default()
        }
    }

    #[test]
    fn busiest_keep_their_label_and_the_rest_are_other() {
        let frontends = [
            frontend("a.test", "a", 5),
            frontend("b.test", "b", 9),
            frontend("c.test", "c", 1),
            frontend("a2.test", "a", 5),
            frontend("", "", 2),
        ];
        let labelled = by_id(&frontends, 2);
        let shown: Vec<_> = labelled
            .iter()
            .map(|l| (l.label.as_str(), l.stats.requests))
            .collect();
        assert_eq!(shown, [("a", 10), ("b", 9), ("other", 3)]);
    }

    #[test]
    fn backends_and_dead_ones_add_up_per_identifier() {
        let with_backends = |key: &str, id: &str, dead: &[bool]| FrontendStats {
            backends: (dead.iter().enumerate())
                .map(|(index, &dead)| BackendStats {
                    index,
                    dead,
                    ..BackendStats::default()
                })
                .collect(),
            ..frontend(key, id, 1)
        };
        let frontends = [
            with_backends("a.test", "a", &[true, false]),
            with_backends("a2.test", "a", &[true]),
            with_backends("b.test", "b", &[true]),
        ];
        let counted: Vec<_> = by_id(&frontends, 1)
            .iter()
            .map(|l| (l.label.clone(), l.backends, l.backends_dead))
            .collect();
        assert_eq!(counted, [("a".into(), 3, 2), ("other".into(), 1, 1)]);
    }
}
