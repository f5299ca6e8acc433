//! The wire side of the Redis source (pure): the lookup script and its reply, the replies of the
//! separate lookup commands a cluster runs, and the dead-mark transaction (Hipache's traffic).
//!
//! A miss is one `EVALSHA` of [`LOOKUP_SCRIPT`] (`lookup.lua`), which reads the candidates' lists
//! until one is not empty, then only for a match `dead:<host>`, `state:<host>` and, when asked,
//! their remaining TTLs, and answers in one reply. Hipache sent six commands per lookup, our
//! transaction had grown to fourteen (MULTI, a LRANGE per candidate, SMEMBERS, HGETALL, a PTTL
//! per key, EXEC), each parsed and queued by Redis; the script is one command and reads only
//! what the answer needs. Every key is passed as `KEYS` (the driver's prefix included), never
//! built inside the script.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::{ParsingError, Value};

use super::super::{Backend, BackendUrlError, Frontend, Held, DEAD_PREFIX};
use super::Answer;
use crate::crypto::digest;

/// The lookup script, loaded with `SCRIPT LOAD` on each connection and run with `EVALSHA`.
pub(crate) const LOOKUP_SCRIPT: &str = include_str!("lookup.lua");

/// The SHA1 of [`LOOKUP_SCRIPT`] in hex, the name `EVALSHA` runs it by.
pub(crate) fn lookup_sha() -> &'static str {
    static SHA: OnceLock<String> = OnceLock::new();
    SHA.get_or_init(|| sha1_hex(LOOKUP_SCRIPT))
}

fn sha1_hex(text: &str) -> String {
    let sum = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, text.as_bytes());
    sum.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What one lookup read from Redis, by the script or by separate commands.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Replies {
    /// The first candidate whose list is not empty: its position among the candidates, and
    /// the list. `None`: no frontend for the host.
    pub(super) matched: Option<(usize, Vec<Vec<u8>>)>,
    /// The members of `dead:<host>`.
    pub(super) dead: Vec<Vec<u8>>,
    /// The field/value pairs of `state:<host>`.
    pub(super) states: Vec<Pair>,
    /// The shortest remaining TTL of the keys the answer was read from, when asked and any
    /// expires: after it the answer must not be served from the cache.
    pub(super) ttl: Option<Duration>,
}

/// Reads the reply of [`LOOKUP_SCRIPT`] run over `candidates` frontend keys.
pub(super) fn script_replies(value: Value, candidates: usize) -> Result<Replies, ParsingError> {
    let Value::Array(items) = value else {
        return Err("lookup script: not an array".into());
    };
    let mut items = items.into_iter();
    let matched: usize = redis::from_redis_value(items.next().unwrap_or(Value::Nil))?;
    if matched == 0 {
        return Ok(Replies::default());
    }
    if matched > candidates {
        return Err("lookup script: no such candidate".into());
    }
    let mut next = || items.next().ok_or("lookup script: reply too short");
    let list: Vec<Vec<u8>> = redis::from_redis_value(next()?)?;
    let dead = redis::from_redis_value(next()?)?;
    let states = pairs(redis::from_redis_value(next()?)?)?;
    let ttl: i64 = redis::from_redis_value(next()?)?;
    Ok(Replies {
        matched: Some((matched - 1, list)),
        dead,
        states,
        ttl: u64::try_from(ttl).ok().map(Duration::from_millis),
    })
}

/// A hash's field and value.
pub(super) type Pair = (Vec<u8>, Vec<u8>);

/// Field/value pairs from a flat `HGETALL` reply.
fn pairs(flat: Vec<Vec<u8>>) -> Result<Vec<Pair>, ParsingError> {
    if flat.len() % 2 != 0 {
        return Err("lookup script: odd hash reply".into());
    }
    let mut flat = flat.into_iter();
    Ok(std::iter::from_fn(|| Some((flat.next()?, flat.next()?))).collect())
}

