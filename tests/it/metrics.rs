//! The `metrics` and `logging` sections: statsd lines and access-log datagrams on real UDP
//! sockets, the admin listener's `/metrics` and status page summing known traffic over two
//! workers, and the exposition as Prometheus's own tool and the shipped dashboard and alert
//! rules (`contrib/`) read it.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::h2c;
use crate::support::procfs::listening_ports_of;
use crate::support::runtime::block_on;
use crate::support::tls;
use crate::support::wait::wait_for;
use crate::support::{wait_until, Backend, Config, Hipache, RedisServer, Request};

/// The admin listener's address: the one port the master listens on besides the proxy's own
/// (http and https), from /proc (`logging.web.port: 0` binds a free one on 127.0.0.1).
pub(crate) fn admin_addr(hipache: &Hipache) -> SocketAddr {
    wait_for(Duration::from_secs(5), "the admin listener", || {
        let mut ports = listening_ports_of(hipache.pid());
        let proxied = hipache.proxied_ports();
        ports.retain(|port| !proxied.contains(port));
        match ports[..] {
            [admin] => Some(SocketAddr::from(([127, 0, 0, 1], admin))),
            _ => None,
        }
    })
}

fn udp_socket() -> (UdpSocket, u16) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("udp timeout");
    let port = socket.local_addr().expect("udp address").port();
    (socket, port)
}

/// Every datagram received until `done` holds for what was received, or the deadline.
fn receive_until(socket: &UdpSocket, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut received = Vec::new();
    let mut buf = [0u8; 65536];
    while !done(&received) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; received {received:#?}"
        );
        if let Ok(n) = socket.recv(&mut buf) {
            received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    received
}

/// The sum of the statsd counter `key` over `lines` (`key:N|c`).
fn counted(lines: &[String], key: &str) -> u64 {
    lines
        .iter()
        .flat_map(|datagram| datagram.lines())
        .filter_map(|line| {
            line.strip_prefix(key)?
                .strip_prefix(':')?
                .strip_suffix("|c")
        })
        .map(|n| n.parse::<u64>().expect("a counter value"))
        .sum()
}

#[test]
fn statsd_lines_carry_the_session_and_access_log_lines_go_out_as_datagrams() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    redis.frontend("site.test", "my.site", &[&backend.url()]);
    let (statsd, statsd_port) = udp_socket();
    let (shipped, log_port) = udp_socket();
    let config = Config::redis(&redis).with(json!({
        "server": { "accessLog": "" },
        "metrics": { "host": "127.0.0.1", "port": statsd_port, "session": "hip" },
        "logging": { "udp": { "host": "127.0.0.1", "port": log_port } }
    }));
    let access_log = config.access_log();
    let hipache = Hipache::start(config);
    for path in ["/a", "/b", "/c"] {
        assert_eq!(hipache.get("site.test", path).status, 200);
    }

    let lines = receive_until(&shipped, "3 access log datagrams", |r| r.len() >= 3);
    for (line, path) in lines.iter().zip(["/a", "/b", "/c"]) {
        assert!(line.starts_with("::ffff:127.0.0.1 - - ["), "{line:?}");
        assert!(
            line.contains(&format!("\"GET {path} HTTP/1.1\" 200 2 ")),
            "{line:?}"
        );
        assert!(
            line.contains(" \"my.site\" ") && line.ends_with('\n'),
            "{line:?}"
        );
        assert_eq!(
            line.matches('\n').count(),
            1,
            "one line per datagram: {line:?}"
        );
    }
    assert!(!access_log.exists(), "accessLog null writes no file");

    let lines = receive_until(&statsd, "hip.requests to reach 3", |r| {
        counted(r, "hip.requests") >= 3
            && r.iter()
                .any(|d| d.starts_with("hip.frontend.my_site.latency:"))
    });
    assert_eq!(counted(&lines, "hip.requests"), 3);
    assert_eq!(counted(&lines, "hip.responses.2xx"), 3);
    assert_eq!(counted(&lines, "hip.frontend.my_site.requests"), 3);
    let all: Vec<&str> = lines.iter().flat_map(|d| d.lines()).collect();
    assert!(all.iter().all(|l| l.starts_with("hip.")), "{all:#?}");
    assert!(
        all.iter()
            .any(|l| l.starts_with("hip.backend.latency:") && l.contains("|ms")),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .any(|l| l.starts_with("hip.frontend.my_site.latency:")),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .any(|l| l.starts_with("hip.connections.open:") && l.ends_with("|g")),
        "{all:#?}"
    );
    assert!(
        counted(&lines, "hip.bytes.out") > 0 && counted(&lines, "hip.bytes.in") > 0,
        "{all:#?}"
    );
}

