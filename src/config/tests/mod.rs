//! Unit tests for `Config::parse`, one file per topic; the helpers every topic uses are here.

mod acme;
mod driver;
mod errors;
mod features;
mod hipache_files;
mod legacy;
mod listeners;
mod properties;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Loaded {
    Config::parse(text, Path::new("config/config.json")).unwrap()
}

fn error(text: &str) -> String {
    Config::parse(text, Path::new("config/config.json"))
        .unwrap_err()
        .to_string()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}
