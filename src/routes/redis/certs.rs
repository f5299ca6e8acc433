//! Certificates kept in Redis, in hipache-raft's layout: the hash `tls:<server name>` (behind the
//! driver prefix) with the fields `certificate` (the PEM chain) and `key` (the PEM key). Whatever
//! writes them (`hipache cert add`, an ACME client, `redis-cli`) is read the same way.
//!
//! Owns: the lookup for a handshake's server name (the exact `tls:<name>`, then the wildcard
//! `tls:*.<parent>` one level up, as a certificate's wildcard means), the per-worker cache of
//! both answers per key, positive and negative ([`CertCache`], kept fresh by the tracking
//! connection like the host cache, bounded so a flood of invented names cannot grow it), and the
//! log line of a certificate loaded, replaced, removed or refused. It does not decide what a
//! handshake serves when Redis has nothing: that is the listener's (`crate::tls`).

use std::collections::HashMap;
use std::sync::Arc;

use redis::Value;
use rustls::crypto::CryptoProvider;
use tracing::{info, warn};

use super::tracking::{CertCheck, Ticket};
use super::RedisRoutes;
use crate::metrics::{self, names::Counter};
use crate::routes::{
    TLS_CERTIFICATE_FIELD as CERTIFICATE_FIELD, TLS_KEY_FIELD as KEY_FIELD, TLS_PREFIX,
};
use crate::tls::certs::{self as pem, Loaded};

/// A certificate read from Redis, ready to serve.
pub(crate) type Certificate = Arc<Loaded>;

/// Most `tls:` keys a worker remembers, answers for names without a certificate included.
pub(crate) const CAPACITY: usize = 10_000;

/// `tls:` key names (without the prefix) to what they held when read (pure). Freshness works
/// as in the host cache: an entry is fresh while its generation is the cache's.
pub(crate) struct CertCache<T> {
    entries: HashMap<String, Entry<T>>,
    capacity: usize,
    generation: u64,
}

struct Entry<T> {
    /// `None`: no usable certificate under that key.
    value: Option<T>,
    /// [`STALE`] once a change (or a loss of tracking) made it so.
    generation: u64,
}

const STALE: u64 = 0;