#[test]
fn admin_page_and_prometheus_sum_known_traffic_over_two_workers() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let refusing = Backend::builder().refusing().start();
    redis.frontend("site.test", "site", &[&backend.url()]);
    redis.frontend("down.test", "down", &[&refusing.url()]);
    let config = Config::redis(&redis).with(json!({
        "server": { "workers": 2 },
        "logging": { "web": { "host": "127.0.0.1", "port": 0 } }
    }));
    let hipache = Hipache::start(config);
    let admin = admin_addr(&hipache);
    const SITE: u64 = 12;
    const SITE_H2: u64 = 4;
    const DOWN: u64 = 3;
    for _ in 0..SITE - SITE_H2 {
        assert_eq!(hipache.get("site.test", "/").status, 200);
    }
    // HTTP/2 (h2c, prior knowledge) goes through the same attempt loop and counts alike.
    for _ in 0..SITE_H2 {
        let (status, _) = block_on(async {
            let tcp = tokio::net::TcpStream::connect(hipache.addr())
                .await
                .unwrap();
            h2c::get(tcp, "http://site.test/").await
        });
        assert_eq!(status, 200);
    }
    for _ in 0..DOWN {
        assert_eq!(hipache.get("down.test", "/").status, 502);
    }
    assert_eq!(hipache.get("nowhere.test", "/").status, 400);

    let status = Request::get("admin", "/")
        .header("Accept", "application/json")
        .send(admin);
    assert_eq!(status.status, 200);
    let status: Value = serde_json::from_str(&status.text()).expect("status json");
    assert_eq!(status["workers"], 2, "{status:#}");
    assert_eq!(status["requests"], SITE + DOWN + 1, "{status:#}");
    assert_eq!(status["responses"]["2xx"], SITE, "{status:#}");
    assert_eq!(status["responses"]["5xx"], DOWN, "{status:#}");
    assert_eq!(status["responses"]["4xx"], 1, "{status:#}");
    assert_eq!(status["dead_marks"], DOWN, "{status:#}");
    let frontend = |host: &str| {
        status["frontends"]
            .as_array()
            .and_then(|all| all.iter().find(|f| f["host"] == host))
            .unwrap_or_else(|| panic!("{host} in {status:#}"))
            .clone()
    };
    let site = frontend("site.test");
    assert_eq!(
        (site["id"].clone(), site["requests"].clone()),
        (json!("site"), json!(SITE))
    );
    assert_eq!(site["errors"], 0);
    assert_eq!(site["backends"][0]["url"], backend.normalised_url());
    assert_eq!(site["backends"][0]["state"], "live");
    assert_eq!(site["backends"][0]["requests"], SITE);
    assert_eq!(site["latency_ms"]["count"], SITE);
    let down = frontend("down.test");
    assert_eq!(
        (down["requests"].clone(), down["errors"].clone()),
        (json!(DOWN), json!(DOWN))
    );
    assert_eq!(down["backends"][0]["state"], "dead", "{down:#}");

    let page = Request::get("admin", "/")
        .header("Accept", "text/html")
        .send(admin);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    assert!(
        html.contains("<td>site.test</td>") && html.contains("dead</span>"),
        "{html}"
    );

    let metrics = hipache_metrics(admin);
    for expected in [
        format!("hipache_requests_total {}", SITE + DOWN + 1),
        format!("hipache_responses_total{{class=\"2xx\"}} {SITE}"),
        format!("hipache_responses_total{{class=\"5xx\"}} {DOWN}"),
        format!("hipache_frontend_requests_total{{frontend=\"site\"}} {SITE}"),
        format!("hipache_frontend_responses_total{{frontend=\"down\",class=\"5xx\"}} {DOWN}"),
        format!("hipache_latency_seconds_count {SITE}"),
        format!("hipache_frontend_latency_seconds_count{{frontend=\"site\"}} {SITE}"),
        format!("hipache_dead_marks_total {DOWN}"),
        "# TYPE hipache_backend_latency_seconds histogram".to_owned(),
        "hipache_workers 2".to_owned(),
    ] {
        assert!(
            metrics.lines().any(|l| l == expected),
            "{expected:?} in\n{metrics}"
        );
    }
}

