//! `GET /`: the status page, summed over all workers. HTML for a browser; the same facts as
//! JSON when the request's `Accept` names `application/json`.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::collect::Totals;
use crate::metrics::names::{Counter, CLASSES};
use crate::metrics::{FrontendStats, Histogram};

/// The status as JSON.
pub(crate) fn json(totals: &Totals) -> Value {
    let s = &totals.snapshot;
    let responses: serde_json::Map<String, Value> = CLASSES
        .iter()
        .zip([
            Counter::Responses1xx,
            Counter::Responses2xx,
            Counter::Responses3xx,
            Counter::Responses4xx,
            Counter::Responses5xx,
        ])
        .map(|(class, counter)| ((*class).to_owned(), s.counter(counter).into()))
        .collect();
    let mut frontends: Vec<&FrontendStats> = s.frontends.iter().collect();
    frontends.sort_by(|a, b| a.key.cmp(&b.key));
    json!({
        "workers": totals.workers,
        "requests": s.counter(Counter::Requests),
        "responses": responses,
        "retries": s.counter(Counter::Retries),
        "dead_marks": s.counter(Counter::DeadMarks),
        "connections_open": s.connections_open,
        "tunnels_open": s.tunnels_open,
        "bytes_in": s.counter(Counter::BytesIn),
        "bytes_out": s.counter(Counter::BytesOut),
        "latency_ms": latency(&s.latency),
        "backend_latency_ms": latency(&s.backend_latency),
        "frontends": frontends.iter().map(|f| frontend(f)).collect::<Vec<_>>(),
    })
}

fn frontend(f: &FrontendStats) -> Value {
    json!({
        // The entry that sums what a worker no longer tracks one by one has no key.
        "host": if f.key.is_empty() { "(other frontends)" } else { f.key.as_str() },
        "id": f.id,
        "requests": f.requests,
        "errors": f.errors(),
        "latency_ms": latency(&f.latency),
        "backends": f.backends.iter().map(|b| json!({
            "index": b.index,
            "url": b.url,
            "state": if b.dead { "dead" } else { "live" },
            "requests": b.requests,
            "errors": b.errors,
        })).collect::<Vec<_>>(),
    })
}

fn latency(h: &Histogram) -> Value {
    json!({
        "count": h.count(),
        "mean": (h.mean_ms() * 1000.0).round() / 1000.0,
        "p50_at_most": h.quantile_bound_ms(0.5),
        "p99_at_most": h.quantile_bound_ms(0.99),
    })
}

/// The status as a page.
pub(crate) fn html(totals: &Totals) -> String {
    let status = json(totals);
    let mut out = String::with_capacity(4096);
    out.push_str(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>hipache status</title>\
         <style>body{font-family:sans-serif}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}\
         .dead{color:#b00}.live{color:#070}</style></head><body>\n<h1>hipache</h1>\n",
    );
    let n = |key: &str| status[key].as_u64().unwrap_or(0);
    let _ = writeln!(
        out,
        "<p>{} workers · {} requests · {} retries · {} dead marks · {} open connections · \
         {} open tunnels · {} bytes in · {} bytes out · mean latency {} ms</p>",
        n("workers"),
        n("requests"),
        n("retries"),
        n("dead_marks"),
        n("connections_open"),
        n("tunnels_open"),
        n("bytes_in"),
        n("bytes_out"),
        status["latency_ms"]["mean"],
    );
    out.push_str("<p>responses:");
    for class in CLASSES {
        let _ = write!(out, " {class} {}", status["responses"][class]);
    }
    out.push_str(
        "</p>\n<table><tr><th>frontend</th><th>id</th><th>requests</th>\
                  <th>errors</th><th>mean latency (ms)</th><th>backends</th></tr>\n",
    );
    for f in status["frontends"].as_array().into_iter().flatten() {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>",
            escape(f["host"].as_str().unwrap_or("")),
            escape(f["id"].as_str().unwrap_or("")),
            f["requests"],
            f["errors"],
            f["latency_ms"]["mean"],
        );
        for b in f["backends"].as_array().into_iter().flatten() {
            let state = b["state"].as_str().unwrap_or("live");
            let _ = write!(
                out,
                "<div>{} <span class=\"{state}\">{state}</span> {} requests, {} errors</div>",
                escape(b["url"].as_str().unwrap_or("")),
                b["requests"],
                b["errors"],
            );
        }
        out.push_str("</td></tr>\n");
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

/// Text from Redis (hosts, ids, backend URLs) as HTML: markup characters as entities, and
/// control characters as `\xHH` (`escape`), so nothing written into Redis becomes markup.
fn escape(text: &str) -> String {
    crate::escape::Controls(text)
        .to_string()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Snapshot;

    #[test]
    fn text_from_redis_is_escaped_on_the_page() {
        let mut frontend = FrontendStats {
            key: "<b>a.test</b>".into(),
            id: "<script>alert('x')</script>\r\n".into(),
            ..FrontendStats::default()
        };
        frontend.backends.push(Default::default());
        frontend.backends[0].url = "http://a/\"><img src=x onerror='y'>".into();
        let snapshot = Snapshot {
            frontends: vec![frontend],
            ..Snapshot::default()
        };
        let page = html(&Totals {
            snapshot,
            workers: 1,
            restarts: Default::default(),
        });
        for raw in ["<script>", "<b>", "<img", "'", "\r"] {
            assert!(!page.contains(raw), "{raw:?} in {page}");
        }
        assert!(
            page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;\\x0D\\x0A"),
            "{page}"
        );
    }
}
