use super::*;
use crate::metrics::{DeadMark, Snapshot};

fn totals(frontends: Vec<FrontendStats>) -> Totals {
    Totals {
        snapshot: Snapshot {
            frontends,
            ..Snapshot::default()
        },
        workers: 1,
        restarts: Default::default(),
    }
}

/// 2026-12-07T23:40:05Z.
const NOW_MS: u64 = 1_796_686_805_000;

fn facts(inventory: Option<Inventory>) -> Facts {
    Facts {
        uptime: Duration::from_secs(90_061),
        now_unix_ms: NOW_MS,
        inventory,
    }
}

fn inventory(hosts: &[(&str, Listed)]) -> Inventory {
    Inventory {
        source: "redis",
        frontends: hosts
            .iter()
            .map(|(h, l)| ((*h).to_owned(), l.clone()))
            .collect(),
        total: 1_500,
        error: None,
    }
}

fn counted(key: &str, backends: Vec<BackendStats>) -> FrontendStats {
    FrontendStats {
        key: key.into(),
        id: "a".into(),
        requests: 3,
        backends,
        ..FrontendStats::default()
    }
}

#[test]
fn the_page_names_version_uptime_time_refresh_and_metrics() {
    let status = json(&totals(vec![]), &facts(None));
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["commit"], env!("HIPACHE_COMMIT"));
    assert_eq!(status["uptime_secs"], 90_061);
    assert_eq!(status["generated_at"], "2026-12-07T23:40:05Z");
    assert_eq!(
        (
            status["refresh_secs"].as_u64(),
            status["metrics_path"].as_str()
        ),
        (Some(10), Some("/metrics"))
    );
    let page = html(&totals(vec![]), &facts(None));
    for shown in [
        "<meta http-equiv=\"refresh\" content=\"10\">",
        "refreshes every 10 s",
        "<a href=\"/metrics\">",
        "up 1d 01:01:01",
        "page made 2026-12-07T23:40:05Z",
        concat!("version ", env!("CARGO_PKG_VERSION")),
    ] {
        assert!(page.contains(shown), "{shown} not in {page}");
    }
}

#[test]
fn frontends_of_the_route_source_without_traffic_are_listed_with_their_backends() {
    let quiet = Listed {
        id: "quiet".into(),
        backends: vec!["http://127.0.0.1:7".into()],
        ..Listed::default()
    };
    let busy = counted("busy.test", vec![BackendStats::default()]);
    let facts = facts(Some(inventory(&[("quiet.test", quiet)])));
    let status = json(&totals(vec![busy]), &facts);
    let hosts: Vec<_> = status["frontends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["host"].as_str().unwrap(),
                f["in_route_source"].as_bool().unwrap(),
                f["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(hosts, [("busy.test", false, 3), ("quiet.test", true, 0)]);
    let quiet = &status["frontends"][1];
    assert_eq!(quiet["id"], "quiet");
    assert_eq!(quiet["backends"][0]["url"], "http://127.0.0.1:7");
    assert_eq!(quiet["backends"][0]["state"], "live");
    assert_eq!(status["route_source"]["frontends_total"], 1_500);
    assert_eq!(status["route_source"]["listed_at_most"], MAX_LISTED);
    let page = html(&totals(vec![]), &facts);
    assert!(
        page.contains("1 of 1500 frontends in Redis listed (at most 1000)"),
        "{page}"
    );
    assert!(page.contains("quiet.test"), "{page}");
}

#[test]
fn per_backend_latency_is_shown() {
    let mut backend = BackendStats::default();
    backend.latency.record(Duration::from_millis(4));
    backend.latency.record(Duration::from_millis(8));
    let status = json(
        &totals(vec![counted("a.test", vec![backend.clone()])]),
        &facts(None),
    );
    let latency = &status["frontends"][0]["backends"][0]["latency_ms"];
    assert_eq!(
        (latency["count"].as_u64(), latency["mean"].as_f64()),
        (Some(2), Some(6.0))
    );
    assert_eq!(latency["p99_at_most"].as_f64(), Some(10.0));
    let page = html(
        &totals(vec![counted("a.test", vec![backend])]),
        &facts(None),
    );
    assert!(
        page.contains("latency mean 6.0 ms, p99 at most 10.0 ms"),
        "{page}"
    );
}

#[test]
fn a_dead_backend_says_why_and_since_when() {
    let marked = BackendStats {
        dead: true,
        dead_mark: Some(DeadMark {
            reason: "connection refused".into(),
            since_unix_ms: NOW_MS - 65_000,
        }),
        ..BackendStats::default()
    };
    let listed = Listed {
        id: "a".into(),
        backends: vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
        dead: vec![1],
        dead_ttl_secs: Some(25),
    };
    let t = totals(vec![counted("a.test", vec![marked])]);
    let f = facts(Some(inventory(&[("a.test", listed)])));
    let status = json(&t, &f);
    let backends = &status["frontends"][0]["backends"];
    assert_eq!(backends[0]["state"], "dead");
    assert_eq!(backends[0]["dead"]["reason"], "connection refused");
    assert_eq!(backends[0]["dead"]["since"], "2026-12-07T23:39:00Z");
    assert_eq!(backends[1]["state"], "dead");
    assert_eq!(
        backends[1]["dead"],
        json!({"marked_in": "redis", "ttl_secs": 25})
    );
    let page = html(&t, &f);
    assert!(
        page.contains("dead</span> since 23:39:00 UTC (connection refused)"),
        "{page}"
    );
    assert!(page.contains("marked dead in Redis (25 s left)"), "{page}");
}

#[test]
fn text_from_redis_is_escaped_on_the_page() {
    let mut frontend = FrontendStats {
        key: "<b>a.test</b>".into(),
        id: "<script>alert('x')</script>\r\n".into(),
        ..FrontendStats::default()
    };
    frontend.backends.push(BackendStats {
        url: "http://a/\"><img src=x onerror='y'>".into(),
        dead_mark: Some(DeadMark {
            reason: "<i>".into(),
            since_unix_ms: NOW_MS,
        }),
        ..BackendStats::default()
    });
    let listed = Listed {
        id: "<u>".into(),
        backends: vec!["<s>".into()],
        ..Listed::default()
    };
    let mut inventory = inventory(&[("<em>", listed)]);
    inventory.error = Some("<q>".into());
    let page = html(&totals(vec![frontend]), &facts(Some(inventory)));
    for raw in [
        "<script>", "<b>", "<img", "'", "\r", "<i>", "<u>", "<s>", "<em>", "<q>",
    ] {
        assert!(!page.contains(raw), "{raw:?} in {page}");
    }
    assert!(
        page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;\\x0D\\x0A"),
        "{page}"
    );
}