pub(crate) fn hipache_metrics(admin: SocketAddr) -> String {
    let response = Request::get("admin", "/metrics").send(admin);
    assert_eq!(response.status, 200);
    response.text()
}

pub(crate) fn status_json(admin: SocketAddr) -> Value {
    let response = Request::get("admin", "/")
        .header("Accept", "application/json")
        .send(admin);
    assert_eq!(response.status, 200);
    serde_json::from_str(&response.text()).expect("status json")
}

#[test]
fn open_tunnels_are_gauges_and_counts_outlive_the_worker_that_made_them() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let redis = RedisServer::start();
    let echo = crate::support::websocket::WebSocketEcho::start();
    let backend = Backend::named("b1");
    redis.frontend("ws.test", "ws", &[&echo.url()]);
    redis.frontend("site.test", "site", &[&backend.url()]);
    let config = Config::redis(&redis).with(json!({
        "logging": { "web": { "host": "127.0.0.1", "port": 0 } }
    }));
    let hipache = Hipache::start(config);
    let admin = admin_addr(&hipache);
    let gauges = |tunnels: u64, connections: u64| {
        wait_for(
            Duration::from_secs(5),
            &format!("{tunnels} tunnel(s) and {connections} connection(s) open"),
            || {
                let status = status_json(admin);
                (status["tunnels_open"] == tunnels && status["connections_open"] == connections)
                    .then_some(())
            },
        )
    };

    block_on(async {
        let tcp = tokio::net::TcpStream::connect(hipache.addr())
            .await
            .unwrap();
        let request = "ws://ws.test/".into_client_request().unwrap();
        let (mut socket, _) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
        socket.send(Message::text("hello")).await.unwrap();
        assert_eq!(
            socket.next().await.unwrap().unwrap(),
            Message::text("hello")
        );
        gauges(1, 1);
        socket.close(None).await.unwrap();
        while socket.next().await.is_some() {}
    });
    gauges(0, 0);

    const SENT: u64 = 5;
    for _ in 0..SENT {
        assert_eq!(hipache.get("site.test", "/").status, 200);
    }
    let before = status_json(admin);
    assert_eq!(before["requests"], SENT + 1, "{before:#}");
    assert_eq!(before["responses"]["1xx"], 1, "{before:#}");
    hipache.replace_worker(hipache.worker_pids()[0]);
    // Pings are not counted: they tell when the replacement serves without adding a request.
    wait_until(
        Duration::from_secs(10),
        "the replacement worker to serve",
        || {
            Request::get("__ping__", "/")
                .try_send(hipache.addr())
                .is_ok_and(|r| r.status == 200)
        },
    );
    assert_eq!(hipache.get("site.test", "/").status, 200);
    let after = status_json(admin);
    assert_eq!(after["workers"], 1, "{after:#}");
    assert_eq!(
        after["requests"],
        SENT + 2,
        "the killed worker's counts stay: {after:#}"
    );
    let site = after["frontends"]
        .as_array()
        .and_then(|all| all.iter().find(|f| f["host"] == "site.test"))
        .expect("site.test in the status");
    assert_eq!(site["requests"], SENT + 1, "{after:#}");
}

/// `hipache_redis_reconnects_total` as `/metrics` shows it.
fn redis_reconnects(admin: SocketAddr) -> u64 {
    let text = hipache_metrics(admin);
    text.lines()
        .find_map(|line| line.strip_prefix("hipache_redis_reconnects_total "))
        .unwrap_or_else(|| panic!("no reconnect count in:\n{text}"))
        .trim()
        .parse()
        .expect("a whole count")
}

