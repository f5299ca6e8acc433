//! Which certificate a handshake gets: the listener's own when it covers the requested server
//! name (as in Hipache, where each bind is its own server with its own certificate), else the
//! first loaded whose name matches exactly, else one for the wildcard one level up
//! (`*.example.com` for `a.example.com`), else the listener's own (default) certificate.
//!
//! The set lives behind an `ArcSwap` so a reload replaces it whole while handshakes read it
//! without a lock.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Names to values (certificates; strings in unit tests), exact names and wildcards apart.
#[derive(Debug)]
pub(crate) struct Names<T> {
    exact: HashMap<String, T>,
    /// `*.example.com` is stored under `example.com`.
    wildcard: HashMap<String, T>,
}

impl<T> Default for Names<T> {
    fn default() -> Self {
        Self {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
        }
    }
}

impl<T> Names<T> {
    /// Adds `name` for `value` unless a value already claimed it: the first certificate loaded
    /// for a name wins. Returns whether it was added.
    pub(crate) fn insert(&mut self, name: &str, value: T) -> bool {
        let name = normalize(name);
        let (map, key) = match name.strip_prefix("*.") {
            Some(parent) => (&mut self.wildcard, parent.to_owned()),
            None => (&mut self.exact, name),
        };
        match map.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(value);
                true
            }
        }
    }

    /// The value for `server_name`: exact, then the wildcard of its parent (one level only).
    pub(crate) fn find(&self, server_name: &str) -> Option<&T> {
        let name = normalize(server_name);
        if let Some(found) = self.exact.get(&name) {
            return Some(found);
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent)
    }

    pub(crate) fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Every certificate of one generation: by name, and each listener's own.
#[derive(Debug, Default)]
pub(crate) struct CertSet {
    pub(crate) names: Names<Arc<CertifiedKey>>,
    /// Indexed like the config's https listeners.
    pub(crate) own: Vec<Own>,
    /// Each name served and when its certificate expires (Unix seconds), for the gauge.
    pub(crate) expiries: Vec<(String, i64)>,
}

/// A listener's own certificate and the names it covers.
#[derive(Debug)]
pub(crate) struct Own {
    pub(crate) names: Names<()>,
    pub(crate) key: Arc<CertifiedKey>,
}

impl CertSet {
    pub(crate) fn pick(
        &self,
        server_name: Option<&str>,
        listener: usize,
    ) -> Option<Arc<CertifiedKey>> {
        let own = self.own.get(listener);
        let Some(name) = server_name else {
            return own.map(|own| own.key.clone());
        };
        own.filter(|own| own.names.find(name).is_some())
            .map(|own| &own.key)
            .or_else(|| self.names.find(name))
            .or_else(|| own.map(|own| &own.key))
            .cloned()
    }
}

/// The rustls resolver of one listener, reading the current set.
#[derive(Debug)]
pub(crate) struct Resolver {
    pub(crate) set: Arc<ArcSwap<CertSet>>,
    pub(crate) listener: usize,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.set.load().pick(hello.server_name(), self.listener)
    }
}

/// The resolver of a handshake whose certificate was chosen before it began.
#[derive(Debug)]
pub(crate) struct Fixed(pub(crate) Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[(&str, &'static str)]) -> Names<&'static str> {
        let mut names = Names::default();
        for (name, value) in list {
            names.insert(name, *value);
        }
        names
    }

    #[test]
    fn exact_name_wins_over_wildcard() {
        let names = names(&[("*.example.com", "wild"), ("a.example.com", "a")]);
        assert_eq!(names.find("a.example.com"), Some(&"a"));
        assert_eq!(names.find("b.example.com"), Some(&"wild"));
        assert_eq!(names.find("A.Example.COM."), Some(&"a"));
    }

    #[test]
    fn wildcard_covers_one_level_only() {
        let names = names(&[("*.example.com", "wild")]);
        assert_eq!(names.find("example.com"), None);
        assert_eq!(names.find("x.y.example.com"), None);
        assert_eq!(names.find("localhost"), None);
    }

    #[test]
    fn first_certificate_for_a_name_is_kept() {
        let mut names = Names::default();
        assert!(names.insert("a.test", 1));
        assert!(!names.insert("A.test", 2));
        assert_eq!(names.find("a.test"), Some(&1));
        assert_eq!(names.len(), 1);
    }
}
