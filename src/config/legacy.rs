//! Maps Hipache 0.2/0.3 keys onto the 0.4 form, and says so with one deprecation note per key.
//!
//! Owns: `server.port`, `server.address`, `server.https` and the top-level `redis*` keys. It runs
//! on the raw mirror before defaults, so a new-form key always wins over its old spelling. It
//! also remembers where each moved value came from (`Origins`), so that an error about a moved
//! value names the key the operator wrote, not the one it was moved to.

use super::raw::{Name, OneOrMany, RawConfig, RawListen};

/// Which new-form keys hold a value moved from an old-form key: (new prefix, key as written).
#[derive(Debug, Default)]
pub(super) struct Origins(Vec<(String, String)>);

impl Origins {
    fn moved(&mut self, new: &str, written: impl Into<String>) {
        self.0.push((new.to_owned(), written.into()));
    }

    /// `key` as the operator wrote it: `http.bind[0]` is `server.address[0]` when the binds came
    /// from `server.address`. The longest moved prefix wins (`https.bind` before `https`).
    pub(super) fn as_written(&self, key: &str) -> String {
        let moved = self
            .0
            .iter()
            .filter(|(new, _)| {
                key.strip_prefix(new.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
            })
            .max_by_key(|(new, _)| new.len());
        match moved {
            Some((new, written)) => format!("{written}{}", &key[new.len()..]),
            None => key.to_owned(),
        }
    }
}

/// Rewrites the old keys of `raw` into their new places; returns the deprecation notes and where
/// each moved value came from.
pub(super) fn upgrade(mut raw: RawConfig) -> (RawConfig, Vec<String>, Origins) {
    let mut notes = Vec::new();
    let mut origins = Origins::default();
    if let Some(server) = raw.server.as_mut() {
        if let Some(port) = server.port.take() {
            notes.push(deprecated("server.port", "http.port"));
            let http = raw.http.get_or_insert_with(RawListen::default);
            if http.port.is_none() {
                http.port = Some(port);
                origins.moved("http.port", "server.port");
            }
        }
        if let Some(https) = server.https.take() {
            notes.push(deprecated("server.https", "https"));
            // As in Hipache, a new-form `https` section shadows the old one entirely.
            if raw.https.is_none() {
                raw.https = Some(https);
                origins.moved("https", "server.https");
            }
        }
        if let Some(address) = server.address.take() {
            notes.push(deprecated("server.address", "http.bind and https.bind"));
            let http = raw.http.get_or_insert_with(RawListen::default);
            if http.bind.is_none() {
                http.bind = Some(address.clone());
                origins.moved("http.bind", "server.address");
            }
            // Hipache 0.4 also binds HTTPS here, and then fails for want of a key on every 0.3
            // file without TLS; binding only when an https section exists loads them all.
            if let Some(https) = raw.https.as_mut().filter(|https| https.bind.is_none()) {
                https.bind = Some(address);
                origins.moved("https.bind", "server.address");
            }
        }
    }
    if let Some(keys) = upgrade_redis(&mut raw, &mut notes) {
        origins.moved("driver", keys);
    }
    (raw, notes, origins)
}

fn deprecated(old: &str, new: &str) -> String {
    format!("{old} is deprecated; use {new} instead")
}

/// Hipache 0.3's `redisHost`... keys, which it read only when `driver` was absent. Returns the keys
/// the driver was built from (`redisHost, redisPort`), if it was.
fn upgrade_redis(raw: &mut RawConfig, notes: &mut Vec<String>) -> Option<String> {
    let present: Vec<&str> = [
        ("redisHost", &raw.redis_host),
        ("redisPort", &raw.redis_port),
        ("redisPassword", &raw.redis_password),
        ("redisDatabase", &raw.redis_database),
        ("redisMasterHost", &raw.redis_master_host),
        ("redisMasterPort", &raw.redis_master_port),
        ("redisMasterPassword", &raw.redis_master_password),
        ("redisMasterDatabase", &raw.redis_master_database),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.is_some().then_some(key))
    .collect();
    if present.is_empty() {
        return None;
    }
    let keys = present.join(", ");
    if raw.driver.is_some() {
        notes.push(format!("{keys} ignored because driver is set"));
        return None;
    }
    notes.push(format!(
        "{keys} deprecated; use driver: [\"redis://host:port\", \"redis://masterhost:port\"] instead"
    ));
    let mut driver = vec![redis_url(
        raw.redis_host.as_ref(),
        raw.redis_port.as_ref(),
        raw.redis_password.as_ref(),
        raw.redis_database.as_ref(),
    )];
    // 0.3 added a write server only when a master host was named.
    if raw.redis_master_host.is_some() {
        driver.push(redis_url(
            raw.redis_master_host.as_ref(),
            raw.redis_master_port.as_ref(),
            raw.redis_master_password.as_ref(),
            raw.redis_master_database.as_ref(),
        ));
    }
    raw.driver = Some(OneOrMany(driver));
    Some(keys)
}

/// Builds the URL the way 0.3's cache.js concatenated it (empty parts left out).
fn redis_url(
    host: Option<&Name>,
    port: Option<&Name>,
    password: Option<&Name>,
    database: Option<&Name>,
) -> String {
    let mut url = String::from("redis://");
    if let Some(password) = given(password) {
        url.push_str(&format!(":{password}@"));
    }
    match given(host) {
        // Bracketed, or the URL parser would read the last group of an IPv6 address as the port.
        Some(host) if host.contains(':') && !host.starts_with('[') => {
            url.push_str(&format!("[{host}]"));
        }
        Some(host) => url.push_str(host),
        None => {}
    }
    if let Some(port) = given(port) {
        url.push_str(&format!(":{port}"));
    }
    // JavaScript's truthiness: database 0 was left out, which means 0 anyway.
    if let Some(database) = given(database).filter(|d| *d != "0") {
        url.push_str(&format!("/{database}"));
    }
    url
}

fn given(part: Option<&Name>) -> Option<&str> {
    part.map(|n| n.0.as_str()).filter(|s| !s.is_empty())
}
