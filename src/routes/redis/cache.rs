//! The per-host lookup cache (pure): host → the whole answer of its last lookup, dropped when a
//! key that answer was read from changes.
//!
//! A host's answer depends on `frontend:<c>` for each of its candidates `c` (the host, its
//! wildcards, `*`) and on `dead:<host>`, all under the driver prefix. So no reverse index is
//! needed: the changed key itself says which hosts to drop. `dead:<h>` and `frontend:<h>` drop
//! `h`; `frontend:*.<suffix>` drops every host ending in `.<suffix>` (a superset of those whose
//! candidates hold it); `frontend:*` and any key not understood drop everything.

use std::collections::HashMap;
use std::time::Instant;

use super::super::{DEAD_PREFIX, FRONTEND_PREFIX};

/// Most hosts kept by default: a memory bound, not a policy (an arbitrary host makes room).
pub(crate) const MAX_HOSTS: usize = 100_000;

pub(crate) struct HostCache<V> {
    entries: HashMap<String, Entry<V>>,
    frontend_prefix: String,
    dead_prefix: String,
    capacity: usize,
}

struct Entry<V> {
    value: V,
    /// When a key of the answer expires in Redis (its PTTL), the answer stops being valid.
    expires: Option<Instant>,
}

impl<V: Clone> HostCache<V> {
    /// An empty cache for keys under the driver `prefix`, holding at most `capacity` hosts.
    pub(crate) fn new(prefix: &str, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            frontend_prefix: format!("{prefix}{FRONTEND_PREFIX}"),
            dead_prefix: format!("{prefix}{DEAD_PREFIX}"),
            capacity: capacity.max(1),
        }
    }

    /// The cached answer for `host`, unless absent or expired at `now`.
    pub(crate) fn get(&mut self, host: &str, now: Instant) -> Option<V> {
        let entry = self.entries.get(host)?;
        if entry.expires.is_some_and(|at| at <= now) {
            self.entries.remove(host);
            return None;
        }
        Some(entry.value.clone())
    }

    pub(crate) fn insert(&mut self, host: &str, value: V, expires: Option<Instant>) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(host) {
            if let Some(evicted) = self.entries.keys().next().cloned() {
                self.entries.remove(&evicted);
            }
        }
        self.entries
            .insert(host.to_owned(), Entry { value, expires });
    }

    /// Drops every answer that depended on the Redis key `key` (prefix included).
    pub(crate) fn invalidate(&mut self, key: &[u8]) {
        let Ok(key) = std::str::from_utf8(key) else {
            return self.clear();
        };
        if let Some(host) = key.strip_prefix(&self.dead_prefix) {
            self.entries.remove(host);
        } else if let Some(name) = key.strip_prefix(&self.frontend_prefix) {
            if name == "*" {
                self.clear();
            } else if let Some(suffix) = name.strip_prefix('*') {
                // `suffix` starts with `.`: hosts below it, and a host literally named `name`.
                self.entries
                    .retain(|host, _| host != name && !host.ends_with(suffix));
            } else {
                self.entries.remove(name);
            }
        } else {
            self.clear();
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn filled(prefix: &str, hosts: &[&str]) -> HostCache<u32> {
        let mut cache = HostCache::new(prefix, 100);
        for (n, host) in hosts.iter().enumerate() {
            cache.insert(host, n as u32, None);
        }
        cache
    }

    fn hosts(cache: &mut HostCache<u32>, all: &[&str]) -> Vec<String> {
        let now = Instant::now();
        all.iter()
            .filter(|h| cache.get(h, now).is_some())
            .map(|h| h.to_string())
            .collect()
    }

    const ALL: [&str; 5] = [
        "a.example.com",
        "b.example.com",
        "example.com",
        "x.org",
        "*.org",
    ];

    #[test]
    fn exact_and_dead_keys_drop_one_host_under_the_prefix() {
        let mut cache = filled("p:", &ALL);
        cache.invalidate(b"p:dead:a.example.com");
        cache.invalidate(b"p:frontend:x.org");
        assert_eq!(
            hosts(&mut cache, &ALL),
            ["b.example.com", "example.com", "*.org"]
        );
        cache.invalidate(b"p:dead:unknown.test");
        assert_eq!(cache.len(), 3);
        // A key outside the prefix is not understood: everything goes.
        cache.invalidate(b"dead:b.example.com");
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn wildcards_drop_hosts_below_them_and_star_drops_all() {
        let mut cache = filled("", &ALL);
        cache.invalidate(b"frontend:*.example.com");
        assert_eq!(hosts(&mut cache, &ALL), ["example.com", "x.org", "*.org"]);
        cache.invalidate(b"frontend:*.org");
        assert_eq!(hosts(&mut cache, &ALL), ["example.com"]);
        cache.invalidate(b"frontend:*");
        assert_eq!(cache.len(), 0);
        let mut cache = filled("", &ALL);
        cache.invalidate(&[0xff, 0xfe]);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn entries_expire_and_size_is_bounded() {
        let mut cache = HostCache::new("", 3);
        let now = Instant::now();
        cache.insert("a", 1, Some(now + Duration::from_secs(1)));
        assert_eq!(cache.get("a", now), Some(1));
        assert_eq!(cache.get("a", now + Duration::from_secs(1)), None);
        assert_eq!(cache.len(), 0);
        for (n, host) in ["a", "b", "c", "d"].iter().enumerate() {
            cache.insert(host, n, None);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("d", now), Some(3));
        cache.insert("d", 9, None);
        assert_eq!((cache.len(), cache.get("d", now)), (3, Some(9)));
    }
}
