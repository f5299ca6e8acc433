//! Our HTTP/1.x engine for client connections, plain and TLS: the proxy's hot path.
//!
//! Why not hyper here: a proxy needs to parse a head and pass it on, not to build a typed
//! request and serialise it again on each side. Heads are parsed in place (httparse) into
//! spans over the connection's buffer and rewritten straight into the backend's request; bodies
//! pass through with their framing; and an idle keep-alive connection holds no buffer at all
//! (hyper keeps 16 KiB per connection). Backend connections are plain TCP streams in one
//! per-worker pool, which the HTTP/2 service (`crate::proxy`, on hyper) uses too.
//!
//! ```text
//! server (connection loop, head, route) ─▶ forward (body, attempts) ─▶ relay (answer, tunnel)
//!   request / response (heads) · chunked (framing) · encode (heads out)
//!   backend (answer heads, body framing, bounded writes) · pool (backend streams)
//! ```

pub mod backend;
pub mod buffers;
pub mod chunked;
pub mod encode;
pub mod fields;
mod forward;
pub mod open;
pub mod pool;
mod relay;
pub mod request;
pub mod response;
pub mod server;
