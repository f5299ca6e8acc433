//! `wire::headers::rewrite_request`: what every forwarded request goes through.
//!
//! Run with `cargo bench --bench headers`. The header map is what a browser sends through a
//! proxy; each iteration clones it first (the rewrite works in place), so the clone alone is
//! measured too, to be subtracted.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use hipache::wire::headers::{rewrite_request, Forwarded};
use http::header::{HeaderMap, HeaderName, HeaderValue};

const BROWSER: [(&str, &str); 11] = [
    ("host", "www.dotcloud.com"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    (
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("accept-language", "en-US,en;q=0.5"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("referer", "https://www.dotcloud.com/index.html"),
    (
        "cookie",
        "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark",
    ),
    ("connection", "keep-alive, x-trace"),
    ("x-trace", "1"),
    ("upgrade-insecure-requests", "1"),
    ("cache-control", "max-age=0"),
];

fn browser_headers() -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(BROWSER.len() + 5);
    for (name, value) in BROWSER {
        headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    headers
}

fn rewrite(c: &mut Criterion) {
    let template = browser_headers();
    let forwarded = Forwarded::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), false, 80);
    let mut group = c.benchmark_group("wire::headers");
    group.bench_function("clone only (baseline)", |b| {
        b.iter_batched(
            || (),
            |()| black_box(template.clone()),
            BatchSize::SmallInput,
        )
    });
    for keep_alive in [true, false] {
        let name = format!("rewrite_request keep_alive={keep_alive}");
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || template.clone(),
                |headers| rewrite_request(headers, black_box(&forwarded), keep_alive),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, rewrite);
criterion_main!(benches);
