//! `host_keys::candidates`: the frontend keys built for every request, from the `Host` header.
//!
//! Run with `cargo bench --bench host_keys`. Hosts go from the common two labels to the long one of
//! Hipache, where only the last six labels are kept (COMPATIBILITY.md).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hipache::host_keys::{candidates as keys, normalize, parse_host, HostRequest};

const HOSTS: [&str; 4] = [
    "example.com",
    "www.dotcloud.com",
    "api.eu-west.staging.example.com",
    "a.b.c.d.e.f.g.h",
];

fn candidates(c: &mut Criterion) {
    let mut group = c.benchmark_group("host_keys::candidates");
    for host in HOSTS {
        group.bench_function(host, |b| b.iter(|| keys(black_box(host))));
    }
    group.finish();
}

/// The whole step from the raw header: port stripped, case folded, keys built.
fn from_header(c: &mut Criterion) {
    c.bench_function("host_keys::parse_host+normalize+candidates", |b| {
        b.iter(|| match parse_host(black_box("WWW.DotCloud.com:8080")) {
            HostRequest::Route(host) => keys(&normalize(host)),
            HostRequest::Ping => Vec::new(),
        })
    });
}

criterion_group!(benches, candidates, from_header);
criterion_main!(benches);
