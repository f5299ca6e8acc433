//! The integration harness: real redis-server, in-process backends, the real binary.

pub(crate) mod backend;
pub(crate) mod cluster;
pub(crate) mod h2_frames;
pub(crate) mod h2c;
pub(crate) mod h3;
pub(crate) mod hipache;
pub(crate) mod pebble;
pub(crate) mod procfs;
pub(crate) mod raw_backend;
pub(crate) mod raw_http;
pub(crate) mod redis;
pub(crate) mod runtime;
pub(crate) mod sentinel;
pub(crate) mod tls;
pub(crate) mod tls_backend;
pub(crate) mod wait;
pub(crate) mod websocket;

pub(crate) use backend::Backend;
pub(crate) use cluster::RedisCluster;
pub(crate) use hipache::{Config, Hipache};
pub(crate) use raw_http::{Body, Request};
pub(crate) use redis::RedisServer;
pub(crate) use sentinel::Sentinel;
pub(crate) use wait::{pause, wait_for, wait_until};
