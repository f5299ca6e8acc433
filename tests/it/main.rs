//! Black-box integration tests of the `hipache` binary. See `support` for the harness.
//!
//! Every module is `#[cfg(test)]` (always true in this crate) so clippy's
//! `allow-unwrap-in-tests` / `allow-expect-in-tests` also cover the harness helpers.

#[cfg(test)]
mod access_log;
#[cfg(test)]
mod access_log_json;
#[cfg(test)]
mod acme;
#[cfg(test)]
mod acme_fleet;
#[cfg(test)]
mod answer_framing;
#[cfg(test)]
mod backend_state;
#[cfg(test)]
mod backend_streams;
#[cfg(test)]
mod buffers;
#[cfg(test)]
mod cluster;
#[cfg(test)]
mod config;
#[cfg(test)]
mod dry_run;
#[cfg(test)]
mod duplex;
#[cfg(test)]
mod expect_continue;
#[cfg(test)]
mod failures;
#[cfg(test)]
mod faults;
#[cfg(test)]
mod file_driver;
#[cfg(test)]
mod fleet;
#[cfg(test)]
mod force_secure;
#[cfg(test)]
mod forwarding;
#[cfg(test)]
mod freshness;
#[cfg(test)]
mod h2;
#[cfg(test)]
mod h2_errors;
#[cfg(test)]
mod h2_hosts;
#[cfg(test)]
mod h2_interim;
#[cfg(test)]
mod h2_limits;
#[cfg(test)]
mod h2_trailers;
#[cfg(test)]
mod h2_websocket;
#[cfg(test)]
mod h3;
mod h3_browser;
#[cfg(test)]
mod health_check;
#[cfg(test)]
mod hipache_suite;
#[cfg(test)]
mod http1;
#[cfg(test)]
mod https_backends;
#[cfg(test)]
mod layering;
#[cfg(test)]
mod lifecycle;
#[cfg(test)]
mod limits;
#[cfg(test)]
mod memory;
#[cfg(test)]
mod metrics;
#[cfg(test)]
mod processes;
#[cfg(test)]
mod redis_certs;
#[cfg(test)]
mod redis_lookup;
#[cfg(test)]
mod redis_outage;
#[cfg(test)]
mod request_framing;
#[cfg(test)]
mod route_cli;
#[cfg(test)]
mod routing;
#[cfg(test)]
mod sentinel;
#[cfg(test)]
mod status_page;
#[cfg(test)]
mod sticky;
#[cfg(test)]
mod support;
#[cfg(test)]
mod tls;
#[cfg(test)]
mod tls_resumption;
#[cfg(test)]
mod warm_start;
#[cfg(test)]
mod websocket;

use support::{Backend, RedisServer, Request};

#[test]
fn fixtures_start_and_answer() {
    let redis = RedisServer::start();
    redis.frontend("example.com", "example", &["http://127.0.0.1:1"]);
    assert_eq!(
        redis
            .query::<Vec<String>>(&["LRANGE", "frontend:example.com", "0", "-1"])
            .len(),
        2
    );
    let subscription = redis.subscribe("dead");
    let _: i64 = redis.query(&["PUBLISH", "dead", "hello"]);
    assert_eq!(subscription.wait_for(1), vec!["hello".to_owned()]);

    let backend = Backend::named("b1");
    let response = Request::get("anything", "/x?y=1").send(backend.addr());
    assert_eq!((response.status, response.text().as_str()), (200, "b1"));
    let seen = backend.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", "/x?y=1")
    );
    assert_eq!(seen[0].header("host"), Some("anything"));
}
