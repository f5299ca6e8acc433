//! Our HTTP/1.x front end for client connections, plain and TLS: the proxy's hot path.
//!
//! Why not hyper here: a proxy needs to parse a head and pass it on, not to build a typed
//! request and serialise it again on each side. Heads are parsed in place (`crate::wire`) into
//! spans over the connection's buffer and rewritten straight into the backend's request; bodies
//! pass through with their framing; and an idle keep-alive connection holds no buffer at all
//! (hyper keeps 16 KiB per connection).
//!
//! ```text
//! server (connection loop, reading a head; refuses one it cannot read)
//!   ─▶ proxy::Proxy::serve (the session) over request::Request, which supplies the framing:
//!      the head's facts, our own answers, forward::Upload (how to send: head, body) for the
//!      attempt loop, relay (the answer's body), the 101 that opens a proxy::tunnel
//! client: the stream and its unread bytes, for all of them
//! pump: a streamed upload, moved by forward until an answer begins, then alongside relay
//! ```

mod client;
mod forward;
mod pump;
mod relay;
mod request;
pub(crate) mod server;

pub(crate) use client::ClientStream;
