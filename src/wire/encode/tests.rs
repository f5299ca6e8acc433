use super::*;
use crate::wire::request::RequestHead;
use crate::wire::response::ResponseHead;

fn forwarded() -> Forwarded {
    Forwarded::new("10.1.2.3".parse().unwrap(), false, 8080)
}

fn backend_request(text: &[u8], keep_alive: bool) -> String {
    backend_request_expecting(text, keep_alive, false)
}

fn backend_request_expecting(text: &[u8], keep_alive: bool, forward_expect: bool) -> String {
    let head = RequestHead::parse(text).unwrap().unwrap();
    let mut out = Vec::new();
    request_for_backend(
        &mut out,
        text,
        &head,
        &forwarded(),
        keep_alive,
        forward_expect,
    );
    String::from_utf8(out).unwrap()
}

#[test]
fn expect_100_continue_goes_on_only_while_the_client_waits_for_it() {
    let text = b"PUT /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    let waiting = backend_request_expecting(text, true, true);
    assert!(
        waiting.contains("\r\nExpect: 100-continue\r\n"),
        "{waiting}"
    );
    let sent_whole = backend_request_expecting(text, true, false);
    assert!(!sent_whole.contains("Expect"), "{sent_whole}");
}

#[test]
fn backend_request_drops_hop_by_hop_and_adds_forwarding_headers() {
    let sent = backend_request(
        b"GET /p?q HTTP/1.1\r\nHost: A.test\r\nConnection: keep-alive, X-Secret\r\n\
          Keep-Alive: 5\r\nX-Secret: s\r\nTE: trailers\r\nX-Forwarded-For: 1.1.1.1\r\n\
          X-Kept: yes\r\n\r\n",
        false,
    );
    assert_eq!(
        sent,
        "GET /p?q HTTP/1.1\r\nHost: A.test\r\nX-Forwarded-For: 1.1.1.1\r\nX-Kept: yes\r\n\
         x-real-ip: ::ffff:10.1.2.3\r\nx-forwarded-protocol: http\r\nx-forwarded-proto: http\r\n\
         x-forwarded-port: 8080\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn backend_request_framing_upgrade_and_absolute_form() {
    let chunked = backend_request(
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
        true,
    );
    assert!(
        chunked.contains("\r\nTransfer-Encoding: chunked\r\n"),
        "{chunked}"
    );
    assert!(
        !chunked.contains("Expect") && !chunked.contains("Connection"),
        "{chunked}"
    );
    let upgrade = backend_request(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        false,
    );
    assert!(
        upgrade.ends_with("Upgrade: websocket\r\nConnection: upgrade\r\n\r\n"),
        "{upgrade}"
    );
    let absolute = backend_request(b"GET http://Other.test?q HTTP/1.0\r\n\r\n", true);
    assert!(
        absolute.starts_with("GET /?q HTTP/1.1\r\nHost: Other.test\r\n"),
        "{absolute}"
    );
}

fn client_response(
    text: &[u8],
    minor: u8,
    framing: ClientFraming,
    persistence: Persistence,
) -> String {
    let head = ResponseHead::parse(text, false).unwrap().unwrap();
    let mut out = Vec::new();
    response_for_client(&mut out, text, &head, minor, framing, persistence, None);
    String::from_utf8(out).unwrap()
}

#[test]
fn client_response_keeps_fields_and_writes_its_own_framing() {
    let text =
        b"HTTP/1.1 200 Fine\r\nContent-Length: 2\r\nConnection: keep-alive\r\nX-A: 1\r\n\r\nok";
    assert_eq!(
        client_response(text, 1, ClientFraming::AsSent, Persistence::KeepAlive),
        "HTTP/1.1 200 Fine\r\nContent-Length: 2\r\nX-A: 1\r\n\r\n"
    );
    assert_eq!(
        client_response(text, 0, ClientFraming::AsSent, Persistence::KeepAlive),
        "HTTP/1.0 200 Fine\r\nContent-Length: 2\r\nX-A: 1\r\nConnection: keep-alive\r\n\r\n"
    );
    let chunked = b"HTTP/1.1 201\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    assert_eq!(
        client_response(chunked, 1, ClientFraming::Coded, Persistence::Close),
        "HTTP/1.1 201 Created\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n",
        "the codings pass on; a length beside them is dropped"
    );
    assert_eq!(
        client_response(chunked, 0, ClientFraming::AsSent, Persistence::Close),
        "HTTP/1.0 201 Created\r\nConnection: close\r\n\r\n"
    );
    let switch =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    assert_eq!(
        client_response(switch, 1, ClientFraming::AsSent, Persistence::Upgrade),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
    );
}

