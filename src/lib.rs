//! `hipache`: a drop-in replacement for Hipache, the distributed HTTP and WebSocket proxy.
//!
//! One request flows through the modules in this order:
//!
//! ```text
//! worker::accept (tls handshake) ─▶ proxy (hyper service) ─▶ router::candidates ─▶ routes::*::lookup
//!   ─▶ balancer::pick ─▶ proxy::attempt (headers, client, tunnel) ─▶ on failure routes::*::mark_dead
//!   and pick again ─▶ error_page if every attempt failed ─▶ access_log
//! ```

pub mod access_log;
pub mod ascii;
pub mod balancer;
pub mod cli;
pub mod config;
pub mod error_page;
pub mod h1;
pub mod logging;
pub mod master;
pub mod privileges;
pub mod proxy;
pub mod router;
pub mod routes;
pub mod tls;
pub mod worker;
