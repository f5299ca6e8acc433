//! HTTP/3 (`https.http3`): QUIC on each https listener's port, through the same request path as
//! HTTP/1 and HTTP/2, checked with a real client (aioquic, `support::h3`); and the `Alt-Svc`
//! field that sends HTTPS clients over TCP there.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::metrics::{admin_addr, hipache_metrics, status_json};
use crate::support::h3::{self, field, request};
use crate::support::procfs;
use crate::support::raw_backend::{ok, read_line, RawBackend, IO_TIMEOUT, MIB};
use crate::support::runtime::block_on;
use crate::support::websocket::WebSocketEcho;
use crate::support::{h2c, tls, wait_until, Backend, Config, Hipache, RedisServer, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A proxy serving `host` on https (HTTP/3 on when `http3`), with the certificate's path, which
/// the client trusts.
fn https_proxy(redis: &RedisServer, host: &str, http3: bool, patch: Value) -> (Hipache, PathBuf) {
    let config = Config::redis(redis);
    let (key, cert) = tls::cert(&[host]).write(config.dir(), "server");
    let hipache = Hipache::start(
        config
            .with(json!({
                "https": {
                    "port": 0, "bind": ["127.0.0.1"], "key": key, "cert": cert, "http3": http3
                }
            }))
            .with(patch),
    );
    (hipache, cert)
}

#[test]
fn a_get_over_http3_reaches_the_backend_and_is_logged() {
    let redis = RedisServer::start();
    let backend = Backend::named("b1");
    redis.frontend("h3.test", "h3", &[&backend.url()]);
    let admin = json!({ "logging": { "web": { "host": "127.0.0.1", "port": 0 } } });
    let (hipache, ca) = https_proxy(&redis, "h3.test", true, admin);

    let get = request("GET", "h3.test", "/three?x=1", &[("user-agent", "aioquic")]);
    let results = h3::run(hipache.https_addr(), "h3.test", &ca, &[get]);

    assert_eq!(results[0]["status"], 200, "{results:?}");
    assert_eq!(results[0]["body"], "b1");
    let seen = &backend.requests()[0];
    assert_eq!(seen.path, "/three?x=1");
    assert_eq!(seen.header("host"), Some("h3.test"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    let lines = hipache.wait_access_log_lines(1);
    assert!(
        lines[0].contains("\"GET /three?x=1 HTTP/3.0\" 200"),
        "{lines:?}"
    );
    // Counted by protocol, on /metrics and the status page.
    let admin = admin_addr(&hipache);
    let counted = "hipache_protocol_requests_total{protocol=\"http3\"} 1";
    wait_until(IO_TIMEOUT, "the HTTP/3 request counted", || {
        hipache_metrics(admin).contains(counted)
    });
    let status = status_json(admin);
    assert_eq!(status["protocols"]["http3"], 1, "{status}");
    // The connection's bytes count once it ended.
    wait_until(IO_TIMEOUT, "the HTTP/3 connection's bytes counted", || {
        let status = status_json(admin);
        status["bytes_in"].as_u64() > Some(0) && status["bytes_out"].as_u64() > Some(0)
    });
    assert_eq!(status["protocols"]["http2"], 0, "{status}");
}

#[test]
fn https_answers_over_tcp_point_to_http3_only_when_it_is_on() {
    let redis = RedisServer::start();
    let backend = Backend::named("alt");
    redis.frontend("alt.test", "alt", &[&backend.url()]);
    for http3 in [true, false] {
        let (hipache, _) = https_proxy(&redis, "alt.test", http3, json!({}));
        let port = hipache.https_addr().port();
        let expected = http3.then(|| format!("h3=\":{port}\"; ma=86400"));

        for target in ["/", "/?page-of-ours"] {
            // A backend's answer, and a page of our own (the unknown host's 400).
            let host = if target == "/" {
                "alt.test"
            } else {
                "nobody.test"
            };
            let head = block_on(async {
                let mut stream =
                    tls::connect(hipache.https_addr(), "alt.test", &[b"http/1.1"]).await;
                let request =
                    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
                stream.write_all(request.as_bytes()).await.unwrap();
                let mut answer = Vec::new();
                stream.read_to_end(&mut answer).await.unwrap();
                String::from_utf8_lossy(&answer).into_owned()
            });
            let alt_svc = head
                .lines()
                .find_map(|line| line.strip_prefix("Alt-Svc: "))
                .map(str::to_owned);
            assert_eq!(alt_svc, expected, "{head}");
        }

        let alt_svc = block_on(async {
            let stream = tls::connect(hipache.https_addr(), "alt.test", &[b"h2"]).await;
            let (mut sender, _) = h2c::handshake(stream).await;
            let request = hyper::Request::get("https://alt.test/")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let alt_svc = response.headers().get("alt-svc");
            alt_svc.map(|v| v.to_str().unwrap().to_owned())
        });
        assert_eq!(alt_svc, expected);

        // Plain HTTP points nowhere: the alternative is for the https origin.
        let plain = Request::get("alt.test", "/").send(hipache.addr());
        assert_eq!(plain.header("alt-svc"), None);
    }
}

#[test]
fn fifty_concurrent_streams_on_one_connection_are_all_answered() {
    let redis = RedisServer::start();
    let backend = Backend::named("many");
    redis.frontend("many.test", "many", &[&backend.url()]);
    let (hipache, ca) = https_proxy(&redis, "many.test", true, json!({}));

    let plan: Vec<Value> = (0..50)
        .map(|i| request("GET", "many.test", &format!("/n/{i}"), &[]))
        .collect();
    let results = h3::run(hipache.https_addr(), "many.test", &ca, &plan);

    for result in &results {
        assert_eq!(
            (result["status"].clone(), result["body"].clone()),
            (json!(200), json!("many")),
            "{result}"
        );
    }
    let mut paths: Vec<String> = backend.requests().into_iter().map(|s| s.path).collect();
    paths.sort();
    let mut expected: Vec<String> = (0..50).map(|i| format!("/n/{i}")).collect();
    expected.sort();
    assert_eq!(paths, expected);
}

#[test]
fn a_large_upload_is_echoed_while_it_streams() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(crate::duplex::echo);
    redis.frontend("echo.test", "echo", &[&backend.url()]);
    let (hipache, ca) = https_proxy(&redis, "echo.test", true, json!({}));
    let size = 32 * MIB;

    let mut upload = request(
        "POST",
        "echo.test",
        "/echo",
        &[("content-length", &size.to_string())],
    );
    upload["upload_bytes"] = json!(size);
    let results = h3::run(hipache.https_addr(), "echo.test", &ca, &[upload]);

    let result = &results[0];
    assert_eq!(result["status"], 200, "{result}");
    assert_eq!(result["body_bytes"], size, "{result}");
    assert_eq!(
        result["body_ok"], true,
        "the echo is the upload, byte for byte"
    );
    assert_eq!(
        result["answer_before_upload_end"], true,
        "the answer began while the upload was still being sent"
    );
    let _ = field(result, "date");
}

#[test]
fn early_hints_reach_the_client_before_the_answer() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| {
        if peer.request().is_some() {
            peer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n");
            peer.write(&ok("final"));
        }
    });
    redis.frontend("hints.test", "hints", &[&backend.url()]);
    let (hipache, ca) = https_proxy(&redis, "hints.test", true, json!({}));

    let get = request("GET", "hints.test", "/page", &[]);
    let results = h3::run(hipache.https_addr(), "hints.test", &ca, &[get]);

    let result = &results[0];
    assert_eq!(result["interim"], json!([103]), "{result}");
    assert_eq!(
        (result["status"].clone(), result["body"].clone()),
        (json!(200), json!("final"))
    );
}

