//! `server.stickySessions`: the `hipache_backend` cookie keeps a client on the backend that
//! answered it first, while that backend is listed and alive, across workers, for WebSocket
//! upgrades and over HTTP/2 too.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde_json::json;

use crate::support::h2c;
use crate::support::raw_http::Response;
use crate::support::runtime::runtime;
use crate::support::{Backend, Config, Hipache, RedisServer, Request};

const HOST: &str = "sticky.test";

fn sticky_proxy(redis: &RedisServer, backends: &[&Backend]) -> Hipache {
    let urls: Vec<String> = backends.iter().map(|b| b.url()).collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    redis.frontend(HOST, "sticky", &urls);
    // Two workers: a cookie set by one is honoured by the other.
    Hipache::start(
        Config::redis(redis).with(json!({ "server": { "stickySessions": true, "workers": 2 } })),
    )
}

/// The `name=value` part of the answer's `Set-Cookie`, checked for its attributes.
fn cookie_of(response: &Response) -> String {
    let set = response.header("set-cookie").expect("a Set-Cookie field");
    let mut parts = set.split("; ");
    let pair = parts.next().unwrap().to_owned();
    assert!(pair.starts_with("hipache_backend="), "{set}");
    let attributes: Vec<&str> = parts.collect();
    assert_eq!(attributes, ["Path=/", "HttpOnly"], "{set}");
    pair
}

fn get_with(hipache: &Hipache, cookie: &str) -> Response {
    hipache.send(&Request::get(HOST, "/").header("Cookie", &format!("a=1; {cookie}; b=2")))
}

#[test]
fn sticky_cookie_keeps_a_client_on_its_backend_and_moves_it_when_that_backend_dies() {
    let redis = RedisServer::start();
    let mut backends = [Some(Backend::named("b1")), Some(Backend::named("b2"))];
    let listed: Vec<&Backend> = backends.iter().flatten().collect();
    let hipache = sticky_proxy(&redis, &listed);

    let first = hipache.get(HOST, "/");
    assert_eq!(first.status, 200);
    let chosen = first.text();
    let cookie = cookie_of(&first);
    for backend in backends.iter().flatten() {
        let port = backend.addr().port().to_string();
        assert!(
            !cookie.contains(&port),
            "the cookie shows a backend port: {cookie}"
        );
    }

    for _ in 0..100 {
        let response = get_with(&hipache, &cookie);
        assert_eq!(response.text(), chosen, "a sticky request went elsewhere");
        assert_eq!(
            response.header("set-cookie"),
            None,
            "a known client got a new cookie"
        );
    }

    // Its backend dies: the next request goes to the other one and carries a new cookie, which
    // then holds.
    let index = if chosen == "b1" { 0 } else { 1 };
    drop(backends[index].take());
    let moved = get_with(&hipache, &cookie);
    assert_eq!(moved.status, 200);
    let other = moved.text();
    assert_ne!(other, chosen);
    let new_cookie = cookie_of(&moved);
    assert_ne!(new_cookie, cookie);
    for _ in 0..20 {
        assert_eq!(get_with(&hipache, &new_cookie).text(), other);
    }
    // The old cookie names a backend now marked dead: a fresh pick, and a new cookie.
    let fresh = get_with(&hipache, &cookie);
    assert_eq!(fresh.text(), other);
    assert!(fresh.header("set-cookie").is_some());
}

#[test]
fn a_forged_cookie_gets_a_fresh_pick_and_websocket_upgrades_honour_the_cookie() {
    let redis = RedisServer::start();
    let (b1, b2) = (Backend::named("b1"), Backend::named("b2"));
    let hipache = sticky_proxy(&redis, &[&b1, &b2]);

    let forged = get_with(&hipache, &format!("hipache_backend={}", "0".repeat(32)));
    assert_eq!(forged.status, 200);
    let cookie = cookie_of(&forged);
    let chosen = forged.text();

    for _ in 0..30 {
        let upgrade = hipache.send(
            &Request::get(HOST, "/socket")
                .header("Cookie", &cookie)
                .header("Connection", "Upgrade")
                .header("Upgrade", "websocket")
                .header("Sec-WebSocket-Version", "13")
                .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        );
        // The test backends do not switch protocols: their answer shows who got the upgrade.
        assert_eq!(upgrade.text(), chosen);
    }
    let upgrades = [&b1, &b2]
        .iter()
        .filter(|b| b.requests().iter().any(|r| r.path == "/socket"))
        .count();
    assert_eq!(upgrades, 1, "upgrades went to both backends");
}

