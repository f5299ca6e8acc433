//! Unit tests of the lookup cache: invalidation by key, freshness generations, expiry, the size
//! bound and CLOCK's eviction order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cache::HostCache;
use super::Answer;
use crate::routes::Frontend;

fn answer(key: &str, id: &str) -> Option<Answer> {
    let list = [id.to_owned(), "http://origin:80".to_owned()];
    Some(Answer {
        frontend: Arc::new(Frontend::from_list(key, &list, |_, _| {}).unwrap()),
        dead: Vec::new(),
    })
}

fn filled(prefix: &str, hosts: &[&str]) -> HostCache {
    let mut cache = HostCache::new(prefix, 100, None);
    let now = Instant::now();
    for host in hosts {
        cache.insert(host, &answer(host, host), true, None, now);
    }
    cache
}

/// The hosts of `all` that have a fresh answer.
fn fresh(cache: &mut HostCache, all: &[&str]) -> Vec<String> {
    let now = Instant::now();
    all.iter()
        .filter(|h| cache.get(h, now).is_some())
        .map(|h| h.to_string())
        .collect()
}

/// The hosts of `all` still held (fresh or not).
fn held(cache: &HostCache, all: &[&str]) -> Vec<String> {
    all.iter()
        .filter(|h| cache.last_known(h).is_some())
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
fn exact_and_dead_keys_make_one_host_stale_under_the_prefix() {
    let mut cache = filled("p:", &ALL);
    cache.invalidate(b"p:dead:a.example.com");
    cache.invalidate(b"p:frontend:x.org");
    assert_eq!(
        fresh(&mut cache, &ALL),
        ["b.example.com", "example.com", "*.org"]
    );
    cache.invalidate(b"p:dead:unknown.test");
    assert_eq!(fresh(&mut cache, &ALL).len(), 3);
    // A key outside the prefix is not understood: nothing stays fresh.
    cache.invalidate(b"dead:b.example.com");
    assert!(fresh(&mut cache, &ALL).is_empty());
    // Stale answers are still the last known ones, for stale-if-error.
    assert_eq!(held(&cache, &ALL), ALL);
    let last = cache.last_known("x.org").unwrap().unwrap();
    assert_eq!(
        (&*last.frontend.id, last.frontend.key.as_str()),
        ("x.org", "x.org")
    );
}

#[test]
fn wildcards_touch_hosts_below_them_and_star_touches_all() {
    let mut cache = filled("", &ALL);
    cache.invalidate(b"frontend:*.example.com");
    assert_eq!(fresh(&mut cache, &ALL), ["example.com", "x.org", "*.org"]);
    cache.invalidate(b"frontend:*.org");
    assert_eq!(fresh(&mut cache, &ALL), ["example.com"]);
    cache.invalidate(b"frontend:*");
    assert!(fresh(&mut cache, &ALL).is_empty());
    let mut cache = filled("", &ALL);
    cache.invalidate(&[0xff, 0xfe]);
    assert!(fresh(&mut cache, &ALL).is_empty());
}

#[test]
fn stale_entries_become_fresh_only_by_a_fresh_insert() {
    let mut cache = filled("", &ALL);
    let now = Instant::now();
    cache.make_all_stale();
    assert!(fresh(&mut cache, &ALL).is_empty());
    // An answer read while tracking was off is remembered, never served as fresh.
    cache.insert("x.org", &answer("x.org", "while off"), false, None, now);
    assert!(cache.get("x.org", now).is_none());
    let last = cache.last_known("x.org").unwrap().unwrap();
    assert_eq!(&*last.frontend.id, "while off");
    cache.insert("x.org", &None, true, None, now);
    assert_eq!(cache.get("x.org", now), Some(None));
    assert_eq!(cache.len(), ALL.len());
}

#[test]
fn answers_expire_with_their_keys_or_the_max_age() {
    let now = Instant::now();
    let mut cache = HostCache::new("", 10, Some(Duration::from_secs(5)));
    cache.insert(
        "a",
        &answer("a", "a"),
        true,
        Some(now + Duration::from_secs(1)),
        now,
    );
    cache.insert("b", &answer("b", "b"), true, None, now);
    assert!(cache.get("a", now).is_some() && cache.get("b", now).is_some());
    assert!(cache.get("a", now + Duration::from_secs(1)).is_none());
    assert!(cache.get("b", now + Duration::from_secs(4)).is_some());
    assert!(cache.get("b", now + Duration::from_secs(5)).is_none());
    assert!(cache.last_known("a").is_some() && cache.last_known("b").is_some());
}

#[test]
fn size_is_bounded_and_clock_evicts_unreferenced_hosts_first() {
    let now = Instant::now();
    let mut cache = HostCache::new("", 3, None);
    for host in ["a", "b", "c"] {
        cache.insert(host, &answer(host, host), true, None, now);
    }
    assert!(cache.get("a", now).is_some(), "a is referenced");
    cache.insert("d", &answer("d", "d"), true, None, now);
    assert_eq!(held(&cache, &["a", "b", "c", "d"]), ["a", "c", "d"]);
    cache.insert("e", &answer("e", "e"), true, None, now);
    assert_eq!(held(&cache, &["a", "c", "d", "e"]), ["a", "d", "e"]);
    // The hand cleared a's bit when it passed: a goes next, unless hit again.
    cache.insert("f", &answer("f", "f"), true, None, now);
    assert_eq!(held(&cache, &["a", "d", "e", "f"]), ["d", "e", "f"]);
    // Updating a held host takes no room.
    cache.insert("e", &None, true, None, now);
    assert_eq!((cache.len(), cache.get("e", now)), (3, Some(None)));

    let mut many = HostCache::new("", 1_000, None);
    for n in 0..10_000 {
        let host = format!("h{n}.test");
        many.insert(&host, &answer(&host, "app"), true, None, now);
        assert!(many.get(&host, now).is_some(), "{host} just inserted");
    }
    assert_eq!(many.len(), 1_000);
    let mut none = HostCache::new("", 0, None);
    none.insert("a", &answer("a", "a"), true, None, now);
    assert_eq!((none.len(), none.get("a", now)), (0, None));
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// Resident bytes per cached host: 1M exact frontends over 1,000 applications (id + backend).
/// `cargo test --lib bytes_per_host -- --ignored --nocapture`
#[test]
#[ignore = "measurement, not a test"]
fn bytes_per_host() {
    const HOSTS: usize = 1_000_000;
    let answers: Vec<Option<Answer>> = (0..1_000)
        .map(|n| answer("template", &format!("app{n}")))
        .collect();
    let now = Instant::now();
    let before = resident_bytes();
    let mut cache = HostCache::new("", HOSTS, None);
    for n in 0..HOSTS {
        let host = format!("host{n}.example.com");
        let template = answers[n % answers.len()].as_ref().unwrap();
        let mut frontend = (*template.frontend).clone();
        frontend.key = host.clone();
        let answer = Some(Answer {
            frontend: Arc::new(frontend),
            dead: Vec::new(),
        });
        cache.insert(&host, &answer, true, None, now);
    }
    let after = resident_bytes();
    assert_eq!(cache.len(), HOSTS);
    eprintln!(
        "{} bytes per host ({} MiB for {HOSTS} hosts)",
        (after - before) / HOSTS as u64,
        (after - before) >> 20
    );
}