#[test]
fn redis_reconnects_count_connections_lost_and_made_again_not_new_workers() {
    let mut redis = RedisServer::start();
    let backend = Backend::named("b1");
    redis.frontend("site.test", "site", &[&backend.url()]);
    // Production shape: a root master with unprivileged workers.
    let config = Config::redis(&redis).with(json!({
        "server": { "workers": 2 },
        "logging": { "web": { "host": "127.0.0.1", "port": 0 } },
        "user": "nobody",
        "group": "nogroup"
    }));
    let hipache = Hipache::start(config);
    let admin = admin_addr(&hipache);
    assert_eq!(hipache.get("site.test", "/").status, 200);

    // A reload replaces both workers; each new one connects for the first time.
    let first = hipache.worker_pids();
    hipache.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(10), "a new generation serving", || {
        let now = hipache.worker_pids();
        now.len() == 2
            && now.iter().all(|pid| !first.contains(pid))
            && hipache.get("site.test", "/").status == 200
    });
    assert_eq!(redis_reconnects(admin), 0);

    // A real loss: the server restarts, and the connections come back.
    redis.stop();
    redis.restart();
    redis.frontend("site.test", "site", &[&backend.url()]);
    wait_until(
        Duration::from_secs(10),
        "reconnects after the restart",
        || redis_reconnects(admin) >= 2,
    );
}

#[test]
fn a_force_secure_redirect_is_counted_as_a_3xx_answer() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    redis.frontend("www.secure.test", "secure", &[&backend.url()]);
    let config = Config::redis(&redis);
    let (key, cert) = crate::support::tls::cert(&["www.secure.test"]).write(config.dir(), "server");
    let hipache = Hipache::start(config.with(json!({
        "server": { "forceSecure": true },
        "https": { "port": 0, "bind": ["127.0.0.1"], "key": key, "cert": cert },
        "logging": { "web": { "host": "127.0.0.1", "port": 0 } }
    })));
    let admin = admin_addr(&hipache);

    for _ in 0..2 {
        assert_eq!(hipache.get("www.secure.test", "/").status, 301);
    }

    let status = status_json(admin);
    assert_eq!(status["responses"]["3xx"], 2, "{status:#}");
    assert_eq!(status["requests"], 2, "{status:#}");
    let text = hipache_metrics(admin);
    assert!(
        text.lines()
            .any(|l| l == "hipache_responses_total{class=\"3xx\"} 2"),
        "{text}"
    );
}

/// The shipped Grafana dashboard and Prometheus alert rules, relative to the repository.
const DASHBOARD: &str = "contrib/grafana/hipache-dashboard.json";
const ALERT_RULES: &str = "contrib/prometheus/hipache-alerts.yml";
const PROMTOOL_INSTALL: &str = "apt-get install -y --no-install-recommends prometheus";

/// Runs `promtool args…` with `stdin`; its status and everything it printed.
fn promtool(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("promtool cannot run ({error}); install it: {PROMTOOL_INSTALL}")
        });
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let output = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// Every `hipache_…` identifier in `text`: the metric names a PromQL expression uses.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("hipache_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// The sample names of an exposition, and its families (`# TYPE` lines).
fn exposed_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(typed) => typed.split(' ').next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        })
        .map(str::to_owned)
        .collect()
}

/// Runs `promtool check rules` on the dashboard's queries written as recording rules, with
/// `$__rate_interval` and `$instance` replaced by what Grafana would put there.
fn check_dashboard_queries(dashboard: &Value) -> (bool, String) {
    let queries: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("the dashboard has panels")
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| {
            let query = target["expr"].as_str().expect("a query").to_owned();
            query
                .replace("$__rate_interval", "5m")
                .replace("$instance", ".*")
        })
        .collect();
    assert!(!queries.is_empty(), "the dashboard has queries");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, query) in queries.iter().enumerate() {
        let query = Value::String(query.clone());
        rules += &format!("      - record: dashboard_query_{i}\n        expr: {query}\n");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard-queries.yml");
    std::fs::write(&path, rules).unwrap();
    promtool(&["check", "rules", path.to_str().unwrap()], "")
}

