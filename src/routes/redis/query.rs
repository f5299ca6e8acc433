//! The wire side of the Redis source (pure): the replies of a lookup's reads, and the dead-mark
//! transaction (Hipache's traffic).
//!
//! A miss reads, in one pipeline without MULTI on one server (one pipeline per node in a
//! cluster), a `LRANGE` per candidate, `SMEMBERS dead:<host>`, `HGETALL state:<host>` and, when
//! asked, a `PTTL` per key: which candidate matches is known only from the replies, so every
//! candidate's TTL is read, and the shortest of those that expire is kept (a candidate after the
//! match can only make the answer expire sooner). Measured with callgrind, Redis runs a fifth
//! fewer instructions for it than for the same reads in MULTI/EXEC, and two fifths fewer than
//! for a Lua script reading only what the answer needs: each command queued by MULTI costs a
//! reply more, and a script's call overhead and reply conversions cost more than the reads it
//! saves.

use std::sync::Arc;
use std::time::Duration;

use redis::{ParsingError, Value};

use super::super::{Backend, BackendUrlError, Frontend, Held, DEAD_PREFIX};
use super::Answer;

/// What one lookup read from Redis.
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

/// A hash's field and value.
pub(super) type Pair = (Vec<u8>, Vec<u8>);

/// Reads the replies of a lookup's commands, in the order they are sent: a `LRANGE` per
/// candidate, `SMEMBERS`, `HGETALL`, then with `ttls` a `PTTL` per key.
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
