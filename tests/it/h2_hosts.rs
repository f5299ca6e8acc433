//! HTTP/2 requests whose target two parties could read two ways (RFC 9113 §8.3.1): two `host`
//! fields, a `host` that differs from `:authority`, `:path *` on anything but OPTIONS. Each gets
//! 400 and reaches no backend. Sent by hyper's HTTP/2 client over h2c.

use bytes::Bytes;
use http::{HeaderValue, Method, Uri};
use http_body_util::Empty;

use crate::support::h2c;
use crate::support::runtime::runtime;
use crate::support::{Backend, Config, Hipache, RedisServer};

/// Sends each request on one h2c connection; returns their statuses.
fn statuses(hipache: &Hipache, requests: Vec<hyper::Request<Empty<Bytes>>>) -> Vec<u16> {
    let runtime = runtime();
    runtime.block_on(async {
        let mut sender = h2c::connect(hipache.addr()).await;
        let mut statuses = Vec::new();
        for request in requests {
            let response = sender.send_request(request).await.expect("http/2 response");
            statuses.push(response.status().as_u16());
        }
        statuses
    })
}

fn request(method: Method, uri: Uri, hosts: &[&'static str]) -> hyper::Request<Empty<Bytes>> {
    let mut request = hyper::Request::new(Empty::new());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    for host in hosts {
        let value = HeaderValue::from_static(host);
        request.headers_mut().append(http::header::HOST, value);
    }
    request
}

fn asterisk() -> Uri {
    let parts = Uri::builder().scheme("http").authority("one.test");
    parts.path_and_query("*").build().unwrap()
}

#[test]
fn ambiguous_http2_targets_get_400_and_reach_no_backend() {
    let redis = RedisServer::start();
    let (one, two) = (Backend::named("one"), Backend::named("two"));
    redis.frontend("one.test", "one", &[&one.url()]);
    redis.frontend("two.test", "two", &[&two.url()]);
    let hipache = Hipache::start(Config::redis(&redis));
    let uri = |text: &str| text.parse::<Uri>().unwrap();

    let got = statuses(
        &hipache,
        vec![
            request(
                Method::GET,
                uri("http://one.test/a"),
                &["one.test", "two.test"],
            ),
            request(Method::GET, uri("http://one.test/b"), &["two.test"]),
            request(Method::GET, asterisk(), &[]),
            // The same target, said once or twice the same way, is served.
            request(Method::GET, uri("http://one.test/c"), &["ONE.test"]),
            request(Method::GET, uri("http://one.test/d"), &[]),
        ],
    );

    assert_eq!(got, [400, 400, 400, 200, 200]);
    let paths: Vec<_> = one.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/c", "/d"]);
    assert_eq!(two.request_count(), 0);
}

#[test]
fn a_websocket_over_http2_with_two_hosts_gets_400_and_reaches_no_backend() {
    let redis = RedisServer::start();
    let (one, two) = (Backend::named("one"), Backend::named("two"));
    redis.frontend("one.test", "one", &[&one.url()]);
    redis.frontend("two.test", "two", &[&two.url()]);
    let hipache = Hipache::start(Config::redis(&redis));
    let uri = "http://one.test/chat".parse::<Uri>().unwrap();
    let mut connect = request(Method::CONNECT, uri, &["one.test", "two.test"]);
    let version = HeaderValue::from_static("13");
    connect
        .headers_mut()
        .insert("sec-websocket-version", version);
    let websocket = hyper::ext::Protocol::from_static("websocket");
    connect.extensions_mut().insert(websocket);

    assert_eq!(statuses(&hipache, vec![connect]), [400]);
    assert_eq!(one.request_count() + two.request_count(), 0);
}