/// What promtool does not check of Prometheus's naming conventions: one `# HELP` and one
/// `# TYPE` per family, a unit in a name is its last word (before `_total`), and the units
/// are base units.
fn convention_breaches(exposition: &str) -> Vec<String> {
    let mut breaches = Vec::new();
    let mut typed = BTreeSet::new();
    let mut helped = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(help) = line.strip_prefix("# HELP ") {
            let family = help.split(' ').next().unwrap_or_default();
            if !helped.insert(family.to_owned()) {
                breaches.push(format!("{family}: a second # HELP"));
            }
        }
        let Some(declared) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (family, kind) = declared.split_once(' ').unwrap_or((declared, ""));
        if !typed.insert(family.to_owned()) {
            breaches.push(format!("{family}: a second # TYPE"));
        }
        if (kind == "counter") != family.ends_with("_total") {
            breaches.push(format!("{family}: a {kind} (only counters end in _total)"));
        }
        let stem = family.strip_suffix("_total").unwrap_or(family);
        for unit in ["seconds", "bytes"] {
            if family.contains(&format!("_{unit}")) && !stem.ends_with(&format!("_{unit}")) {
                breaches.push(format!("{family}: the unit {unit} is not its last word"));
            }
        }
        const NOT_BASE: [&str; 7] = [
            "ms",
            "millis",
            "milliseconds",
            "microseconds",
            "kb",
            "mb",
            "kilobytes",
        ];
        for word in stem.split('_').filter(|w| NOT_BASE.contains(w)) {
            breaches.push(format!("{family}: {word} is not a base unit"));
        }
    }
    breaches.extend(
        typed
            .symmetric_difference(&helped)
            .map(|f| format!("{f}: HELP without TYPE or TYPE without HELP")),
    );
    breaches
}

#[test]
fn exposition_passes_promtool_and_has_every_metric_the_dashboard_and_alert_rules_use() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    let refusing = Backend::builder().refusing().start();
    redis.frontend("site.test", "site", &[&backend.url()]);
    redis.frontend("down.test", "down", &[&refusing.url()]);
    // An identifier is written by whoever writes Redis: the label value must be escaped.
    redis.frontend("odd.test", "an \"odd\" id\\", &[&backend.url()]);
    // Production's shape: a root master (the test runs as root) and unprivileged workers.
    let config = Config::redis(&redis).with(json!({
        "user": "nobody",
        "logging": { "web": { "host": "127.0.0.1", "port": 0 } }
    }));
    let (key, cert) = tls::cert(&["site.test"]).write(config.dir(), "server");
    let hipache = Hipache::start(config.with(json!({
        "https": { "port": 0, "bind": ["127.0.0.1"], "key": key, "cert": cert }
    })));
    let admin = admin_addr(&hipache);

    assert_eq!(hipache.get("site.test", "/").status, 200);
    assert_eq!(hipache.get("odd.test", "/").status, 200);
    assert_eq!(hipache.get("down.test", "/").status, 502);
    assert_eq!(hipache.get("nowhere.test", "/").status, 400);
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tls::connect(hipache.https_addr(), "site.test", &[b"http/1.1"]).await;
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
            String::from_utf8_lossy(&answer).into_owned()
        });
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    let metrics = hipache_metrics(admin);
    let (clean, printed) = promtool(&["check", "metrics"], &metrics);
    assert!(
        clean && printed.trim().is_empty(),
        "promtool check metrics:\n{printed}\non\n{metrics}"
    );
    assert_eq!(
        convention_breaches(&metrics),
        Vec::<String>::new(),
        "{metrics}"
    );
    for expected in [
        "hipache_responses_total{class=\"2xx\"} 3",
        "hipache_frontend_backends{frontend=\"down\"} 1",
        "hipache_frontend_backends_dead{frontend=\"down\"} 1",
        "hipache_frontend_backends_dead{frontend=\"site\"} 0",
        "hipache_redis_up 1",
        "hipache_worker_restarts_total{reason=\"crash\"} 0",
        "hipache_frontend_requests_total{frontend=\"an \\\"odd\\\" id\\\\\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == expected),
            "{expected:?} in\n{metrics}"
        );
    }

    let (clean, printed) = promtool(&["check", "rules", ALERT_RULES], "");
    assert!(clean, "promtool check rules {ALERT_RULES}:\n{printed}");

    // Grafana's variables made concrete, every dashboard query must parse as PromQL.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(DASHBOARD)).unwrap(),
    )
    .expect("the dashboard is JSON");
    let (clean, printed) = check_dashboard_queries(&dashboard);
    assert!(clean, "the dashboard's queries:\n{printed}");

    let exposed = exposed_names(&metrics);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [DASHBOARD, ALERT_RULES] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let used = metric_names(&text);
        assert!(!used.is_empty(), "{file} names no metric");
        // A histogram with no series yet still declares its family.
        let is_exposed = |name: &&String| {
            exposed.contains(*name)
                || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                    name.strip_suffix(suffix)
                        .is_some_and(|f| exposed.contains(f))
                })
        };
        let missing: Vec<_> = used.iter().filter(|n| !is_exposed(n)).collect();
        assert!(
            missing.is_empty(),
            "{file} uses {missing:?}, which /metrics does not expose:\n{metrics}"
        );
    }
}

