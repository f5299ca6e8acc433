//! Limits a connection lives under: one `tcpTimeout` for the idle wait and the head together,
//! and `server.maxConnections`.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::raw_backend::Wire;
use crate::support::wait::pause;
use crate::support::{Config, Hipache, RedisServer};

const TCP_TIMEOUT_SECS: u64 = 3;

#[test]
fn a_head_trickled_after_an_idle_wait_gets_no_second_timeout() {
    let redis = RedisServer::start();
    let config = Config::redis(&redis).with(json!({"server": {"tcpTimeout": TCP_TIMEOUT_SECS}}));
    let hipache = Hipache::start(config);
    let mut wire = Wire::open(hipache.addr());
    wire.write(b"GET / HTTP/1.1\r\nHost: __ping__\r\n\r\n");
    assert_eq!(wire.answer().text(), "ok");

    // Keep-alive: silent for most of `tcpTimeout`, then a head one byte at a time, never done.
    let idle_start = Instant::now();
    let silent = Duration::from_millis(TCP_TIMEOUT_SECS * 1000 * 8 / 10);
    pause(silent);
    let mut writer = wire.0.get_ref().try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for byte in b"GET / HTTP/1.1\r\nHost: __ping__\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            pause(Duration::from_millis(100));
        }
    });
    let mut rest = Vec::new();
    let _ = wire.0.read_to_end(&mut rest);
    let closed_after = idle_start.elapsed();
    let _ = wire.0.get_ref().shutdown(std::net::Shutdown::Both);
    let _ = trickle.join();

    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    // Consecutive limits would close at `silent + tcpTimeout`: the bound sits halfway between
    // that and the one shared deadline, generous both ways on a busy machine.
    let consecutive = silent + Duration::from_secs(TCP_TIMEOUT_SECS);
    let shared = Duration::from_secs(TCP_TIMEOUT_SECS);
    assert!(
        closed_after < (consecutive + shared) / 2,
        "closed after {closed_after:?}"
    );
}
