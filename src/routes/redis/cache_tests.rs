//! Unit tests of the lookup cache: invalidation by key, freshness generations, expiry, the size
//! bound and CLOCK's eviction order.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cache::HostCache;
use super::Answer;
use crate::routes::Footprint;
use crate::routes::Frontend;

fn answer(key: &str, id: &str) -> Option<Answer> {
    let list = [id.to_owned(), "http://origin:80".to_owned()];
    Some(Answer {
        frontend: Arc::new(Frontend::from_list(key, &list, |_, _| {}).unwrap()),
        dead: Vec::new(),
        held: Default::default(),
    })
}

fn filled(prefix: &str, hosts: &[&str]) -> HostCache {
    let mut cache = HostCache::new(prefix, 100, None, Footprint::default());
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
fn exact_dead_and_state_keys_make_one_host_stale_under_the_prefix() {
    let mut cache = filled("p:", &ALL);
    cache.invalidate(b"p:dead:a.example.com");
    cache.invalidate(b"p:frontend:x.org");
    assert_eq!(
        fresh(&mut cache, &ALL),
        ["b.example.com", "example.com", "*.org"]
    );
    cache.invalidate(b"p:state:example.com");
    assert_eq!(fresh(&mut cache, &ALL), ["b.example.com", "*.org"]);
    cache.invalidate(b"p:dead:unknown.test");
    assert_eq!(fresh(&mut cache, &ALL).len(), 2);
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
    let mut cache = HostCache::new("", 10, Some(Duration::from_secs(5)), Footprint::default());
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
    let mut cache = HostCache::new("", 3, None, Footprint::default());
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

    let mut many = HostCache::new("", 1_000, None, Footprint::default());
    for n in 0..10_000 {
        let host = format!("h{n}.test");
        many.insert(&host, &answer(&host, "app"), true, None, now);
        assert!(many.get(&host, now).is_some(), "{host} just inserted");
    }
    assert_eq!(many.len(), 1_000);
    let mut none = HostCache::new("", 0, None, Footprint::default());
    none.insert("a", &answer("a", "a"), true, None, now);
    assert_eq!((none.len(), none.get("a", now)), (0, None));
}

#[test]
fn names_too_long_for_a_slot_are_found_invalidated_and_evicted_like_short_ones() {
    let now = Instant::now();
    // 38 bytes fit inside a slot; 39 and 300 do not; the short ones share their first 38 bytes.
    let fits = format!("{}.fits.test", "a".repeat(28));
    let longer = format!("{}.fits.test", "a".repeat(29));
    let longest = format!("{}.fits.test", "a".repeat(290));
    let hosts = [fits.as_str(), longer.as_str(), longest.as_str()];
    assert_eq!(fits.len(), 38);
    let mut cache = HostCache::new("", 3, None, Footprint::default());
    for host in hosts {
        cache.insert(host, &answer(host, host), true, None, now);
    }
    assert_eq!(fresh(&mut cache, &hosts), hosts);
    assert!(cache
        .get(&format!("{}.fits.test", "a".repeat(30)), now)
        .is_none());
    cache.invalidate(format!("frontend:{longer}").as_bytes());
    assert_eq!(fresh(&mut cache, &hosts), [fits.as_str(), longest.as_str()]);
    cache.invalidate(b"frontend:*.fits.test");
    assert!(fresh(&mut cache, &hosts).is_empty());
    assert_eq!(held(&cache, &hosts), hosts);
    // Full: a new host evicts one (none referenced since the hand passed), the rest stay found.
    cache.insert("new.test", &answer("new.test", "new"), true, None, now);
    assert_eq!(held(&cache, &hosts).len(), 2);
    assert!(cache.get("new.test", now).is_some());
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

#[test]
fn the_cache_publishes_what_its_hosts_hold() {
    const HOSTS: usize = 100_000;
    let now = Instant::now();
    let footprint = Footprint::default();
    let mut cache = HostCache::new("", HOSTS, None, footprint.clone());
    // 1,000 applications, each host an exact frontend of one.
    let answers: Vec<Option<Answer>> = (0..1_000)
        .map(|n| answer("x", &format!("app{n}")))
        .collect();
    let answer_for = |n: usize, host: &str| {
        let mut answer = answers[n % answers.len()].clone();
        if let Some(a) = answer.as_mut() {
            let mut frontend = (*a.frontend).clone();
            frontend.key = host.to_owned();
            a.frontend = Arc::new(frontend);
        }
        answer
    };
    for n in 0..HOSTS {
        let host = format!("h{n}.scale.local");
        cache.insert(&host, &answer_for(n, &host), true, None, now);
    }
    let bytes = footprint.bytes() as usize;
    assert_eq!(bytes, cache.heap_bytes());
    // A 64-byte slot, an index entry (8 bytes, at most 5/8 of the table used) and its share of
    // 1,000 shared answers.
    let per_host = bytes / HOSTS;
    assert!((72..=100).contains(&per_host), "{per_host} bytes per host");
    // A name too long for its slot adds its own block; evicting it takes the block back.
    let long = "l".repeat(300);
    cache.insert(&long, &answer_for(0, &long), true, None, now);
    assert!(footprint.bytes() as usize >= bytes + 300);
    for n in 0..2 * HOSTS {
        let host = format!("e{n}.scale.local");
        cache.insert(&host, &answer_for(n, &host), true, None, now);
    }
    assert!(cache.last_known(&long).is_none());
    assert!(
        footprint.bytes() as usize <= bytes + 64,
        "{} after evictions",
        footprint.bytes()
    );
}

/// Resident bytes per cached host: 1M exact frontends (or `HOSTS`) over 1,000 applications (id +
/// backend). `[HOSTS=100000] cargo test --lib bytes_per_host -- --ignored --nocapture`
#[test]
#[ignore = "measurement, not a test"]
fn bytes_per_host() {
    let hosts_env = std::env::var("HOSTS").ok();
    let hosts: usize = hosts_env.and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let answers: Vec<Option<Answer>> = (0..1_000)
        .map(|n| answer("template", &format!("app{n}")))
        .collect();
    let now = Instant::now();
    let before = resident_bytes();
    let mut cache = HostCache::new("", hosts, None, Footprint::default());
    for n in 0..hosts {
        let host = format!("host{n}.example.com");
        let template = answers[n % answers.len()].as_ref().unwrap();
        let mut frontend = (*template.frontend).clone();
        frontend.key = host.clone();
        let answer = Some(Answer {
            frontend: Arc::new(frontend),
            dead: Vec::new(),
            held: Default::default(),
        });
        cache.insert(&host, &answer, true, None, now);
    }
    let after = resident_bytes();
    assert_eq!(cache.len(), hosts);
    eprintln!(
        "{} bytes per host ({} MiB for {hosts} hosts); the cache counts {} bytes per host",
        (after - before) / hosts as u64,
        (after - before) >> 20,
        cache.heap_bytes() / hosts
    );
    // What a worker's periodic give-back returns (the tables the cache outgrew): both
    // allocators' free pages.
    #[allow(unsafe_code)]
    // SAFETY: both only release memory their allocator holds free; no live pointer is touched.
    unsafe {
        libmimalloc_sys::mi_collect(true);
        libc::malloc_trim(0);
    }
    let collected = resident_bytes();
    eprintln!(
        "{} bytes per host once the allocators' free pages are given back",
        (collected - before) / hosts as u64,
    );
}

/// Nanoseconds per cache hit with 1M hosts cached: always one host, then uniformly random hosts
/// (the scale benchmark's two ends: one hot entry, or one cold entry per lookup).
/// `cargo test --release --lib hit_nanoseconds -- --ignored --nocapture`
#[test]
#[ignore = "measurement, not a test"]
fn hit_nanoseconds() {
    const HOSTS: usize = 1_000_000;
    const LOOKUPS: usize = 2_000_000;
    let now = Instant::now();
    let hosts: Vec<String> = (0..HOSTS).map(|n| format!("h{n}.scale.local")).collect();
    let mut cache = HostCache::new("", HOSTS, None, Footprint::default());
    for (n, host) in hosts.iter().enumerate() {
        cache.insert(
            host,
            &answer(host, &format!("app{}", n % 1_000)),
            true,
            None,
            now,
        );
    }
    // A fixed pseudo-random order (xorshift), the same in every run.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let order: Vec<usize> = (0..LOOKUPS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % HOSTS as u64) as usize
        })
        .collect();
    // The name is written into one reused buffer, hot as a request's Host field is.
    let mut host = String::new();
    for (name, pick) in [
        ("one", false),
        ("uniform", true),
        ("one", false),
        ("uniform", true),
    ] {
        let started = Instant::now();
        let mut found = 0;
        for &n in &order {
            host.clear();
            write!(host, "h{}.scale.local", if pick { n } else { 1 }).unwrap();
            found += usize::from(cache.get(&host, now).is_some());
        }
        let elapsed = started.elapsed();
        assert_eq!(found, LOOKUPS);
        eprintln!(
            "{name}: {:.0} ns per hit",
            elapsed.as_nanos() as f64 / LOOKUPS as f64
        );
    }
}

#[test]
fn hosts_handed_over_are_the_recently_hit_first_and_bounded() {
    let all = ["a.test", "b.test", "c.test", "d.test"];
    let mut cache = filled("", &all);
    let now = Instant::now();
    assert!(cache.get("c.test", now).is_some());
    assert!(cache.get("a.test", now).is_some());
    let hosts = cache.hosts(10);
    assert_eq!(hosts[..2], ["a.test", "c.test"]);
    assert_eq!(hosts.len(), 4);
    assert_eq!(cache.hosts(3).len(), 3);
    assert_eq!(cache.hosts(1), ["a.test"]);
}
