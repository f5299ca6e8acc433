//! The admin listener's status page as an operator reads it: what runs and since when, every
//! frontend of the route source, each backend's latency, and why and since when a backend is
//! dead.

use serde_json::json;

use crate::metrics::{admin_addr, status_json};
use crate::support::{Backend, Config, Hipache, RedisServer, Request};

/// In production shape: a root master, unprivileged workers.
#[test]
fn the_status_page_says_version_uptime_every_frontend_latency_and_why_a_backend_is_dead() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let refusing = Backend::builder().refusing().start();
    let spare = Backend::named("spare");
    redis.frontend("site.test", "site", &[&backend.url()]);
    redis.frontend("down.test", "down", &[&refusing.url()]);
    // In Redis, never asked for; its second backend marked dead by another node.
    redis.frontend("quiet.test", "quiet", &[&spare.url(), &refusing.url()]);
    redis.sadd("dead:quiet.test", "1");
    redis.query::<i64>(&["EXPIRE", "dead:quiet.test", "600"]);
    let config = Config::redis(&redis).with(json!({
        "server": { "workers": 2 },
        "logging": { "web": { "host": "127.0.0.1", "port": 0 } },
        "user": "nobody",
        "group": "nogroup"
    }));
    let hipache = Hipache::start(config);
    let admin = admin_addr(&hipache);
    const SITE: u64 = 6;
    for _ in 0..SITE {
        assert_eq!(hipache.get("site.test", "/").status, 200);
    }
    let unix_ms = || {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        u64::try_from(now.unwrap().as_millis()).unwrap()
    };
    let before_failure = unix_ms();
    assert_eq!(hipache.get("down.test", "/").status, 502);
    let after_failure = unix_ms();

    let status = status_json(admin);
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"), "{status:#}");
    assert!(
        status["commit"].as_str().is_some_and(|c| !c.is_empty()),
        "{status:#}"
    );
    assert!(status["uptime_secs"].is_u64(), "{status:#}");
    let made = status["generated_at"].as_str().unwrap_or_default();
    assert!(made.len() == 20 && made.ends_with('Z'), "{status:#}");
    assert_eq!(status["refresh_secs"], 10);
    assert_eq!(status["metrics_path"], "/metrics");
    assert_eq!(status["route_source"]["frontends_total"], 3, "{status:#}");
    let frontend = |host: &str| {
        status["frontends"]
            .as_array()
            .and_then(|all| all.iter().find(|f| f["host"] == host))
            .unwrap_or_else(|| panic!("{host} in {status:#}"))
            .clone()
    };

    let quiet = frontend("quiet.test");
    assert_eq!(
        (quiet["id"].clone(), quiet["requests"].clone()),
        (json!("quiet"), json!(0))
    );
    assert_eq!(quiet["backends"][0]["url"], spare.normalised_url());
    assert_eq!(quiet["backends"][0]["state"], "live");
    assert_eq!(quiet["backends"][1]["state"], "dead");
    assert_eq!(quiet["backends"][1]["dead"]["marked_in"], "redis");
    let ttl = quiet["backends"][1]["dead"]["ttl_secs"].as_u64();
    assert!(ttl.is_some_and(|ttl| ttl > 0 && ttl <= 600), "{quiet:#}");

    let site = frontend("site.test");
    let latency = &site["backends"][0]["latency_ms"];
    assert_eq!(latency["count"], SITE, "{site:#}");
    assert!(
        latency["mean"].as_f64().is_some_and(|mean| mean > 0.0),
        "{site:#}"
    );
    assert!(latency["p99_at_most"].is_f64(), "{site:#}");

    let down = frontend("down.test");
    let dead = &down["backends"][0]["dead"];
    assert_eq!(down["backends"][0]["state"], "dead", "{down:#}");
    assert_eq!(dead["reason"], "connection refused", "{down:#}");
    let since = dead["since_unix_ms"].as_u64().unwrap_or_default();
    assert!(
        (before_failure..=after_failure).contains(&since),
        "{down:#}"
    );

    let html = Request::get("admin", "/").send(admin).text();
    for shown in [
        "<meta http-equiv=\"refresh\" content=\"10\">",
        "<a href=\"/metrics\">",
        "<td>quiet.test</td>",
        "(connection refused)",
        "marked dead in Redis (",
    ] {
        assert!(html.contains(shown), "{shown} not in {html}");
    }
}
