//! `GET /metrics`: the totals in Prometheus's text format (version 0.0.4). Frontends are
//! labelled by identifier, the busiest [`FRONTEND_LABELS`] by name and the rest together as
//! `other`, so a proxy with a million hosts still exposes a bounded number of series.

use std::fmt::Write as _;

use super::collect::Totals;
use super::frontends::{by_id, Labelled};
use crate::metrics::names::{self, COUNTERS};
use crate::metrics::{Histogram, BOUNDS_MICROS};

/// Frontends shown under their own label; the others are summed under `other`.
pub(crate) const FRONTEND_LABELS: usize = 20;

/// The page's content type.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) fn render(totals: &Totals) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let s = &totals.snapshot;
    let mut family = "";
    for (i, name) in COUNTERS.iter().enumerate() {
        if name.family != family {
            family = name.family;
            header(&mut out, family, name.help, "counter");
        }
        match name.label {
            Some((label, value)) => {
                let _ = writeln!(out, "{family}{{{label}=\"{value}\"}} {}", s.counters[i]);
            }
            None => {
                let _ = writeln!(out, "{family} {}", s.counters[i]);
            }
        }
    }
    gauge(
        &mut out,
        names::CONNECTIONS_OPEN_FAMILY,
        "open client connections",
        s.connections_open,
    );
    gauge(
        &mut out,
        names::TUNNELS_OPEN_FAMILY,
        "open websocket tunnels",
        s.tunnels_open,
    );
    gauge(
        &mut out,
        names::WORKERS_FAMILY,
        "workers summed",
        totals.workers as u64,
    );
    let family = names::WORKER_RESTARTS_FAMILY;
    let help = "workers that exited unasked and were replaced, by reason";
    header(&mut out, family, help, "counter");
    for (reason, count) in names::RESTART_REASONS.iter().zip(totals.restarts) {
        let _ = writeln!(out, "{family}{{reason=\"{reason}\"}} {count}");
    }
    if s.redis_links_up + s.redis_links_down > 0 {
        gauge(
            &mut out,
            names::REDIS_UP_FAMILY,
            "1 while every redis connection of every worker answers, else 0",
            u64::from(s.redis_links_down == 0),
        );
    }
    let help = "from a request's head to its answer's head";
    header(&mut out, names::LATENCY_FAMILY, help, "histogram");
    histogram(&mut out, names::LATENCY_FAMILY, "", &s.latency);
    let help = "from an attempt's start to the backend's answer head";
    header(&mut out, names::BACKEND_LATENCY_FAMILY, help, "histogram");
    histogram(
        &mut out,
        names::BACKEND_LATENCY_FAMILY,
        "",
        &s.backend_latency,
    );

    let frontends = by_id(&s.frontends, FRONTEND_LABELS);
    let family = names::FRONTEND_REQUESTS_FAMILY;
    header(&mut out, family, "requests per frontend", "counter");
    for Labelled { label, stats, .. } in &frontends {
        let _ = writeln!(
            out,
            "{family}{{frontend=\"{}\"}} {}",
            escape(label),
            stats.requests
        );
    }
    let family = names::FRONTEND_RESPONSES_FAMILY;
    header(
        &mut out,
        family,
        "responses per frontend and status class",
        "counter",
    );
    for Labelled { label, stats, .. } in &frontends {
        for (class, count) in names::CLASSES.iter().zip(stats.responses) {
            let label = escape(label);
            let _ = writeln!(
                out,
                "{family}{{frontend=\"{label}\",class=\"{class}\"}} {count}"
            );
        }
    }
    let family = names::FRONTEND_BACKENDS_FAMILY;
    let help = "backends in the frontend's list as last looked up";
    header(&mut out, family, help, "gauge");
    for Labelled {
        label, backends, ..
    } in &frontends
    {
        let _ = writeln!(out, "{family}{{frontend=\"{}\"}} {backends}", escape(label));
    }
    let family = names::FRONTEND_BACKENDS_DEAD_FAMILY;
    let help = "backends of the frontend flagged dead";
    header(&mut out, family, help, "gauge");
    for Labelled {
        label,
        backends_dead,
        ..
    } in &frontends
    {
        let _ = writeln!(
            out,
            "{family}{{frontend=\"{}\"}} {backends_dead}",
            escape(label)
        );
    }
    let family = names::FRONTEND_LATENCY_FAMILY;
    let help = "from a request's head to its answer's head, per frontend";
    header(&mut out, family, help, "histogram");
    for Labelled { label, stats, .. } in &frontends {
        let label = format!("frontend=\"{}\",", escape(label));
        histogram(&mut out, family, &label, &stats.latency);
    }
    if !s.certificates.is_empty() {
        let family = names::CERTIFICATE_EXPIRY_FAMILY;
        header(
            &mut out,
            family,
            "when each certificate served expires",
            "gauge",
        );
        for certificate in &s.certificates {
            let (name, source) = (escape(&certificate.name), escape(&certificate.source));
            let at = certificate.not_after;
            let _ = writeln!(out, "{family}{{name=\"{name}\",source=\"{source}\"}} {at}");
        }
    }
    out
}

fn header(out: &mut String, family: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
}

fn gauge(out: &mut String, family: &str, help: &str, value: u64) {
    header(out, family, help, "gauge");
    let _ = writeln!(out, "{family} {value}");
}

/// `labels` is empty or ends with a comma: the `le` label follows.
fn histogram(out: &mut String, family: &str, labels: &str, h: &Histogram) {
    let mut cumulative = 0;
    for (bound, count) in BOUNDS_MICROS.iter().zip(h.buckets) {
        cumulative += count;
        let le = *bound as f64 / 1e6;
        let _ = writeln!(out, "{family}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
    }
    let count = h.count();
    let _ = writeln!(out, "{family}_bucket{{{labels}le=\"+Inf\"}} {count}");
    let labels = labels.trim_end_matches(',');
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{family}_sum{braces} {}", h.sum_micros as f64 / 1e6);
    let _ = writeln!(out, "{family}_count{braces} {count}");
}

/// A label value as the text format wants it. The format itself escapes only `\`, `"` and a
/// newline; a frontend id from Redis may hold any control character (a CR, an ESC sequence for
/// whoever reads a scrape on a terminal), so those are first shown as `\xHH` text, as in the
/// logs, and that text is then escaped for the format like any other.
fn escape(value: &str) -> String {
    crate::escape::Controls(value)
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_value_from_redis_carries_no_control_character() {
        let id = "site\r\n\u{1b}[31m\"x\"\\";
        let value = escape(id);
        assert!(!value.chars().any(char::is_control), "{value:?}");
        assert_eq!(value, r#"site\\x0D\\x0A\\x1B[31m\"x\"\\"#);
    }
}
