use super::*;

fn node(host: &str) -> Address {
    Address {
        host: host.to_owned(),
        port: 7000,
    }
}

/// Tracking with the connection to `tracked` up (a loopback socket stands in for
/// it: nothing comes on it), and that socket's peer, to keep it open.
async fn tracking_of(tracked: &Address) -> (Tracking, TcpStream) {
    let url = RedisUrl::parse("redis-cluster://127.0.0.1:1").unwrap();
    let state = State::new(&url, 16, None, false, Footprint::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let socket = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (peer, _) = listener.accept().await.unwrap();
    {
        let mut current = lock(&state);
        current.conns.push(Conn::new(1));
        current.install(1, tracked.clone(), Arc::new(socket), Vec::new());
    }
    (Tracking { state }, peer)
}

fn miss(tracking: &Tracking, host: &str) -> Ticket {
    match tracking.check(host) {
        Check::Miss(ticket) => ticket,
        Check::Hit(_) => panic!("{host}: a fresh answer"),
        Check::Off => panic!("tracking off"),
    }
}

#[tokio::test]
async fn an_answer_with_a_reply_from_a_server_not_tracked_is_not_kept_fresh() {
    // A cluster master the tracking connections do not follow yet; or the master Sentinel
    // names now while tracking still holds the old one.
    let (tracked, other) = (node("10.0.0.1"), node("10.0.0.2"));
    let (tracking, _peer) = tracking_of(&tracked).await;

    let ticket = miss(&tracking, "x.test");
    let both = [tracked.clone(), other.clone()];
    tracking.store(Some(ticket), &both, "x.test", &None, None);
    let ticket = miss(&tracking, "x.test");
    tracking.store(Some(ticket), &[other], "x.test", &None, None);
    let ticket = miss(&tracking, "x.test");
    assert_eq!(
        tracking.last_known("x.test"),
        Some(None),
        "kept as last known"
    );

    tracking.store(Some(ticket), &[tracked], "x.test", &None, None);
    assert!(matches!(tracking.check("x.test"), Check::Hit(None)));
}