/// Reads the replies of the separate lookup commands, in the order a cluster runs them: a
/// `LRANGE` per candidate, `SMEMBERS`, `HGETALL`, then with `ttls` a `PTTL` per key.
pub(super) fn command_replies(
    mut values: Vec<Value>,
    candidates: usize,
    ttls: bool,
) -> Result<Replies, ParsingError> {
    let ttl = if ttls {
        shortest_ttl(values.split_off((candidates + 2).min(values.len())))
    } else {
        None
    };
    let states = match values.pop() {
        Some(value) => redis::from_redis_value(value)?,
        None => Vec::new(),
    };
    let dead = match values.pop() {
        Some(value) => redis::from_redis_value(value)?,
        None => Vec::new(),
    };
    let mut matched = None;
    for (at, value) in values.into_iter().enumerate() {
        let list: Vec<Vec<u8>> = redis::from_redis_value(value)?;
        if !list.is_empty() {
            matched = Some((at, list));
            break;
        }
    }
    Ok(Replies {
        matched,
        dead,
        states,
        ttl,
    })
}

/// `MULTI; [SADD dead:<host> <index>; EXPIRE dead:<host> <ttl>;] PUBLISH dead <message>; EXEC`,
/// the dead-set writes only when `ttl` is given (passive checks on).
pub(crate) fn mark_pipeline(
    prefix: &str,
    host: &str,
    backend: &Backend,
    backend_count: usize,
    ttl: Option<Duration>,
) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic();
    if let Some(ttl) = ttl {
        let key = format!("{prefix}{DEAD_PREFIX}{host}");
        // EXPIRE 0 would delete the set at once; a sub-second TTL still means "briefly dead".
        let secs = ttl.as_secs().max(1);
        pipe.sadd(&key, backend.index)
            .ignore()
            .expire(&key, secs as i64)
            .ignore();
    }
    let message = format!(
        "{host};{};{};{backend_count}",
        backend.url.as_str(),
        backend.index
    );
    pipe.publish("dead", message).ignore();
    pipe
}

/// The answer `replies` give for a host with these `candidates` (pure): the matched list as the
/// frontend; the dead members, whose non-integers are ignored; the states, resolved against the
/// frontend's backends ([`Held::resolve`]).
pub(super) fn answer(
    candidates: &[String],
    replies: &Replies,
    mut on_bad_url: impl FnMut(&str, &str, BackendUrlError),
) -> Option<Answer> {
    let Replies {
        matched,
        dead,
        states,
        ..
    } = replies;
    let (at, list) = matched.as_ref()?;
    let key = candidates.get(*at)?;
    let list: Vec<String> = list
        .iter()
        .map(|entry| String::from_utf8_lossy(entry).into_owned())
        .collect();
    let frontend = Frontend::from_list(key, &list, |entry, error| on_bad_url(key, entry, error))?;
    let dead = dead
        .iter()
        .filter_map(|member| std::str::from_utf8(member).ok()?.trim().parse().ok())
        .collect();
    let states = states.iter().filter_map(|(url, word)| {
        Some((
            std::str::from_utf8(url).ok()?,
            std::str::from_utf8(word).ok()?,
        ))
    });
    let held = Held::resolve(&frontend.backends, states);
    Some(Answer {
        frontend: Arc::new(frontend),
        dead,
        held,
    })
}

