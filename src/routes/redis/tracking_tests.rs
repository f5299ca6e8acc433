//! Real-Redis tests of the lookup cache: every kind of write invalidates it, it survives neither a
//! restart nor a Redis that refuses tracking, a hit costs Redis nothing, and concurrent misses for
//! one host cost one lookup.

use std::time::{Duration, Instant};

use super::tests::{id_of, run, RedisServer, DEADLINE, LIMITS, TTL};
use super::*;

type Conn = redis::aio::MultiplexedConnection;

/// Lookups Redis has run so far: each reads its host's dead set with one `SMEMBERS`.
async fn lookups(conn: &mut Conn) -> u64 {
    let info: String = run(conn, &["INFO", "commandstats"]).await;
    let calls = |command: &str| -> u64 {
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    };
    calls("smembers")
}

async fn wait_for_tracking(routes: &RedisRoutes, on: bool) {
    let deadline = Instant::now() + DEADLINE;
    while routes.shared.tracking.is_on() != on {
        assert!(Instant::now() < deadline, "tracking never became {on}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Backend count and dead set of `host`, `None` without a frontend.
async fn state(routes: &RedisRoutes, host: &str) -> Option<(usize, Vec<usize>)> {
    let lookup = routes.lookup(host).await.unwrap()?;
    Some((lookup.frontend.backends.len(), lookup.dead))
}

/// Looks `host` up twice and checks the second answer came from the cache.
async fn cached_state(
    routes: &RedisRoutes,
    conn: &mut Conn,
    host: &str,
) -> Option<(usize, Vec<usize>)> {
    let first = state(routes, host).await;
    let before = lookups(conn).await;
    assert_eq!(state(routes, host).await, first, "cached answer differs");
    assert_eq!(lookups(conn).await, before, "second lookup reached redis");
    first
}

#[tokio::test]
async fn every_write_to_a_watched_key_invalidates_the_cached_lookup() {
    let redis = RedisServer::start(&[]).await;
    let mut conn = redis.connection(0).await;
    let url = RedisUrl {
        prefix: "p:".into(),
        ..redis.url("")
    };
    let routes = RedisRoutes::new(&url, &url, TTL, LIMITS, false, Footprint::default());
    wait_for_tracking(&routes, true).await;
    let c = &mut conn;
    run::<()>(c, &["RPUSH", "p:frontend:a.test", "a", "http://h:1"]).await;
    assert_eq!(cached_state(&routes, c, "a.test").await, Some((1, vec![])));

    run::<()>(c, &["RPUSH", "p:frontend:a.test", "http://h:2"]).await;
    assert_eq!(cached_state(&routes, c, "a.test").await, Some((2, vec![])));
    run::<()>(c, &["LREM", "p:frontend:a.test", "0", "http://h:2"]).await;
    assert_eq!(cached_state(&routes, c, "a.test").await, Some((1, vec![])));
    run::<()>(c, &["SADD", "p:dead:a.test", "0"]).await;
    assert_eq!(cached_state(&routes, c, "a.test").await, Some((1, vec![0])));

    // Expiry: the answer must not outlive the key, whether Redis's push or our PTTL comes first.
    run::<()>(c, &["PEXPIRE", "p:dead:a.test", "300"]).await;
    assert_eq!(cached_state(&routes, c, "a.test").await, Some((1, vec![0])));
    let expired = Instant::now() + Duration::from_millis(300);
    let deadline = Instant::now() + DEADLINE;
    while state(&routes, "a.test").await != Some((1, vec![])) {
        assert!(Instant::now() < deadline, "expired dead set still served");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(Instant::now() >= expired - Duration::from_millis(50));

    // Wildcards: a change of `*.test` reaches a host cached through it.
    run::<()>(c, &["RPUSH", "p:frontend:*.test", "wild", "http://h:3"]).await;
    assert_eq!(cached_state(&routes, c, "b.test").await, Some((1, vec![])));
    run::<()>(c, &["DEL", "p:frontend:*.test"]).await;
    assert_eq!(cached_state(&routes, c, "b.test").await, None);
    // A cached "no frontend" is dropped when the frontend appears.
    run::<()>(c, &["RPUSH", "p:frontend:b.test", "b", "http://h:4"]).await;
    assert_eq!(id_of(&routes, "b.test").await.as_deref(), Some("b"));

    run::<()>(c, &["DEL", "p:frontend:a.test"]).await;
    assert_eq!(cached_state(&routes, c, "a.test").await, None);
    run::<()>(c, &["RPUSH", "p:frontend:a.test", "again", "http://h:1"]).await;
    assert_eq!(id_of(&routes, "a.test").await.as_deref(), Some("again"));
    run::<()>(c, &["FLUSHALL"]).await;
    // Redis queues a flush's push while it runs the command, so unlike a key's push (queued after
    // the command, written first) it is written after the writer's reply: the proxy sees it
    // microseconds after the acknowledgement (module doc of `tracking`), and it then applies.
    let deadline = Instant::now() + DEADLINE;
    while state(&routes, "a.test").await.is_some() {
        assert!(Instant::now() < deadline, "flushed route still served");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(cached_state(&routes, c, "a.test").await, None);
    assert_eq!(cached_state(&routes, c, "b.test").await, None);
}

#[tokio::test]
async fn own_dead_marks_apply_at_once_to_cached_answers() {
    let redis = RedisServer::start(&[]).await;
    let mut conn = redis.connection(0).await;
    let url = redis.url("");
    let routes = RedisRoutes::new(&url, &url, TTL, LIMITS, false, Footprint::default());
    wait_for_tracking(&routes, true).await;
    run::<()>(
        &mut conn,
        &["RPUSH", "frontend:m.test", "m", "http://h:1", "http://h:2"],
    )
    .await;
    assert_eq!(
        cached_state(&routes, &mut conn, "m.test").await,
        Some((2, vec![]))
    );
    let lookup = routes.lookup("m.test").await.unwrap().unwrap();
    routes.mark_dead("m.test", &lookup.frontend, &lookup.frontend.backends[1]);
    assert_eq!(state(&routes, "m.test").await, Some((2, vec![1])));
}

#[tokio::test]
async fn restart_drops_the_cache_and_tracking_resumes() {
    let mut redis = RedisServer::start(&[]).await;
    let mut conn = redis.connection(0).await;
    run::<()>(
        &mut conn,
        &["RPUSH", "frontend:r.test", "before", "http://h:1"],
    )
    .await;
    let url = redis.url("");
    let routes = RedisRoutes::new(&url, &url, TTL, LIMITS, false, Footprint::default());
    wait_for_tracking(&routes, true).await;
    assert_eq!(id_of(&routes, "r.test").await.as_deref(), Some("before"));

    redis.kill();
    wait_for_tracking(&routes, false).await;
    let restarted = RedisServer::start_on(redis.port, &[])
        .await
        .expect("port taken before restart");
    let mut conn = restarted.connection(0).await;
    run::<()>(
        &mut conn,
        &["RPUSH", "frontend:r.test", "after", "http://h:1"],
    )
    .await;
    // Until the read connection is back, stale-if-error serves the last known answer; from the
    // first fresh answer on, every answer is fresh, whether tracking is back yet or not.
    let deadline = Instant::now() + DEADLINE;
    let mut recovered = false;
    loop {
        let id = id_of(&routes, "r.test").await;
        recovered |= id.as_deref() == Some("after");
        if recovered {
            assert_eq!(id.as_deref(), Some("after"));
            if routes.shared.tracking.is_on() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "tracking never resumed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        cached_state(&routes, &mut conn, "r.test").await,
        Some((1, vec![]))
    );
    run::<()>(&mut conn, &["LSET", "frontend:r.test", "0", "later"]).await;
    assert_eq!(id_of(&routes, "r.test").await.as_deref(), Some("later"));
}

#[tokio::test]
async fn redis_refusing_tracking_is_queried_per_request() {
    let redis = RedisServer::start(&["--rename-command", "CLIENT", ""]).await;
    let mut conn = redis.connection(0).await;
    run::<()>(
        &mut conn,
        &["RPUSH", "frontend:n.test", "one", "http://h:1"],
    )
    .await;
    let url = redis.url("");
    let routes = RedisRoutes::new(&url, &url, TTL, LIMITS, false, Footprint::default());
    for expected in ["one", "two", "three"] {
        run::<()>(&mut conn, &["LSET", "frontend:n.test", "0", expected]).await;
        assert_eq!(id_of(&routes, "n.test").await.as_deref(), Some(expected));
        let before = lookups(&mut conn).await;
        assert_eq!(id_of(&routes, "n.test").await.as_deref(), Some(expected));
        assert_eq!(lookups(&mut conn).await, before + 1);
    }
    assert!(!routes.shared.tracking.is_on());
}

#[tokio::test]
async fn concurrent_cold_misses_for_one_host_send_one_lookup() {
    let redis = RedisServer::start(&[]).await;
    let mut conn = redis.connection(0).await;
    for host in ["a.test", "b.test"] {
        run::<()>(
            &mut conn,
            &["RPUSH", &format!("frontend:{host}"), host, "http://h:1"],
        )
        .await;
    }
    let url = redis.url("");
    let routes = RedisRoutes::new(&url, &url, TTL, LIMITS, false, Footprint::default());
    wait_for_tracking(&routes, true).await;
    let before = lookups(&mut conn).await;
    let requests: Vec<_> = (0..20)
        .map(|n| {
            let (routes, host) = (routes.clone(), ["a.test", "b.test"][n % 2]);
            tokio::spawn(async move { (host, id_of(&routes, host).await) })
        })
        .collect();
    for lookup in requests {
        let (host, id) = lookup.await.unwrap();
        assert_eq!(id.as_deref(), Some(host));
    }
    assert_eq!(
        lookups(&mut conn).await - before,
        2,
        "one lookup per host reached redis"
    );
    assert_eq!(routes.shared.flights.len(), 0);
}

/// The tightest form of the race: the lookup follows the write's acknowledgement in the same
/// process, with no HTTP hop in between.
#[tokio::test]
async fn lookup_right_after_the_acknowledgement_is_fresh() {
    let redis = RedisServer::start(&[]).await;
    let mut conn = redis.connection(0).await;
    run::<()>(
        &mut conn,
        &["RPUSH", "frontend:race.test", "0", "http://h:1"],
    )
    .await;
    let url = redis.url("");
    let routes = RedisRoutes::new(&url, &url, TTL, LIMITS, false, Footprint::default());
    wait_for_tracking(&routes, true).await;
    for i in 1..=5_000 {
        let id = i.to_string();
        run::<()>(&mut conn, &["LSET", "frontend:race.test", "0", &id]).await;
        assert_eq!(
            id_of(&routes, "race.test").await,
            Some(id.clone()),
            "write {i}"
        );
        assert_eq!(
            id_of(&routes, "race.test").await,
            Some(id),
            "write {i}, cached"
        );
    }
}

/// Our liveness ping and a write read by Redis in one event-loop turn: the writer's reply goes out
/// first and the write's push behind the `PONG` (module doc of `tracking`). So while a ping is
/// unanswered a lookup reads Redis, even for a cached host; caching resumes with the `PONG`.
#[tokio::test]
async fn no_cached_answer_is_served_while_a_ping_is_unanswered() {
    let redis = RedisServer::start(&[]).await;
    let mut conn = redis.connection(0).await;
    let mut sleeper = redis.connection(0).await;
    let url = redis.url("");
    let routes = RedisRoutes::new(&url, &url, TTL, LIMITS, false, Footprint::default());
    wait_for_tracking(&routes, true).await;
    run::<()>(
        &mut conn,
        &["RPUSH", "frontend:ping.test", "p", "http://h:1"],
    )
    .await;
    let cached = cached_state(&routes, &mut conn, "ping.test").await;
    assert_eq!(cached, Some((1, vec![])));
    let before = lookups(&mut conn).await;
    // Redis holds every client's commands for 200 ms from the moment it answers `OK`, so the
    // `PONG` cannot come back before the lookup.
    run::<()>(&mut sleeper, &["CLIENT", "PAUSE", "200", "ALL"]).await;
    routes.shared.tracking.ping_now();
    assert_eq!(state(&routes, "ping.test").await, cached);
    assert_eq!(
        lookups(&mut conn).await,
        before + 1,
        "the lookup during the ping read redis"
    );
    wait_for_tracking(&routes, true).await;
    assert_eq!(cached_state(&routes, &mut conn, "ping.test").await, cached);
}

/// Time per lookup, cached and per request (debug build: compare the ratio, not the figures).
/// `cargo test --lib lookup_cost -- --ignored --nocapture`
#[tokio::test]
#[ignore = "measurement, not a test"]
async fn lookup_cost() {
    let tracked = RedisServer::start(&[]).await;
    let untracked = RedisServer::start(&["--rename-command", "CLIENT", ""]).await;
    let mut per_lookup = Vec::new();
    for (redis, count) in [(&tracked, 100_000), (&untracked, 10_000)] {
        let mut conn = redis.connection(0).await;
        run::<()>(
            &mut conn,
            &["RPUSH", "frontend:www.example.com", "w", "http://h:1"],
        )
        .await;
        let url = redis.url("");
        let routes = RedisRoutes::new(&url, &url, TTL, LIMITS, false, Footprint::default());
        if std::ptr::eq(redis, &tracked) {
            wait_for_tracking(&routes, true).await;
        }
        routes.lookup("www.example.com").await.unwrap();
        let start = Instant::now();
        for _ in 0..count {
            routes.lookup("www.example.com").await.unwrap();
        }
        per_lookup.push(start.elapsed() / count);
    }
    eprintln!(
        "lookup: cached {:?}, per request {:?}, ratio {:.0}x",
        per_lookup[0],
        per_lookup[1],
        per_lookup[1].as_secs_f64() / per_lookup[0].as_secs_f64()
    );
}
