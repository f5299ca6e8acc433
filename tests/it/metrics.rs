//! The seed's `metrics` and `logging` sections: statsd lines and access-log datagrams on real
//! UDP sockets, and the admin listener's `/metrics` and status page summing known traffic over
//! two workers.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::wait::wait_for;
use crate::support::{wait_until, Backend, Config, Hipache, RedisServer, Request};

/// The admin listener's address, from its `admin page serving admin=...` log line.
pub(crate) fn admin_addr(hipache: &Hipache) -> SocketAddr {
    wait_for(Duration::from_secs(5), "the admin page's log line", || {
        hipache.log_lines().iter().find_map(|line| {
            let start = line.find("admin=")? + "admin=".len();
            let token = line[start..].split_whitespace().next()?;
            token.trim_matches(['"', ',']).parse().ok()
        })
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..SITE_H2 {
        let (status, _) = runtime.block_on(async {
            let tcp = tokio::net::TcpStream::connect(hipache.addr())
                .await
                .unwrap();
            crate::h2::get(tcp, "http://site.test/").await
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

fn status_json(admin: SocketAddr) -> Value {
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

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
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
    let worker = hipache.worker_pids()[0];
    // SAFETY: kill(2) has no memory effects; `worker` is the proxy's worker, a child of ours.
    #[expect(unsafe_code, reason = "kill(2) to crash the proxy's worker")]
    let killed = unsafe { libc::kill(worker as libc::pid_t, libc::SIGKILL) };
    assert_eq!(killed, 0);
    // Pings are not counted: they tell when the replacement serves without adding a request.
    wait_until(
        Duration::from_secs(10),
        "a replacement worker to serve",
        || {
            hipache
                .worker_pids()
                .first()
                .is_some_and(|pid| *pid != worker)
                && Request::get("__ping__", "/")
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