impl<T: Clone> CertCache<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
            generation: STALE + 1,
        }
    }

    /// The fresh answer for `name`, if any.
    pub(crate) fn get(&self, name: &str) -> Option<Option<T>> {
        self.entries
            .get(name)
            .filter(|entry| entry.generation == self.generation)
            .map(|entry| entry.value.clone())
    }

    /// The last answer read for `name`, fresh or not.
    pub(crate) fn last_known(&self, name: &str) -> Option<Option<T>> {
        self.entries.get(name).map(|entry| entry.value.clone())
    }

    /// Records `value` for `name` (fresh or only last known); returns the previous answer. When
    /// full, the names without a certificate go first (a flood of invented names is made of
    /// those), then any.
    pub(crate) fn insert(
        &mut self,
        name: &str,
        value: Option<T>,
        fresh: bool,
    ) -> Option<Option<T>> {
        if self.capacity == 0 {
            return None;
        }
        let generation = if fresh { self.generation } else { STALE };
        if let Some(entry) = self.entries.get_mut(name) {
            let previous = std::mem::replace(&mut entry.value, value);
            entry.generation = generation;
            return Some(previous);
        }
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, entry| entry.value.is_some());
        }
        if self.entries.len() >= self.capacity {
            let victim = self.entries.keys().next().cloned();
            if let Some(victim) = victim {
                self.entries.remove(&victim);
            }
        }
        self.entries
            .insert(name.to_owned(), Entry { value, generation });
        None
    }

    /// The key `tls:<name>` changed.
    pub(crate) fn invalidate(&mut self, name: &str) {
        if let Some(entry) = self.entries.get_mut(name) {
            entry.generation = STALE;
        }
    }

    pub(crate) fn make_all_stale(&mut self) {
        self.generation += 1;
    }

    /// Every certificate held, by key name.
    pub(crate) fn loaded(&self) -> Vec<(String, T)> {
        self.entries
            .iter()
            .filter_map(|(name, entry)| Some((name.clone(), entry.value.clone()?)))
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The `tls:` key names that may serve `server_name`, best first: itself, then the wildcard of
/// its parent.
pub(crate) fn candidates(server_name: &str) -> Vec<String> {
    let name = server_name.trim_end_matches('.').to_ascii_lowercase();
    let wildcard = name
        .split_once('.')
        .filter(|(_, parent)| !parent.is_empty())
        .map(|(_, parent)| format!("*.{parent}"));
    std::iter::once(name).chain(wildcard).collect()
}

impl RedisRoutes {
    /// The certificate Redis holds for `server_name`, from the cache when it is fresh; while
    /// Redis is unreachable, the last one read. `None`: serve the listener's own.
    pub(crate) async fn certificate(
        &self,
        server_name: &str,
        provider: &CryptoProvider,
    ) -> Option<Certificate> {
        let tracking = &self.shared.tracking;
        let names = candidates(server_name);
        let mut answers: Vec<Option<Option<Certificate>>> = Vec::with_capacity(names.len());
        let mut ticket: Option<Ticket> = None;
        for name in &names {
            match tracking.check_certificate(name) {
                CertCheck::Hit(Some(found)) if answers.iter().all(Option::is_some) => {
                    return Some(found);
                }
                CertCheck::Hit(found) => answers.push(Some(found)),
                CertCheck::Miss(at) => {
                    ticket = ticket.or(Some(at));
                    answers.push(None);
                }
                CertCheck::Off => answers.push(None),
            }
        }
        let missing: Vec<usize> = (0..names.len()).filter(|&i| answers[i].is_none()).collect();
        if !missing.is_empty() {
            let keys: Vec<String> = missing
                .iter()
                .map(|&i| format!("{}{TLS_PREFIX}{}", self.shared.prefix, names[i]))
                .collect();
            match self.shared.servers.hashes(&keys).await {
                Ok(read) => {
                    metrics::count(Counter::LookupsRedis);
                    let fresh_ticket = if read.redirected { None } else { ticket };
                    for ((&at, key), value) in missing.iter().zip(&keys).zip(read.values) {
                        let found = self.parse(key, value, provider);
                        let before = tracking.store_certificate(
                            fresh_ticket,
                            &read.nodes,
                            &names[at],
                            found.clone(),
                        );
                        report_change(key, before.flatten().as_ref(), found.as_ref());
                        answers[at] = Some(found);
                    }
                }
                Err(error) => {
                    metrics::count(Counter::RedisErrors);
                    if !error.is_connection()
                        && self.first_report("certificate lookup error", &error.to_string())
                    {
                        warn!(error = %error, "redis certificate lookup failed");
                    }
                    for &at in &missing {
                        answers[at] = tracking.last_known_certificate(&names[at]);
                    }
                }
            }
        }
        answers.into_iter().flatten().flatten().next()
    }

    /// The last certificate read for `server_name`, without asking Redis (a lookup that took
    /// too long).
    pub(crate) fn last_known_certificate(&self, server_name: &str) -> Option<Certificate> {
        candidates(server_name)
            .iter()
            .find_map(|name| self.shared.tracking.last_known_certificate(name).flatten())
    }

    /// Every certificate this worker holds from Redis, by key name (`*.example.com` for a
    /// wildcard), for the expiry gauge.
    pub(crate) fn loaded_certificates(&self) -> Vec<(String, Certificate)> {
        self.shared.tracking.certificates()
    }

    /// The certificate in the `HGETALL` reply `value` of `key`; a refused one is logged once.
    fn parse(&self, key: &str, value: Value, provider: &CryptoProvider) -> Option<Certificate> {
        let fields: HashMap<String, Vec<u8>> = match redis::from_redis_value(value) {
            Ok(fields) => fields,
            Err(_) => return self.refuse(key, "not a hash"),
        };
        if fields.is_empty() {
            return None;
        }
        let (Some(certificate), Some(private_key)) =
            (fields.get(CERTIFICATE_FIELD), fields.get(KEY_FIELD))
        else {
            return self.refuse(key, "needs the fields certificate and key");
        };
        match pem::from_pem(certificate, private_key, provider) {
            Ok(loaded) => Some(Arc::new(loaded)),
            Err(error) => self.refuse(key, &crate::logging::chain(&error)),
        }
    }

    fn refuse(&self, key: &str, reason: &str) -> Option<Certificate> {
        if self.first_report(key, reason) {
            warn!(key = %key, reason = %reason, "redis certificate refused");
        }
        None
    }
}

/// One line per change a worker sees: a certificate appears, is replaced, or goes.
fn report_change(key: &str, before: Option<&Certificate>, now: Option<&Certificate>) {
    let expires = now.and_then(|c| c.facts.as_ref()).map(|f| f.not_after);
    match (before, now) {
        (None, Some(now)) => {
            info!(key = %key, names = ?now.names, expires, "redis certificate loaded");
        }
        (Some(before), Some(now)) if before.key.cert != now.key.cert => {
            info!(key = %key, names = ?now.names, expires, "redis certificate replaced");
        }
        (Some(_), None) => info!(key = %key, "redis certificate removed"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_tried_exactly_then_as_the_wildcard_of_its_parent() {
        assert_eq!(
            candidates("A.Example.test."),
            ["a.example.test", "*.example.test"]
        );
        assert_eq!(candidates("localhost"), ["localhost"]);
    }

    #[test]
    fn answers_are_fresh_until_their_key_changes_and_then_last_known() {
        let mut cache = CertCache::new(10);
        cache.insert("a.test", Some("a"), true);
        cache.insert("b.test", None, true);
        assert_eq!(cache.get("a.test"), Some(Some("a")));
        assert_eq!(cache.get("b.test"), Some(None));
        cache.invalidate("a.test");
        assert_eq!(cache.get("a.test"), None);
        assert_eq!(cache.last_known("a.test"), Some(Some("a")));
        assert_eq!(cache.get("b.test"), Some(None));
        cache.make_all_stale();
        assert_eq!(cache.get("b.test"), None);
        assert_eq!(cache.insert("a.test", Some("a2"), false), Some(Some("a")));
        assert_eq!(cache.get("a.test"), None);
        assert_eq!(cache.last_known("a.test"), Some(Some("a2")));
    }

    #[test]
    fn a_flood_of_unknown_names_stays_bounded_and_keeps_the_certificates() {
        let mut cache = CertCache::new(100);
        cache.insert("real.test", Some("real"), true);
        for n in 0..10_000 {
            cache.insert(&format!("invented{n}.test"), None, true);
            assert!(cache.len() <= 100);
        }
        assert_eq!(cache.get("real.test"), Some(Some("real")));
        assert_eq!(cache.loaded(), [("real.test".to_owned(), "real")]);
    }
}
