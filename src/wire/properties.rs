//! Property tests of the wire parsers, bounded so that `cargo test` stays quick:
//! no panic on arbitrary bytes; a message we accept, written by our encoder, reads as the same
//! single message to a strict parser (httparse for heads, our decoder for chunks); and our
//! request-head parser against httparse on generated heads.
//!
//! Where we deliberately disagree with httparse (it accepts, we refuse), the oracle here states
//! the rule independently: two `Host` fields; a `Content-Length` that is not digits, is 2^63 or
//! more, or disagrees with another; any `Transfer-Encoding` but one field of exactly `chunked`,
//! beside a length or in HTTP/1.0; and, for responses, a line ended by a bare LF.

use proptest::test_runner::Config;

mod bodies;
mod heads;

/// `cases` per property, and no regression files written beside the sources.
fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}
