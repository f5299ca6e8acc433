//! Our HTTP/1.x front end for client connections, plain and TLS: the proxy's hot path.
//!
//! Why not hyper here: a proxy needs to parse a head and pass it on, not to build a typed
//! request and serialise it again on each side. Heads are parsed in place (`crate::wire`) into
//! spans over the connection's buffer and rewritten straight into the backend's request; bodies
//! pass through with their framing; and an idle keep-alive connection holds no buffer at all
//! (hyper keeps 16 KiB per connection).
//!
//! ```text
//! server (connection loop, head, route, own answers)
//!   ─▶ proxy::Proxy::forward (the attempt loop) with forward::Upload (how to send: head, body)
//!   ─▶ relay (answer body, or a tunnel after 101)
//! client: the stream and its unread bytes, for all three
//! pump: a streamed upload, moved by forward until an answer begins, then alongside relay
//! ```

mod client;
mod forward;
mod pump;
mod relay;
pub(crate) mod server;

pub(crate) use client::ClientStream;
