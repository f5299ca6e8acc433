//! Hipache's own functional suite (`test/functional/test_simple.py`, `test_domain_matching.py`),
//! one table row per case, one harness. Backends answer with the status their row gives them.
//! Its other wildcard rows are a pure decision, asserted once in `host_keys`' unit tests;
//! `wildcard_priority` stays here to prove the binary routes by it.

use crate::support::{Backend, Body, Config, Hipache, RedisServer, Request};

/// One frontend: its host and the status each of its backends answers with.
type Frontend = (&'static str, &'static [u16]);

/// One request: method, Host, body, expected status.
struct Step {
    method: &'static str,
    host: &'static str,
    body: &'static [&'static [u8]],
    chunked: bool,
    status: u16,
}

const fn get(host: &'static str, status: u16) -> Step {
    Step {
        method: "GET",
        host,
        body: &[],
        chunked: false,
        status,
    }
}

const fn with_body(
    method: &'static str,
    host: &'static str,
    body: &'static [&'static [u8]],
) -> Step {
    Step {
        method,
        host,
        body,
        chunked: false,
        status: 200,
    }
}

const HELLO: &[u8] = b"hello, hipache";

/// Runs one case: registers the frontends, sends the steps in order, checks each status, and
/// checks that every request a backend answered reached it with its method and body length.
fn run(frontends: &[Frontend], steps: &[Step]) {
    let redis = RedisServer::start();
    let mut backends = Vec::new();
    for (host, statuses) in frontends {
        let mut urls = Vec::new();
        for status in *statuses {
            let backend = Backend::builder()
                .name(&format!("{host}#{}", backends.len()))
                .status(*status)
                .start();
            urls.push(backend.url());
            backends.push(backend);
        }
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        redis.frontend(host, host, &urls);
    }
    let hipache = Hipache::start(Config::redis(&redis));

    for (number, step) in steps.iter().enumerate() {
        // Marks this step's request, so that a backend's record of an earlier step cannot pass
        // for this one.
        let mark = number.to_string();
        let body = match (step.body, step.chunked) {
            ([], _) => Body::Empty,
            (chunks, true) => Body::Chunked(chunks.iter().map(|c| c.to_vec()).collect()),
            (chunks, false) => Body::Bytes(chunks.concat()),
        };
        let request = Request::new(step.method, step.host, "/")
            .header("X-Debug", "true")
            .header("X-Step", &mark)
            .body(body.clone());
        let response = hipache.send(&request);
        assert_eq!(
            response.status,
            step.status,
            "{} Host: {}; body: {}",
            step.method,
            step.host,
            response.text()
        );
        if step.status != 400 {
            let seen: Vec<_> = backends.iter().flat_map(Backend::requests).collect();
            assert!(
                seen.iter().any(|s| s.method == step.method
                    && s.header("host") == Some(step.host)
                    && s.header("x-step") == Some(mark.as_str())
                    && s.body_len == body.len()),
                "no backend saw step {mark}: {} Host: {} with a {}-byte body; seen: {seen:?}",
                step.method,
                step.host,
                body.len()
            );
        }
    }
}

/// One `#[test]` per row, named after Hipache's test.
macro_rules! t {
    ($name:ident, frontends: [$($frontend:expr),* $(,)?], steps: [$($step:expr),* $(,)?]) => {
        #[test]
        fn $name() {
            run(&[$($frontend),*], &[$($step),*]);
        }
    };
}

t!(simple, frontends: [("foobar", &[200])], steps: [get("foobar", 200)]);

t!(
    multiple_backends_all_answer,
    frontends: [("foobar", &[200, 200, 200])],
    steps: [
        get("foobar", 200), get("foobar", 200), get("foobar", 200), get("foobar", 200),
        get("foobar", 200), get("foobar", 200), get("foobar", 200), get("foobar", 200),
        get("foobar", 200), get("foobar", 200),
    ]
);

t!(not_found_answers_400, frontends: [], steps: [get("foobar", 400)]);

t!(naked_domain, frontends: [("foo.bar", &[200])], steps: [get("foo.bar", 200)]);

t!(
    wildcard_priority,
    frontends: [
        ("*.foo.bar", &[200]),
        ("foo.bar", &[201]),
        ("pipo.foo.bar", &[202]),
        ("*.baz.foo.bar", &[203]),
    ],
    steps: [
        get("test.foo.bar", 200),
        get("foo.bar", 201),
        get("pipo.foo.bar", 202),
        get("qux.baz.foo.bar", 203),
        get("qux.bix.foo.bar", 200),
        get("qux.bix.bar.foo", 400),
    ]
);

t!(
    every_method_reaches_the_backend_with_its_body,
    frontends: [("methods.local", &[200])],
    steps: [
        get("methods.local", 200),
        Step { method: "HEAD", ..get("methods.local", 200) },
        with_body("POST", "methods.local", &[HELLO]),
        with_body("PUT", "methods.local", &[HELLO]),
        with_body("DELETE", "methods.local", &[HELLO]),
        with_body("PATCH", "methods.local", &[HELLO]),
        with_body("OPTIONS", "methods.local", &[HELLO]),
    ]
);

t!(
    chunked_upload_reaches_the_backend,
    frontends: [("chunked.local", &[200])],
    steps: [Step {
        method: "POST",
        host: "chunked.local",
        body: &[b"first chunk, ", b"second chunk, ", b"and the last one"],
        chunked: true,
        status: 200,
    }]
);

/// `test_one_failing`: the backend answering 502 is marked dead the first time it is picked
/// (its 502 still reaches the client); from then on every request reaches the healthy one.
#[test]
fn one_failing_backend_leaves_the_rotation() {
    let redis = RedisServer::start();
    let failing = Backend::builder().name("failing").status(502).start();
    let healthy = Backend::named("healthy");
    redis.frontend("foobar", "foobar", &[&failing.url(), &healthy.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    let mut saw_502 = false;
    for _ in 0..50 {
        let status = hipache.get("foobar", "/").status;
        assert!(status == 200 || status == 502, "unexpected status {status}");
        if status == 502 {
            saw_502 = true;
            break;
        }
    }
    assert!(saw_502, "50 random picks never reached the failing backend");
    for _ in 0..10 {
        assert_eq!(hipache.get("foobar", "/").status, 200);
    }
    redis.wait_for_set("dead:foobar", &["0"]);
}