#[test]
fn trailers_cross_both_ways() {
    let redis = RedisServer::start();
    let backend = RawBackend::start(|peer| {
        if peer.request().is_some() {
            peer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n\
                  5\r\nhello\r\n0\r\nx-checksum: abc\r\n\r\n",
            );
        }
    });
    redis.frontend("trail.test", "trail", &[&backend.url()]);
    let (hipache, ca) = https_proxy(&redis, "trail.test", true, json!({}));

    let mut post = request("POST", "trail.test", "/t", &[("te", "trailers")]);
    post["body"] = json!("data");
    post["trailers"] = json!([["x-client-sum", "42"]]);
    let results = h3::run(hipache.https_addr(), "trail.test", &ca, &[post]);

    let result = &results[0];
    assert_eq!(
        (result["status"].clone(), result["body"].clone()),
        (json!(200), json!("hello")),
        "{result}"
    );
    assert_eq!(result["trailers"], json!([["x-checksum", "abc"]]));
    let seen = &backend.requests()[0];
    assert_eq!(seen.body, b"data");
    assert_eq!(
        seen.trailers,
        [("x-client-sum".to_owned(), "42".to_owned())]
    );
}

#[test]
fn malformed_requests_are_refused_and_never_forwarded() {
    let redis = RedisServer::start();
    let backend = Backend::named("never");
    redis.frontend("bad.test", "bad", &[&backend.url()]);
    let (hipache, ca) = https_proxy(&redis, "bad.test", true, json!({}));

    let plan = [
        // An unknown pseudo-header: `h3` resets the stream (H3_MESSAGE_ERROR).
        request("GET", "bad.test", "/", &[(":foo", "bar")]),
        // Connection-specific fields are malformed in HTTP/3.
        request("GET", "bad.test", "/", &[("connection", "close")]),
        request("GET", "bad.test", "/", &[("transfer-encoding", "chunked")]),
        // `host` and `:authority` that disagree.
        request("GET", "bad.test", "/", &[("host", "other.test")]),
        // No `:scheme`.
        json!({ "headers": [[":method", "GET"], [":authority", "bad.test"], [":path", "/"]] }),
        // A body longer than its `content-length`.
        {
            let mut long = request("POST", "bad.test", "/", &[("content-length", "2")]);
            long["body"] = json!("three");
            long
        },
    ];
    let results = h3::run(hipache.https_addr(), "bad.test", &ca, &plan);

    for result in &results {
        let refused = result["status"] == 400
            || result["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("reset"));
        assert!(refused, "{result}");
    }
    assert_eq!(backend.request_count(), 0);
    // A head over the HTTP/1 limits gets their 431, on that stream only: the connection's
    // good request is served.
    let names: Vec<String> = (0..120).map(|i| format!("x-field-{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let plan = [
        request("GET", "bad.test", "/", &many),
        request("GET", "bad.test", "/", &[]),
    ];
    let results = h3::run(hipache.https_addr(), "bad.test", &ca, &plan);
    assert_eq!(results[0]["status"], 431, "{}", results[0]);
    assert_eq!(results[1]["status"], 200, "{}", results[1]);
    assert_eq!(backend.request_count(), 1);
}

#[test]
fn an_upload_reset_by_the_client_closes_the_backend_connection() {
    let redis = RedisServer::start();
    let (received, receiving) = std::sync::mpsc::channel();
    let backend = RawBackend::start(move |peer| {
        let Some(line) = read_line(&mut peer.wire.0) else {
            return;
        };
        while read_line(&mut peer.wire.0).is_some_and(|l| !l.is_empty()) {}
        let mut body = Vec::new();
        // Ends at the proxy's close: the body never comes whole.
        let _ = std::io::Read::read_to_end(&mut peer.wire.0, &mut body);
        let _ = received.send((line, body.len()));
    });
    redis.frontend("reset.test", "reset", &[&backend.url()]);
    let (hipache, ca) = https_proxy(&redis, "reset.test", true, json!({}));
    let size = 4 * MIB;

    let mut upload = request(
        "POST",
        "reset.test",
        "/up",
        &[("content-length", &size.to_string())],
    );
    upload["upload_bytes"] = json!(size);
    upload["reset_after"] = json!(MIB);
    h3::run(hipache.https_addr(), "reset.test", &ca, &[upload]);

    let (line, bytes) = receiving
        .recv_timeout(IO_TIMEOUT)
        .expect("the backend's connection closed");
    assert_eq!(line, "POST /up HTTP/1.1");
    assert!(bytes < size, "the backend got {bytes} of {size} bytes");
}

#[test]
fn a_reload_lets_an_http3_request_in_flight_finish() {
    let redis = RedisServer::start();
    let backend = Backend::builder()
        .name("slow")
        .delay(std::time::Duration::from_secs(2))
        .start();
    redis.frontend("slow.test", "slow", &[&backend.url()]);
    let (hipache, ca) = https_proxy(&redis, "slow.test", true, json!({"user": "nobody"}));
    let addr = hipache.https_addr();

    let trusted = ca.clone();
    let client = std::thread::spawn(move || {
        h3::run(
            addr,
            "slow.test",
            &trusted,
            &[request("GET", "slow.test", "/slow", &[])],
        )
    });
    wait_until(IO_TIMEOUT, "the request to reach the backend", || {
        backend.request_count() == 1
    });
    hipache.reload();
    let results = client.join().unwrap();

    assert_eq!(
        (results[0]["status"].clone(), results[0]["body"].clone()),
        (json!(200), json!("slow"))
    );
    // The new generation serves HTTP/3 too.
    let results = h3::run(
        addr,
        "slow.test",
        &ca,
        &[request("GET", "slow.test", "/", &[])],
    );
    assert_eq!(results[0]["status"], 200);
}

#[test]
fn a_websocket_over_http3_is_tunnelled_to_an_http1_backend() {
    let redis = RedisServer::start();
    let backend = WebSocketEcho::start();
    redis.frontend("ws.test", "ws", &[&backend.url()]);
    let (hipache, ca) = https_proxy(&redis, "ws.test", true, json!({}));

    let fields = [(":protocol", "websocket"), ("sec-websocket-version", "13")];
    let mut connect = request("CONNECT", "ws.test", "/chat", &fields);
    connect["websocket"] = json!(["hello", "over quic"]);
    let results = h3::run(hipache.https_addr(), "ws.test", &ca, &[connect]);

    let result = &results[0];
    assert_eq!(result["status"], 200, "{result}");
    assert_eq!(
        result["messages"],
        json!(["hello", "over quic"]),
        "{result}"
    );
    let handshake = &backend.handshakes()[0];
    let field = |name: &str| {
        handshake
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("upgrade"), Some("websocket"), "{handshake:?}");
    let lines = hipache.wait_access_log_lines(1);
    assert!(
        lines[0].contains("\"CONNECT /chat HTTP/3.0\" 200"),
        "{lines:?}"
    );
}

#[test]
fn a_killed_worker_costs_only_its_own_http3_connections() {
    let redis = RedisServer::start();
    let (arrived, arrivals) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    let backend = RawBackend::start(move |peer| {
        if peer.request().is_none() {
            return;
        }
        let port = peer.wire.0.get_ref().peer_addr().unwrap().port();
        let _ = arrived.send(port);
        if released.lock().unwrap().recv_timeout(IO_TIMEOUT).is_ok() {
            peer.write(&ok("survived"));
        }
    });
    redis.frontend("kill.test", "kill", &[&backend.url()]);
    let patch = json!({ "user": "nobody", "server": { "workers": 2 } });
    let (hipache, ca) = https_proxy(&redis, "kill.test", true, patch);
    let addr = hipache.https_addr();

    let trusted = ca.clone();
    let client = std::thread::spawn(move || {
        h3::run(
            addr,
            "kill.test",
            &trusted,
            &[request("GET", "kill.test", "/long", &[])],
        )
    });
    let port = arrivals
        .recv_timeout(IO_TIMEOUT)
        .expect("the request reached the backend");
    let workers = hipache.worker_pids();
    let serving = workers
        .iter()
        .copied()
        .find(|&pid| procfs::connected_ports_of(pid).contains(&port))
        .expect("the worker holding the backend connection");
    let other = workers
        .into_iter()
        .find(|&pid| pid != serving)
        .expect("a second worker");
    hipache.replace_worker(other);
    release.send(()).unwrap();
    let results = client.join().unwrap();

    assert_eq!(
        (results[0]["status"].clone(), results[0]["body"].clone()),
        (json!(200), json!("survived"))
    );
    // A new connection is served, whichever worker its datagrams reach.
    release.send(()).unwrap();
    let results = h3::run(
        addr,
        "kill.test",
        &ca,
        &[request("GET", "kill.test", "/", &[])],
    );
    assert_eq!(results[0]["status"], 200, "{results:?}");
}

#[test]
fn a_flood_of_streams_waits_for_the_streams_a_connection_may_have_open() {
    let redis = RedisServer::start();
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let most = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (counting, highest) = (open.clone(), most.clone());
    // Holds every request until 100 are held at once, which the proxy's limit allows and a
    // 101st cannot join: its stream waits for one of these to end.
    let backend = RawBackend::start(move |peer| {
        use std::sync::atomic::Ordering::SeqCst;
        if peer.request().is_none() {
            return;
        }
        let now = counting.fetch_add(1, SeqCst) + 1;
        highest.fetch_max(now, SeqCst);
        wait_until(IO_TIMEOUT, "100 requests held at once", || {
            highest.load(SeqCst) >= 100
        });
        counting.fetch_sub(1, SeqCst);
        peer.write(&ok("held"));
    });
    redis.frontend("flood.test", "flood", &[&backend.url()]);
    let patch = json!({ "server": { "maxSockets": 1000 } });
    let (hipache, ca) = https_proxy(&redis, "flood.test", true, patch);

    let plan: Vec<Value> = (0..250)
        .map(|i| request("GET", "flood.test", &format!("/f/{i}"), &[]))
        .collect();
    let results = h3::run(hipache.https_addr(), "flood.test", &ca, &plan);

    assert_eq!(results[0]["peer_max_streams"], 100, "{}", results[0]);
    for result in &results {
        assert_eq!(result["status"], 200, "{result}");
    }
    assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 100);
}

#[test]
fn early_data_is_taken_only_when_early_data_is_on() {
    let redis = RedisServer::start();
    let backend = Backend::named("early");
    redis.frontend("early.test", "early", &[&backend.url()]);
    for early_data in [false, true] {
        let patch = json!({ "https": { "earlyData": early_data } });
        let (hipache, ca) = https_proxy(&redis, "early.test", true, patch);

        let get = request("GET", "early.test", "/0rtt", &[]);
        let results = h3::run_in_early_data(hipache.https_addr(), "early.test", &ca, &[get]);

        let result = &results[0];
        assert_eq!(
            (result["status"].clone(), result["body"].clone()),
            (json!(200), json!("early")),
            "{result}"
        );
        assert_eq!(result["resumed"], true, "{result}");
        assert_eq!(result["early_data_accepted"], early_data, "{result}");
    }
}

#[test]
fn http3_serves_the_redis_certificate_the_worker_holds() {
    let redis = RedisServer::start();
    let backend = Backend::named("from-redis");
    redis.frontend("r.test", "r", &[&backend.url()]);
    let in_redis = tls::cert(&["r.test"]);
    crate::redis_certs::store(&redis, "r.test", &in_redis);
    let config = Config::redis(&redis);
    let (key, cert) = tls::cert(&["listener.test"]).write(config.dir(), "listener");
    let ca = config.dir().join("in-redis.pem");
    std::fs::write(&ca, &in_redis.cert_pem).unwrap();
    let hipache = Hipache::start(config.with(json!({
        "user": "nobody",
        "https": {
            "port": 0, "bind": ["127.0.0.1"], "key": key, "cert": cert,
            "redisCertificates": true, "http3": true
        }
    })));

    // An https client over TCP has the worker read the name's certificate from Redis.
    let names = block_on(async {
        let stream = tls::connect(hipache.https_addr(), "r.test", &[b"http/1.1"]).await;
        tls::peer_names(&stream)
    });
    assert_eq!(names, ["r.test"]);
    let get = request("GET", "r.test", "/", &[]);
    let results = h3::run(hipache.https_addr(), "r.test", &ca, &[get]);

    assert_eq!(
        (results[0]["status"].clone(), results[0]["body"].clone()),
        (json!(200), json!("from-redis"))
    );
}
