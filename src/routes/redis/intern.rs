//! Compact cached answers (pure): what a host's lookup answered, minus the host, shared by every
//! host that got the same answer.
//!
//! Most hosts of a large table share their answer with others: the hosts of one application
//! (same id, same backends), the hosts below one wildcard, the hosts that point at one origin.
//! So the cache stores per host only its name and an `Arc` of an interned [`Template`], and the
//! backend lists inside templates are interned too. An entry's cost is then its name plus a few
//! words, whatever its backends; [`Interner`] drops what no entry uses any more.

use std::collections::HashSet;
use std::sync::Arc;

use super::super::footprint;
use super::super::{Backend, Frontend, Held};
use super::Answer;

/// Templates and backend lists kept before the first sweep of unused ones.
const FIRST_SWEEP: usize = 1_024;

/// An answer without its host: rebuilt into an [`Answer`] for a host on every hit.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Template {
    /// The key that matched when it is not the host itself (a wildcard or `*`).
    key: Option<Box<str>>,
    id: Arc<str>,
    backends: Arc<[Backend]>,
    backend_count: usize,
    dead: Box<[usize]>,
    held: Held,
}

impl Template {
    /// The answer this template gives for `host`.
    pub(crate) fn answer(&self, host: &str) -> Answer {
        Answer {
            frontend: Arc::new(Frontend {
                key: self.key.as_deref().unwrap_or(host).to_owned(),
                id: self.id.clone(),
                backends: self.backends.clone(),
                backend_count: self.backend_count,
            }),
            dead: self.dead.to_vec(),
            held: self.held.clone(),
        }
    }
}

/// The shared templates and backend lists of one cache.
#[derive(Default)]
pub(crate) struct Interner {
    templates: HashSet<Arc<Template>>,
    backends: HashSet<Arc<[Backend]>>,
    sweep_at: usize,
    /// What the templates and the lists hold (see [`Interner::heap_bytes`]).
    bytes: usize,
}

impl Interner {
    /// The shared template of `answer`, as answered for `host`.
    pub(crate) fn intern(&mut self, host: &str, answer: &Answer) -> Arc<Template> {
        let frontend = &answer.frontend;
        let backends = match self.backends.get(&*frontend.backends) {
            Some(shared) => shared.clone(),
            None => {
                self.backends.insert(frontend.backends.clone());
                self.bytes += list_bytes(&frontend.backends);
                frontend.backends.clone()
            }
        };
        let template = Template {
            key: (frontend.key != host).then(|| frontend.key.as_str().into()),
            id: frontend.id.clone(),
            backends,
            backend_count: frontend.backend_count,
            dead: answer.dead.as_slice().into(),
            held: answer.held.clone(),
        };
        if let Some(shared) = self.templates.get(&template) {
            return shared.clone();
        }
        self.bytes += template_bytes(&template);
        let shared = Arc::new(template);
        self.templates.insert(shared.clone());
        if self.templates.len() >= self.sweep_at.max(FIRST_SWEEP) {
            self.sweep();
        }
        shared
    }

    /// Drops templates no entry holds, then backend lists no template holds. Runs when the set
    /// doubled since the last sweep, so its cost is amortised over the insertions.
    fn sweep(&mut self) {
        self.templates.retain(|t| Arc::strong_count(t) > 1);
        self.backends.retain(|b| Arc::strong_count(b) > 1);
        self.sweep_at = 2 * self.templates.len();
        self.bytes = (self.templates.iter().map(|t| template_bytes(t)))
            .chain(self.backends.iter().map(|b| list_bytes(b)))
            .sum();
    }

    /// The bytes its templates and backend lists hold, with their slots in the sets (and those
    /// no entry uses any more, until the next sweep drops them).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    pub(crate) fn counts(&mut self) -> (usize, usize) {
        self.sweep();
        (self.templates.len(), self.backends.len())
    }
}

fn template_bytes(template: &Template) -> usize {
    let Held { draining, disabled } = &template.held;
    footprint::table_slot(std::mem::size_of::<Arc<Template>>())
        + footprint::arc_block(std::mem::size_of::<Template>())
        + footprint::arc_block(template.id.len())
        + footprint::block(template.key.as_ref().map_or(0, |k| k.len()))
        + footprint::block(std::mem::size_of_val(&*template.dead))
        + footprint::block(std::mem::size_of_val(draining.as_slice()))
        + footprint::block(std::mem::size_of_val(disabled.as_slice()))
}

fn list_bytes(list: &[Backend]) -> usize {
    footprint::table_slot(std::mem::size_of::<Arc<[Backend]>>()) + footprint::backends(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(key: &str, id: &str, urls: &[&str], dead: &[usize]) -> Answer {
        let list: Vec<String> = std::iter::once(id)
            .chain(urls.iter().copied())
            .map(str::to_owned)
            .collect();
        Answer {
            frontend: Arc::new(Frontend::from_list(key, &list, |_, _| {}).unwrap()),
            dead: dead.to_vec(),
            held: Default::default(),
        }
    }

    #[test]
    fn same_answers_share_one_template_and_backend_lists_are_shared_across_ids() {
        let mut interner = Interner::default();
        let a = interner.intern("a.test", &answer("a.test", "app", &["http://o:1"], &[]));
        let b = interner.intern("b.test", &answer("b.test", "app", &["http://o:1"], &[]));
        assert!(Arc::ptr_eq(&a, &b), "exact matches of the same list share");
        let w1 = interner.intern("x.w.test", &answer("*.w.test", "app", &["http://o:1"], &[]));
        let w2 = interner.intern("y.w.test", &answer("*.w.test", "app", &["http://o:1"], &[]));
        assert!(Arc::ptr_eq(&w1, &w2) && !Arc::ptr_eq(&a, &w1));
        let other = interner.intern("c.test", &answer("c.test", "other", &["http://o:1"], &[]));
        let dead = interner.intern("d.test", &answer("d.test", "app", &["http://o:1"], &[0]));
        assert!(
            Arc::ptr_eq(&a.backends, &other.backends) && Arc::ptr_eq(&a.backends, &dead.backends)
        );
        assert_eq!(interner.counts(), (4, 1));

        assert_eq!(
            w1.answer("x.w.test"),
            answer("*.w.test", "app", &["http://o:1"], &[])
        );
        assert_eq!(
            a.answer("z.test"),
            answer("z.test", "app", &["http://o:1"], &[])
        );
        assert_eq!(dead.answer("d.test").dead, [0]);

        drop((a, b, other));
        assert_eq!(interner.counts(), (2, 1), "unused templates are swept");
        drop((w1, w2, dead));
        assert_eq!(interner.counts(), (0, 0));
    }
}
