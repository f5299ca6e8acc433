//! `GET /`: the status page, summed over all workers and joined with every frontend of the
//! route source (`inventory`). HTML for a browser, refreshed every [`REFRESH_SECS`]; the same
//! facts as JSON when the request's `Accept` names `application/json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use super::collect::Totals;
use super::inventory::{Inventory, Listed, MAX_LISTED};
use crate::metrics::names::{Counter, CLASSES};
use crate::metrics::{BackendStats, FrontendStats, Histogram};

/// How often the page reloads itself in a browser.
pub(crate) const REFRESH_SECS: u64 = 10;

/// What the page says beside the workers' counts.
pub(crate) struct Facts {
    /// How long the master has run.
    pub(crate) uptime: Duration,
    /// When the page is made, in Unix milliseconds.
    pub(crate) now_unix_ms: u64,
    /// The route source's frontends; `None` when not read.
    pub(crate) inventory: Option<Inventory>,
}

/// The status as JSON.
pub(crate) fn json(totals: &Totals, facts: &Facts) -> Value {
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
    let route_source = facts.inventory.as_ref().map(|inventory| {
        json!({
            "driver": inventory.source,
            "frontends_listed": inventory.frontends.len(),
            "frontends_total": inventory.total,
            "listed_at_most": MAX_LISTED,
            "error": inventory.error,
        })
    });
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": env!("HIPACHE_COMMIT"),
        "uptime_secs": facts.uptime.as_secs(),
        "generated_at": rfc3339(facts.now_unix_ms),
        "refresh_secs": REFRESH_SECS,
        "metrics_path": "/metrics",
        "workers": totals.workers,
        "requests": s.counter(Counter::Requests),
        "protocols": {
            "http1": s.counter(Counter::ProtocolHttp1),
            "http2": s.counter(Counter::ProtocolHttp2),
            "http3": s.counter(Counter::ProtocolHttp3),
        },
        "responses": responses,
        "retries": s.counter(Counter::Retries),
        "dead_marks": s.counter(Counter::DeadMarks),
        "connections_open": s.connections_open,
        "tunnels_open": s.tunnels_open,
        "bytes_in": s.counter(Counter::BytesIn),
        "bytes_out": s.counter(Counter::BytesOut),
        "acme_orders": {
            "issued": s.counter(Counter::AcmeOrdersIssued),
            "failed": s.counter(Counter::AcmeOrdersFailed),
        },
        "latency_ms": latency(&s.latency),
        "backend_latency_ms": latency(&s.backend_latency),
        "route_source": route_source,
        "frontends": frontends(&s.frontends, facts.inventory.as_ref()),
    })
}

/// Frontends that had traffic and those the route source lists, by host.
fn frontends(counted: &[FrontendStats], inventory: Option<&Inventory>) -> Vec<Value> {
    let mut hosts: BTreeMap<&str, (Option<&FrontendStats>, Option<&Listed>)> = BTreeMap::new();
    for f in counted {
        hosts.entry(f.key.as_str()).or_default().0 = Some(f);
    }
    for (host, listed) in inventory.iter().flat_map(|i| &i.frontends) {
        hosts.entry(host.as_str()).or_default().1 = Some(listed);
    }
    let driver = inventory.map_or("route source", |i| i.source);
    hosts
        .into_iter()
        .map(|(host, (counted, listed))| frontend(host, counted, listed, driver))
        .collect()
}

fn frontend(
    host: &str,
    counted: Option<&FrontendStats>,
    listed: Option<&Listed>,
    driver: &str,
) -> Value {
    let none = FrontendStats::default();
    let f = counted.unwrap_or(&none);
    // The list as the route source holds it now, else as the workers last saw it.
    let mut backends: BTreeMap<usize, (String, Option<&BackendStats>)> = BTreeMap::new();
    for b in &f.backends {
        backends.insert(b.index, (b.url.clone(), Some(b)));
    }
    if let Some(listed) = listed {
        for (index, url) in listed.backends.iter().enumerate() {
            backends.entry(index).or_insert((String::new(), None)).0 = url.clone();
        }
    }
    let id = listed.map_or(f.id.as_str(), |l| l.id.as_str());
    json!({
        // The entry that sums what a worker no longer tracks one by one has no key.
        "host": if host.is_empty() { "(other frontends)" } else { host },
        "id": id,
        "in_route_source": listed.is_some(),
        "requests": f.requests,
        "errors": f.errors(),
        "latency_ms": latency(&f.latency),
        "backends": backends.into_iter().map(|(index, (url, b))| {
            let dead = dead(index, b, listed, driver);
            json!({
                "index": index,
                "url": url,
                "state": if dead.is_null() { "live" } else { "dead" },
                "dead": dead,
                "requests": b.map_or(0, |b| b.requests),
                "errors": b.map_or(0, |b| b.errors),
                "latency_ms": latency(&b.map(|b| b.latency).unwrap_or_default()),
            })
        }).collect::<Vec<_>>(),
    })
}