#[test]
fn debug_fields_never_break_the_head() {
    let text = b"HTTP/1.1 204 No Content\r\n\r\n";
    let head = ResponseHead::parse(text, false).unwrap().unwrap();
    let mut out = Vec::new();
    let debug = DebugInfo {
        backend_url: "http://127.0.0.1:1/",
        backend_index: 2,
        frontend_id: "evil\r\nSet-Cookie: x",
        host: "a.test",
        total_ms: 12,
        backend_ms: 3,
    };
    response_for_client(
        &mut out,
        text,
        &head,
        1,
        ClientFraming::AsSent,
        Persistence::KeepAlive,
        Some(&debug),
    );
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("x-debug-backend-url: http://127.0.0.1:1/\r\n"),
        "{out}"
    );
    assert!(out.contains("x-debug-backend-id: 2\r\n"), "{out}");
    assert!(out.contains("x-debug-vhost: invalid\r\n"), "{out}");
    assert!(
        out.contains("x-debug-time-total: 12\r\nx-debug-time-backend: 3\r\n"),
        "{out}"
    );
    assert!(!out.contains("Set-Cookie"), "{out}");
}

#[test]
fn generated_pages_carry_hipache_headers() {
    let mut out = Vec::new();
    let answer = Generated {
        status: StatusCode::BAD_GATEWAY,
        page: PageBody::Html(bytes::Bytes::from_static(b"<p>no</p>")),
        debug_error: Some("backend error"),
        location: None,
    };
    generated_response(&mut out, 1, &answer, true);
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.starts_with(
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 9\r\n\
         Cache-Control: no-cache\r\nPragma: no-cache\r\nExpires: -1\r\nDate: "
        ),
        "{out}"
    );
    assert!(out.ends_with(
        "x-debug-error: backend error\r\nx-debug-version-hipache: 0.1.0\r\nConnection: close\r\n\r\n<p>no</p>"
    ), "{out}");
}

#[test]
fn requests_from_http2_parts_and_chunk_heads() {
    let request = http::Request::builder()
        .method("POST")
        .uri("/up?x")
        .header("host", "a.test")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(())
        .unwrap();
    let (parts, ()) = request.into_parts();
    let mut out = Vec::new();
    request_from_parts(&mut out, &parts, true);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "POST /up?x HTTP/1.1\r\nhost: a.test\r\ncookie: a=1; b=2\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    let mut out = Vec::new();
    chunk_head(&mut out, 0);
    chunk_head(&mut out, 255);
    chunk_head(&mut out, 0x1_0000);
    assert_eq!(out, b"0\r\nff\r\n10000\r\n");
}

#[test]
fn a_held_body_goes_as_is_or_as_one_chunk_before_its_end() {
    let mut out = Vec::new();
    held_body(&mut out, b"hello", None);
    assert_eq!(out, b"hello");
    let end = b"0\r\nx-sum: 1\r\n\r\n";
    let mut out = Vec::new();
    held_body(&mut out, b"hello", Some(end));
    assert_eq!(out, b"5\r\nhello\r\n0\r\nx-sum: 1\r\n\r\n");
    let mut out = Vec::new();
    held_body(&mut out, b"", Some(end));
    assert_eq!(out, end);
}

#[test]
fn a_redirect_carries_its_location() {
    let mut out = Vec::new();
    let answer = Generated::moved_permanently("https://a.test:8443/p?q".to_owned());
    generated_response(&mut out, 1, &answer, false);
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 301 Moved Permanently\r\n"),
        "{out}"
    );
    assert!(
        out.contains("\r\nLocation: https://a.test:8443/p?q\r\n"),
        "{out}"
    );
    assert!(out.contains("Content-Length: 0\r\n"), "{out}");
}
