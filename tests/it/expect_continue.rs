//! `Expect: 100-continue` end to end: the backend decides whether it wants the body, its own
//! `100 Continue` reaches the client, a refusal reaches a client that sent nothing, and a body
//! none of which has left yet can still go to another backend. Also: an interim answer in the
//! middle of an upload does not stop the upload.

use crate::support::raw_backend::{
    answer, assert_answer, ok, pattern, read_head, RawBackend, Wire,
};
use crate::support::{Config, Hipache, RedisServer};

/// A backend's own `100`, told apart from one the proxy would make by its field.
const BACKENDS_CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\nX-Continue-From: backend\r\n\r\n";

/// A backend that asks for each body with its own `100` and says how many bytes came.
fn counting_backend() -> RawBackend {
    RawBackend::start(|peer| {
        while let Some(request) = peer.request_meeting_expect(BACKENDS_CONTINUE) {
            peer.write(&answer(
                "201 Created",
                &format!("got {} bytes", request.body.len()),
            ));
        }
    })
}

fn expecting_head(host: &str, length: usize) -> Vec<u8> {
    format!(
        "POST /upload HTTP/1.1\r\nHost: {host}\r\nExpect: 100-continue\r\n\
         Content-Length: {length}\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn the_backends_own_100_continue_reaches_the_client_and_then_the_body_goes_on() {
    let redis = RedisServer::start();
    let backend = counting_backend();
    redis.frontend("continue.local", "continue", &[&backend.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    // A small body (kept whole for retries when it comes with its head) and a streamed one.
    for length in [10, 300 * 1024] {
        let mut wire = Wire::open(hipache.addr());
        wire.write(&expecting_head("continue.local", length));
        let interim = wire.answer();
        assert_answer(&interim, "HTTP/1.1 100 Continue", "");
        assert_eq!(
            interim.header("x-continue-from"),
            Some("backend"),
            "the client got a 100 the backend did not send: {interim:?}"
        );
        wire.write(&pattern(length));
        // The next thing after the one 100 is the final answer.
        assert_answer(
            &wire.answer(),
            "HTTP/1.1 201 Created",
            &format!("got {length} bytes"),
        );
    }
    let seen = backend.requests();
    assert_eq!(seen.len(), 2);
    for request in &seen {
        assert_eq!(request.header("expect"), Some("100-continue"));
    }
    assert_eq!(seen[1].body, pattern(300 * 1024));
}

#[test]
fn a_backend_that_refuses_the_body_answers_a_client_that_sent_none() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| {
        if read_head(&mut peer.wire.0).is_some() {
            peer.write(&answer("413 Payload Too Large", "too big"));
        }
    });
    redis.frontend("refuse.local", "refuse", &[&backend.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    let mut wire = Wire::open(hipache.addr());
    wire.write(&expecting_head("refuse.local", 10 * 1024 * 1024));
    // No `100` first: the client learns at once that its body is not wanted.
    assert_answer(&wire.answer(), "HTTP/1.1 413 Payload Too Large", "too big");
}

#[test]
fn a_body_still_held_back_goes_to_the_next_backend_when_the_first_fails() {
    let redis = RedisServer::start();
    // Takes the head and hangs up: nothing of the body has left the proxy, since the client
    // waits for a `100`.
    let hangs_up = RawBackend::start(|peer| {
        let _ = read_head(&mut peer.wire.0);
    });
    let counting = counting_backend();
    redis.frontend("retry.local", "retry", &[&hangs_up.url(), &counting.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    // The pick is random and a hang-up marks nothing dead: requests go until one met it first
    // (each with even odds: 64 misses in a row are as good as impossible).
    let length = 200 * 1024;
    for _ in 0..64 {
        if hangs_up.connections() > 0 {
            break;
        }
        let mut wire = Wire::open(hipache.addr());
        wire.write(&expecting_head("retry.local", length));
        let interim = wire.answer();
        assert_eq!(
            interim.header("x-continue-from"),
            Some("backend"),
            "{interim:?}"
        );
        wire.write(&pattern(length));
        assert_answer(
            &wire.answer(),
            "HTTP/1.1 201 Created",
            &format!("got {length} bytes"),
        );
    }
    assert!(
        hangs_up.connections() > 0,
        "the failing backend was never tried"
    );
}

#[test]
fn a_backend_that_ignores_expect_gets_the_body_the_client_sends_anyway() {
    let redis = RedisServer::start();
    // It reads the whole request before it says anything, as an HTTP/1.0 server does.
    let backend = RawBackend::start(|peer| {
        peer.answer_each(|request| answer("201 Created", &format!("got {}", request.body.len())))
    });
    redis.frontend("deaf.local", "deaf", &[&backend.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    let mut wire = Wire::open(hipache.addr());
    wire.write(&expecting_head("deaf.local", 100 * 1024));
    // A client stops waiting for the `100` after a while (curl: one second) and sends the
    // body anyway; the first thing it hears is the final answer, no `100` nobody sent.
    wire.write(&pattern(100 * 1024));
    assert_answer(&wire.answer(), "HTTP/1.1 201 Created", "got 102400");
}

#[test]
fn an_interim_answer_in_the_middle_of_an_upload_does_not_stop_it() {
    let redis = RedisServer::start();
    // Early hints as soon as the head is in, then the body is read and the answer given.
    let backend = RawBackend::start(|peer| {
        let Some(mut request) = read_head(&mut peer.wire.0) else {
            return;
        };
        peer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
        let read = crate::support::raw_backend::read_body(&mut peer.wire.0, &mut request, None);
        if read.is_some() {
            peer.write(&ok(&format!("got {}", request.body.len())));
        }
    });
    redis.frontend("hinted.local", "hinted", &[&backend.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    let length = 256 * 1024;
    let mut wire = Wire::open(hipache.addr());
    wire.write(
        format!("PUT /up HTTP/1.1\r\nHost: hinted.local\r\nContent-Length: {length}\r\n\r\n")
            .as_bytes(),
    );
    // The body goes only once the hints came: the proxy must keep moving it after them.
    assert_answer(&wire.answer(), "HTTP/1.1 103 Early Hints", "");
    wire.write(&pattern(length));
    assert_answer(&wire.answer(), "HTTP/1.1 200 OK", &format!("got {length}"));
}

#[test]
fn a_100_continue_nobody_waits_for_is_not_relayed() {
    let redis = RedisServer::start();
    // Some servers send `100 Continue` to every request with a body, asked or not.
    let backend = RawBackend::start(|peer| {
        peer.answer_each(|request| {
            let created = answer("201 Created", &format!("got {}", request.body.len()));
            [BACKENDS_CONTINUE, &created].concat()
        })
    });
    redis.frontend("eager.local", "eager", &[&backend.url()]);
    let hipache = Hipache::start(Config::redis(&redis));

    let mut wire = Wire::open(hipache.addr());
    wire.write(b"POST /up HTTP/1.1\r\nHost: eager.local\r\nContent-Length: 3\r\n\r\nabc");
    assert_answer(&wire.answer(), "HTTP/1.1 201 Created", "got 3");
}
