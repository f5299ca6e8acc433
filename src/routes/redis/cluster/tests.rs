//! Unit tests of the cluster's pure parts: reading redirections, sending to nodes together.

use super::*;

fn reply(wire: &str) -> Value {
    redis::parse_redis_value(wire.as_bytes()).unwrap()
}

#[test]
fn moved_and_ask_replies_name_the_node_to_go_to() {
    let to = |host: &str, port| Address {
        host: host.into(),
        port,
    };
    let moved = redirect(&reply("-MOVED 3999 127.0.0.1:6381\r\n"));
    assert!(matches!(moved, Some(Outcome::Moved(a)) if a == to("127.0.0.1", 6381)));
    let ask = redirect(&reply("-ASK 3999 [::1]:7000\r\n"));
    assert!(matches!(ask, Some(Outcome::Ask(a)) if a == to("::1", 7000)));
    assert!(redirect(&reply("-ERR wrong\r\n")).is_none());
    assert!(redirect(&reply("-MOVED nonsense\r\n")).is_none());
    assert!(redirect(&reply("+OK\r\n")).is_none());
    assert!(is_cluster_down(&reply(
        "-CLUSTERDOWN The cluster is down\r\n"
    )));
    assert!(!is_cluster_down(&reply("-TRYAGAIN later\r\n")));
}

#[tokio::test]
async fn node_sends_run_together_and_keep_their_order() {
    let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
    let mut tx = Some(tx);
    // The first waits for the second: run one after the other, they would never finish.
    let futures: Vec<std::pin::Pin<Box<dyn Future<Output = u8> + Send>>> = vec![
        Box::pin(async move { rx.await.unwrap() + 1 }),
        Box::pin(async move {
            tx.take().unwrap().send(1).unwrap();
            7
        }),
    ];
    let joined = tokio::time::timeout(std::time::Duration::from_secs(10), join_all(futures));
    assert_eq!(joined.await.expect("sends ran one after the other"), [2, 7]);
}
