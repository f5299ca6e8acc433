//! The wire side of the Redis source (pure): reading the lookup transaction's replies and
//! building the dead-mark transaction, in Hipache's exact traffic.

use std::sync::Arc;
use std::time::Duration;

use super::super::{Backend, BackendUrlError, Frontend, Held, DEAD_PREFIX};
use super::Answer;

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

/// The first candidate with a non-empty list wins (pure). `replies` are the LRANGE results in
/// candidate order; `dead` the SMEMBERS result, whose non-integers are ignored; `states` the
/// HGETALL of `state:<host>`, resolved against the frontend's backends ([`Held::resolve`]).
pub(super) fn answer(
    candidates: &[String],
    replies: Vec<Vec<Vec<u8>>>,
    dead: &[Vec<u8>],
    states: &[(Vec<u8>, Vec<u8>)],
    mut on_bad_url: impl FnMut(&str, &str, BackendUrlError),
) -> Option<Answer> {
    let (key, list) = candidates
        .iter()
        .zip(replies)
        .find(|(_, list)| !list.is_empty())?;
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
pub(super) fn shortest_ttl(pttls: Vec<redis::Value>) -> Option<Duration> {
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

    fn bytes(items: &[&str]) -> Vec<Vec<u8>> {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn first_non_empty_list_wins_and_garbage_dead_members_are_ignored() {
        let candidates = crate::host_keys::candidates("a.example.com");
        let replies = vec![
            vec![],
            bytes(&["wild", "http://h:1", "bogus", "http://h:3"]),
            bytes(&["com"]),
            vec![],
        ];
        let mut bad = Vec::new();
        let found = answer(
            &candidates,
            replies,
            &bytes(&["2", "x", " 0", "-1"]),
            &[(b"http://h:3/".to_vec(), b"drain".to_vec())],
            |k, e, _| bad.push(format!("{k} {e}")),
        )
        .unwrap();
        assert_eq!(found.frontend.key, "*.example.com");
        assert_eq!(&*found.frontend.id, "wild");
        assert_eq!(found.frontend.backend_count, 3);
        assert_eq!(found.dead, [2, 0]);
        assert_eq!(found.held.draining, [2]);
        assert_eq!(bad, ["*.example.com bogus"]);
        assert!(answer(&candidates, vec![vec![]; 4], &[], &[], |_, _, _| {}).is_none());
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
