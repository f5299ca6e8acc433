//! The HTTP/1.x wire format, knowing nothing of routing: request and response heads parsed in
//! place into spans over a buffer (`request`, `response`, `fields`), chunked coding (`chunked`)
//! and its trailers across to HTTP/2 (`trailers`), heads written for the next hop (`encode`),
//! header names and `HeaderMap` rewriting for the HTTP/2 and HTTP/3 side (`headers`), heads as
//! the `http` crate holds them, the same for HTTP/2 and HTTP/3 (`http_head`), a backend's fields
//! encoded for an HTTP/2 answer (`hpack`), the
//! HTTP/1.1 WebSocket handshake sent for an extended CONNECT (`websocket`), and the read buffers
//! lent to busy connections (`buffers`).

pub(crate) mod buffers;
pub(crate) mod chunked;
pub(crate) mod encode;
pub(crate) mod fields;
pub mod headers;
pub(crate) mod hpack;
pub(crate) mod http_head;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod trailers;
pub(crate) mod websocket;

#[cfg(test)]
mod properties;
