#![warn(missing_docs)]
//! `hipache`: a drop-in replacement for Hipache, the distributed HTTP and WebSocket proxy.
//!
//! One request flows through the modules in this order:
//!
//! ```text
//! worker::accept (tls handshake) ─▶ h1::server (HTTP/1.x, heads read by wire::request)
//!                                  or h2::connection (HTTP/2 on the h2 crate, a task per stream)
//! worker::quic (UDP, QUIC on quinn) ─▶ h3::connection (HTTP/3 on the h3 crate, a task per stream)
//!   ─▶ proxy::Proxy::serve, the session, one order for every front end (each a
//!        proxy::session::Downstream: h1::request per request, h2 and h3 per stream, framing
//!        only):
//!        refusals ─▶ forceSecure (proxy::redirect) ─▶ proxy::Proxy::route ─▶ host_keys::candidates
//!        ─▶ routes::*::lookup ─▶ the sticky backend ─▶ the access log's copy of the request
//!   ─▶ proxy::Proxy::forward, the one attempt loop: balancer::Attempts picks,
//!        proxy::pool gives a backend stream, the front end sends (h1::forward, h2::request,
//!        h3::request;
//!        heads written by wire::encode), proxy::backend reads the answer's head;
//!        on failure routes::*::mark_dead and pick again
//!   ─▶ the answer relayed (h1::relay, h2::body, h3::answer), a tunnel after a 101 (proxy::tunnel),
//!      or proxy::Proxy::error_answer rendered as the client's protocol ─▶ access_log
//!   counted on the way in metrics (the worker's cells); the master's admin asks each worker
//!   for a snapshot and serves /metrics and the status page (with every frontend of the route
//!   source, listed by admin::inventory), and sends statsd
//! ```
//!
//! Beside the requests, the master may run `health`, the active health checker, which marks
//! backends dead in Redis for the workers to read; and with `acme` each worker runs `acme`'s
//! client, which the handshake asks for certificates on demand and for tls-alpn-01 answers, and
//! the session for http-01 answers, and which renews what it issued, all its state in Redis.

/// The allocator of the binary and of the library's own tests, declared here rather than in
/// `main.rs` so that `cargo test --lib` runs on the allocator production runs on (the worker's
/// give-back in `worker::trim` is written for it). mimalloc: a proxied request makes a few dozen
/// allocations, and mimalloc's thread-local free lists take fewer instructions for each than
/// glibc's malloc (benches/README.md, "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod access_log;
mod acme;
mod admin;
mod ascii;
mod balancer;
pub mod cli;
pub mod config;
mod crypto;
pub mod dry;
mod error_page;
mod escape;
mod frontend;
mod h1;
mod h2;
mod h3;
mod health;
pub mod host_keys;
mod host_name;
pub mod logging;
pub mod manage;
pub mod master;
mod metrics;
pub mod privileges;
mod proxy;
mod routes;
pub mod supervision;
pub mod tls;
pub mod wire;
pub mod worker;