/// The value of the sample `series` (name and labels as exposed) on `/metrics`.
fn sample(admin: SocketAddr, series: &str) -> Option<u64> {
    hipache_metrics(admin)
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn redis_up_follows_an_outage_and_crashed_workers_are_counted() {
    let mut redis = RedisServer::start();
    let backend = Backend::named("b1");
    redis.frontend("site.test", "site", &[&backend.url()]);
    let config = Config::redis(&redis).with(json!({
        "user": "nobody",
        "logging": { "web": { "host": "127.0.0.1", "port": 0 } }
    }));
    let hipache = Hipache::start(config);
    let admin = admin_addr(&hipache);
    assert_eq!(hipache.get("site.test", "/").status, 200);
    assert_eq!(sample(admin, "hipache_redis_up"), Some(1));

    redis.stop();
    // A request finds the connection down at once; without one the worker notices on its own.
    wait_until(Duration::from_secs(10), "hipache_redis_up 0", || {
        let _ = Request::get("site.test", "/").try_send(hipache.addr());
        sample(admin, "hipache_redis_up") == Some(0)
    });
    redis.restart();
    wait_until(Duration::from_secs(10), "hipache_redis_up 1 again", || {
        sample(admin, "hipache_redis_up") == Some(1)
    });
    assert!(sample(admin, "hipache_redis_reconnects_total").is_some_and(|n| n >= 1));

    let crashes = "hipache_worker_restarts_total{reason=\"crash\"}";
    assert_eq!(sample(admin, crashes), Some(0));
    let worker = hipache.worker_pids()[0];
    let status = std::fs::read_to_string(format!("/proc/{worker}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && !l.contains("\t0\t")),
        "the worker runs unprivileged:\n{status}"
    );
    // SAFETY: kill(2) has no memory effects; `worker` is the proxy's worker, a child of ours.
    #[expect(unsafe_code, reason = "kill(2) to crash the proxy's worker")]
    let killed = unsafe { libc::kill(worker as libc::pid_t, libc::SIGKILL) };
    assert_eq!(killed, 0);
    wait_until(Duration::from_secs(10), "the crash to be counted", || {
        sample(admin, crashes) == Some(1)
    });
}

/// `logging.web.token`: the admin listener answers only a request carrying the bearer token;
/// the effective configuration never shows it.
#[test]
fn the_admin_listener_asks_for_its_token_when_one_is_set() {
    let redis = RedisServer::start();
    let config = Config::redis(&redis).with(json!({
        "logging": { "web": { "host": "127.0.0.1", "port": 0, "token": "s3cret-t0ken" } }
    }));
    let hipache = Hipache::start(config);
    let admin = admin_addr(&hipache);
    let refused = Request::get("admin", "/metrics").send(admin);
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("WWW-Authenticate"),
        Some("Bearer realm=\"hipache\"")
    );
    let wrong = Request::get("admin", "/metrics")
        .header("Authorization", "Bearer s3cret")
        .send(admin);
    assert_eq!(wrong.status, 401);
    let served = Request::get("admin", "/metrics")
        .header("Authorization", "Bearer s3cret-t0ken")
        .send(admin);
    assert_eq!(served.status, 200);
    assert!(served.text().contains("hipache_requests_total"));

    let path = hipache.config_path();
    let dry = crate::support::hipache::run_to_exit(&["--dry", "--config", path.to_str().unwrap()]);
    let shown = String::from_utf8_lossy(&dry.stdout);
    assert!(shown.contains("logging.web.token = <redacted>"), "{shown}");
    assert!(!shown.contains("s3cret-t0ken"), "{shown}");
}