/// The shortest positive PTTL (-1: no expiry, -2: no key; both mean "does not expire").
fn shortest_ttl(pttls: Vec<redis::Value>) -> Option<Duration> {
    pttls
        .into_iter()
        .filter_map(|value| redis::from_redis_value::<i64>(value).ok())
        .filter_map(|ms| u64::try_from(ms).ok())
        .min()
        .map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(items: &[&str]) -> Value {
        Value::Array(
            items
                .iter()
                .map(|s| Value::BulkString(s.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn first_non_empty_list_wins_and_garbage_dead_members_are_ignored() {
        let candidates = crate::host_keys::candidates("a.example.com");
        let values = vec![
            data(&[]),
            data(&["wild", "http://h:1", "bogus", "http://h:3"]),
            data(&["com"]),
            data(&[]),
            data(&["2", "x", " 0", "-1"]),
            data(&["http://h:3/", "drain"]),
        ];
        let replies = command_replies(values, candidates.len(), false).unwrap();
        let mut bad = Vec::new();
        let found = answer(&candidates, &replies, |k, e, _| {
            bad.push(format!("{k} {e}"))
        })
        .unwrap();
        assert_eq!(found.frontend.key, "*.example.com");
        assert_eq!(&*found.frontend.id, "wild");
        assert_eq!(found.frontend.backend_count, 3);
        assert_eq!(found.dead, [2, 0]);
        assert_eq!(found.held.draining, [2]);
        assert_eq!(bad, ["*.example.com bogus"]);
        let none = command_replies(vec![data(&[]); 6], 4, false).unwrap();
        assert!(answer(&candidates, &none, |_, _, _| {}).is_none());
    }

    #[test]
    fn command_replies_keep_the_shortest_positive_ttl() {
        let mut values = vec![data(&["a", "http://h:1"]), data(&[]), data(&[])];
        values.extend([-2, 5_000, -1, 1_200].map(Value::Int));
        let replies = command_replies(values, 1, true).unwrap();
        assert_eq!(replies.ttl, Some(Duration::from_millis(1_200)));
        assert_eq!(
            replies.matched,
            Some((0, vec![b"a".to_vec(), b"http://h:1".to_vec()]))
        );
    }

    #[test]
    fn script_reply_names_the_matched_candidate_with_its_dead_set_state_and_ttl() {
        let candidates = crate::host_keys::candidates("a.example.com");
        let reply = Value::Array(vec![
            Value::Int(2),
            data(&["wild", "http://h:1", "http://h:2"]),
            data(&["1"]),
            data(&["http://h:2/", "disable"]),
            Value::Int(2_500),
        ]);
        let replies = script_replies(reply, candidates.len()).unwrap();
        assert_eq!(replies.ttl, Some(Duration::from_millis(2_500)));
        let found = answer(&candidates, &replies, |_, _, _| {}).unwrap();
        assert_eq!(found.frontend.key, "*.example.com");
        assert_eq!(found.frontend.backend_count, 2);
        assert_eq!(found.dead, [1]);
        assert_eq!(found.held.disabled, [1]);
    }

    #[test]
    fn script_reply_without_a_match_or_a_ttl() {
        let none = script_replies(Value::Array(vec![Value::Int(0)]), 4).unwrap();
        assert_eq!(none, Replies::default());
        let reply = Value::Array(vec![
            Value::Int(1),
            data(&["x", "http://h:1"]),
            data(&[]),
            data(&[]),
            Value::Int(-1),
        ]);
        let replies = script_replies(reply, 4).unwrap();
        assert_eq!(replies.ttl, None);
        assert_eq!(replies.matched.map(|(at, _)| at), Some(0));
    }

    #[test]
    fn malformed_script_replies_are_errors() {
        let short = Value::Array(vec![Value::Int(1), data(&["x", "http://h:1"])]);
        let odd_hash = Value::Array(vec![
            Value::Int(1),
            data(&["x"]),
            data(&[]),
            data(&["f"]),
            Value::Int(-1),
        ]);
        let beyond = Value::Array(vec![
            Value::Int(5),
            data(&["x"]),
            data(&[]),
            data(&[]),
            Value::Int(-1),
        ]);
        for reply in [Value::Int(1), Value::Nil, short, odd_hash, beyond] {
            assert!(script_replies(reply.clone(), 4).is_err(), "{reply:?}");
        }
    }

    #[test]
    fn the_script_is_named_by_its_sha1() {
        // `echo -n abc | sha1sum`
        assert_eq!(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(lookup_sha().len(), 40);
    }

    #[test]
    fn mark_pipeline_matches_hipache_traffic() {
        let backend = Backend {
            index: 0,
            url: super::super::super::BackendUrl::parse("http://127.0.0.1:39947").unwrap(),
        };
        let pipe = mark_pipeline(
            "p:",
            "pub.local",
            &backend,
            2,
            Some(Duration::from_secs(30)),
        );
        let packed = String::from_utf8(pipe.get_packed_pipeline()).unwrap();
        for part in [
            "MULTI",
            "SADD",
            "p:dead:pub.local",
            "EXPIRE",
            "30",
            "PUBLISH",
            "EXEC",
        ] {
            assert!(packed.contains(part), "{part} missing from {packed:?}");
        }
        assert!(packed.contains("pub.local;http://127.0.0.1:39947/;0;2"));
        let packed =
            String::from_utf8(mark_pipeline("", "h", &backend, 2, None).get_packed_pipeline())
                .unwrap();
        assert!(
            !packed.contains("SADD") && !packed.contains("EXPIRE") && packed.contains("PUBLISH")
        );
    }
}
