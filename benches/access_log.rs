//! `access_log::format_line`: one Hipache access-log line per request.
//!
//! Run with `cargo bench --bench access_log`. The buffer is reused across iterations, as the
//! writer reuses its batch buffer, so only formatting is measured.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use hipache::access_log::{format_json, format_line, Entry};

fn format(c: &mut Criterion) {
    let uri = b"/static/app.js?v=20261124";
    let entry = Entry {
        client: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        time: UNIX_EPOCH + Duration::from_secs(1_795_487_412),
        method: b"GET",
        uri,
        version: "1.1",
        status: 200,
        bytes: 48_213,
        referer: b"https://www.dotcloud.com/index.html",
        user_agent: b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        frontend_id: "mywebsite",
        host: b"www.dotcloud.com",
        backend_url: Some("http://10.0.0.7:8080"),
        tls: Some("TLSv1.3"),
        total: Duration::from_millis(12),
        backend: Duration::from_millis(11),
    };
    let mut out = Vec::with_capacity(4096);
    c.bench_function("access_log::format_line", |b| {
        b.iter(|| {
            out.clear();
            format_line(&mut out, black_box(&entry));
            black_box(out.len())
        })
    });
    c.bench_function("access_log::format_json", |b| {
        b.iter(|| {
            out.clear();
            format_json(&mut out, black_box(&entry));
            black_box(out.len())
        })
    });
    // With the clock read, as the request path does.
    c.bench_function("access_log::format_line now", |b| {
        b.iter(|| {
            out.clear();
            let entry = Entry {
                time: SystemTime::now(),
                ..entry
            };
            format_line(&mut out, black_box(&entry));
            black_box(out.len())
        })
    });
}

criterion_group!(benches, format);
criterion_main!(benches);
