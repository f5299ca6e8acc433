//! Maps Hipache 0.2/0.3 keys onto the 0.4 form, and says so with one deprecation note per key.
//!
//! Owns: `server.port`, `server.address`, `server.https` and the top-level `redis*` keys. It runs
//! on the raw mirror before defaults, so a new-form key always wins over its old spelling.

use super::raw::{Name, OneOrMany, RawConfig, RawListen};

/// Rewrites the old keys of `raw` into their new places and returns the deprecation notes.
pub(super) fn upgrade(mut raw: RawConfig) -> (RawConfig, Vec<String>) {
    let mut notes = Vec::new();
    if let Some(server) = raw.server.as_mut() {
        if let Some(port) = server.port.take() {
            notes.push(deprecated("server.port", "http.port"));
            let http = raw.http.get_or_insert_with(RawListen::default);
            http.port = http.port.or(Some(port));
        }
        if let Some(https) = server.https.take() {
            notes.push(deprecated("server.https", "https"));
            // As in Hipache, a new-form `https` section shadows the old one entirely.
            raw.https.get_or_insert(https);
        }
        if let Some(address) = server.address.take() {
            notes.push(deprecated("server.address", "http.bind and https.bind"));
            let http = raw.http.get_or_insert_with(RawListen::default);
            http.bind.get_or_insert_with(|| address.clone());
            // Hipache 0.4 also binds HTTPS here, and then fails for want of a key on every 0.3
            // file without TLS; binding only when an https section exists loads them all.
            if let Some(https) = raw.https.as_mut() {
                https.bind.get_or_insert(address);
            }
        }
    }
    upgrade_redis(&mut raw, &mut notes);
    (raw, notes)
}

fn deprecated(old: &str, new: &str) -> String {
    format!("{old} is deprecated; use {new} instead")
}

/// Hipache 0.3's `redisHost`... keys, which it read only when `driver` was absent.
fn upgrade_redis(raw: &mut RawConfig, notes: &mut Vec<String>) {
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
        return;
    }
    let keys = present.join(", ");
    if raw.driver.is_some() {
        notes.push(format!("{keys} ignored because driver is set"));
        return;
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
