//! `hipache`: a drop-in replacement for Hipache, the distributed HTTP and WebSocket proxy.
//!
//! One request flows through the modules in this order:
//!
//! ```text
//! worker::accept (tls handshake) ─▶ h1::server (HTTP/1.x; HTTP/2 goes to hyper in proxy)
//!   ─▶ proxy::route ─▶ router::candidates ─▶ routes::*::lookup
//!   ─▶ balancer::Attempts ─▶ h1::forward (h1::encode, h1::pool, h1::backend, proxy::tunnel)
//!   ─▶ on failure proxy::note_failure (routes::*::mark_dead) and pick again
//!   ─▶ error_page if every attempt failed ─▶ access_log
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