#[test]
fn http2_clients_get_and_honour_the_cookie() {
    let redis = RedisServer::start();
    let (b1, b2) = (Backend::named("b1"), Backend::named("b2"));
    let hipache = sticky_proxy(&redis, &[&b1, &b2]);

    let runtime = runtime();
    let names = runtime.block_on(async {
        let mut sender = h2c::connect(hipache.addr()).await;
        let mut cookie = None;
        let mut names = Vec::new();
        for _ in 0..30 {
            let mut request = hyper::Request::get(format!("http://{HOST}/"));
            if let Some(cookie) = &cookie {
                request = request.header("cookie", cookie);
            }
            let response = sender
                .send_request(request.body(Empty::<Bytes>::new()).unwrap())
                .await
                .expect("h2c response");
            let set = response.headers().get("set-cookie").cloned();
            match (&cookie, set) {
                (None, Some(set)) => {
                    let set = set.to_str().unwrap();
                    cookie = Some(set.split(';').next().unwrap().to_owned());
                }
                (None, None) => panic!("no cookie on the first answer"),
                (Some(_), Some(set)) => panic!("a known client got a new cookie: {set:?}"),
                (Some(_), None) => {}
            }
            let body = response.into_body().collect().await.unwrap().to_bytes();
            names.push(String::from_utf8_lossy(&body).into_owned());
        }
        names
    });
    assert!(names.iter().all(|n| *n == names[0]), "{names:?}");
}

#[test]
fn a_websocket_101_carries_the_cookie_and_later_upgrades_go_to_the_same_backend() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    use crate::support::websocket::WebSocketEcho;

    let redis = RedisServer::start();
    let (e1, e2) = (WebSocketEcho::start(), WebSocketEcho::start());
    redis.frontend(HOST, "sticky", &[&e1.url(), &e2.url()]);
    let hipache =
        Hipache::start(Config::redis(&redis).with(json!({ "server": { "stickySessions": true } })));

    let runtime = runtime();
    runtime.block_on(async {
        let mut cookie: Option<String> = None;
        for _ in 0..20 {
            let tcp = tokio::net::TcpStream::connect(hipache.addr())
                .await
                .unwrap();
            let mut request = format!("ws://{HOST}/socket").into_client_request().unwrap();
            if let Some(cookie) = &cookie {
                request
                    .headers_mut()
                    .insert("cookie", cookie.parse().unwrap());
            }
            let (socket, response) = tokio_tungstenite::client_async(request, tcp)
                .await
                .expect("websocket handshake through hipache");
            assert_eq!(response.status(), 101);
            let set = response.headers().get("set-cookie");
            match &cookie {
                None => {
                    let set = set
                        .expect("a Set-Cookie on the first 101")
                        .to_str()
                        .unwrap();
                    cookie = Some(set.split(';').next().unwrap().to_owned());
                }
                Some(_) => assert!(set.is_none(), "a known client got a new cookie"),
            }
            drop(socket);
        }
    });
    let counts = (e1.handshakes().len(), e2.handshakes().len());
    assert!(
        counts == (20, 0) || counts == (0, 20),
        "upgrades per backend: {counts:?}"
    );
}

#[test]
fn websocket_over_http2_gets_and_honours_the_cookie() {
    use crate::support::websocket::WebSocketEcho;

    let redis = RedisServer::start();
    let (e1, e2) = (WebSocketEcho::start(), WebSocketEcho::start());
    redis.frontend(HOST, "sticky", &[&e1.url(), &e2.url()]);
    let hipache =
        Hipache::start(Config::redis(&redis).with(json!({ "server": { "stickySessions": true } })));

    let runtime = runtime();
    runtime.block_on(async {
        let mut sender = h2c::connect(hipache.addr()).await;
        let mut cookie: Option<String> = None;
        for _ in 0..10 {
            sender.ready().await.expect("http/2 connection ready");
            let mut request = hyper::Request::connect(format!("http://{HOST}/chat"));
            if let Some(cookie) = &cookie {
                request = request.header("cookie", cookie);
            }
            let request = h2c::websocket_request(request);
            let response = sender
                .send_request(request)
                .await
                .expect("CONNECT answered");
            assert_eq!(response.status(), 200);
            let set = response.headers().get("set-cookie").cloned();
            match &cookie {
                None => {
                    let set = set.expect("a Set-Cookie on the first answer");
                    cookie = Some(set.to_str().unwrap().split(';').next().unwrap().to_owned());
                }
                Some(_) => assert!(set.is_none(), "a known client got a new cookie"),
            }
        }
    });
    let counts = (e1.handshakes().len(), e2.handshakes().len());
    assert!(
        counts == (10, 0) || counts == (0, 10),
        "upgrades per backend: {counts:?}"
    );
}
