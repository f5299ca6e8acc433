//! Frontends as the metrics outputs name them: by identifier (two hosts sharing one add up),
//! the busiest by name and the rest summed under `other`, for a bounded number of series.

use std::collections::HashMap;

use crate::metrics::names::OTHER_FRONTENDS;
use crate::metrics::FrontendStats;

/// One series' frontend and what it counts.
pub(crate) struct Labelled {
    pub(crate) label: String,
    pub(crate) stats: FrontendStats,
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
        match at.get(label) {
            Some(&i) => grouped[i].stats.add_counts(frontend),
            None => {
                at.insert(label, grouped.len());
                grouped.push(Labelled {
                    label: label.to_owned(),
                    stats: FrontendStats {
                        backends: Vec::new(),
                        ..frontend.clone()
                    },
                });
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
        };
        for rest in grouped.drain(cap..) {
            other.stats.add_counts(&rest.stats);
        }
        match grouped.iter_mut().find(|l| l.label == OTHER_FRONTENDS) {
            Some(l) => l.stats.add_counts(&other.stats),
            None => grouped.push(other),
        }
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