/// Why backend `index` is dead (`null` when it is not): a worker's own mark says why and since
/// when; a mark read from the route source says where, and how long it has left when known.
fn dead(index: usize, b: Option<&BackendStats>, listed: Option<&Listed>, driver: &str) -> Value {
    if let Some(mark) = b.and_then(|b| b.dead_mark.as_ref()) {
        return json!({
            "reason": mark.reason,
            "since": rfc3339(mark.since_unix_ms),
            "since_unix_ms": mark.since_unix_ms,
        });
    }
    let in_source = listed.is_some_and(|l| l.dead.contains(&index));
    if in_source || b.is_some_and(|b| b.dead) {
        let ttl = listed.filter(|_| in_source).and_then(|l| l.dead_ttl_secs);
        return json!({ "marked_in": driver, "ttl_secs": ttl });
    }
    Value::Null
}

fn latency(h: &Histogram) -> Value {
    json!({
        "count": h.count(),
        "mean": (h.mean_ms() * 1000.0).round() / 1000.0,
        "p50_at_most": h.quantile_bound_ms(0.5),
        "p99_at_most": h.quantile_bound_ms(0.99),
    })
}

/// `2026-12-07T23:40:05Z`.
fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = crate::ascii::civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `3d 04:05:06` or `04:05:06`.
fn uptime_text(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let clock = format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    if days > 0 {
        format!("{days}d {clock}")
    } else {
        clock
    }
}

/// The status as a page.
pub(crate) fn html(totals: &Totals, facts: &Facts) -> String {
    let status = json(totals, facts);
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\"><title>hipache status</title>\
         <style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}\
         .dead{{color:#b00}}.live{{color:#070}}</style></head><body>\n<h1>hipache</h1>\n"
    );
    let _ = writeln!(
        out,
        "<p>version {} ({}) · up {} · page made {} · refreshes every {REFRESH_SECS} s · \
         <a href=\"/metrics\">/metrics</a></p>",
        escape(env!("CARGO_PKG_VERSION")),
        escape(env!("HIPACHE_COMMIT")),
        uptime_text(facts.uptime.as_secs()),
        rfc3339(facts.now_unix_ms),
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
    out.push_str("</p>\n<p>protocols:");
    for protocol in ["http1", "http2", "http3"] {
        let _ = write!(out, " {protocol} {}", status["protocols"][protocol]);
    }
    out.push_str("</p>\n");
    let acme = &status["acme_orders"];
    if acme["issued"].as_u64().unwrap_or(0) + acme["failed"].as_u64().unwrap_or(0) > 0 {
        let _ = writeln!(
            out,
            "<p>ACME orders: {} issued · {} failed</p>",
            acme["issued"], acme["failed"]
        );
    }
    if let Some(inventory) = &facts.inventory {
        let _ = write!(
            out,
            "<p>{} of {} frontends in {} listed (at most {MAX_LISTED})",
            inventory.frontends.len(),
            inventory.total,
            driver_name(inventory.source),
        );
        if let Some(error) = &inventory.error {
            let _ = write!(out, "; listing incomplete: {}", escape(error));
        }
        out.push_str("</p>\n");
    }
    out.push_str(
        "<table><tr><th>frontend</th><th>id</th><th>requests</th>\
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
                "<div>{} <span class=\"{state}\">{state}</span>{} · {} requests, {} errors · \
                 latency mean {} ms, p99 at most {} ms</div>",
                escape(b["url"].as_str().unwrap_or("")),
                dead_text(&b["dead"]),
                b["requests"],
                b["errors"],
                b["latency_ms"]["mean"],
                b["latency_ms"]["p99_at_most"],
            );
        }
        out.push_str("</td></tr>\n");
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

fn driver_name(source: &str) -> &str {
    match source {
        "redis" => "Redis",
        "file" => "the routes file",
        other => other,
    }
}

/// What follows a dead backend's state: ` since 23:40:05 UTC (connection refused)`, or
/// `: marked dead in Redis (25 s left)`; nothing for a live one.
fn dead_text(dead: &Value) -> String {
    if dead.is_null() {
        return String::new();
    }
    if let (Some(reason), Some(since)) = (dead["reason"].as_str(), dead["since"].as_str()) {
        let clock = since.get(11..19).unwrap_or(since);
        return format!(" since {clock} UTC ({})", escape(reason));
    }
    let place = driver_name(dead["marked_in"].as_str().unwrap_or("route source"));
    match dead["ttl_secs"].as_u64() {
        Some(ttl) => format!(": marked dead in {place} ({ttl} s left)"),
        None => format!(": marked dead in {place}"),
    }
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
mod tests;
