//! A WebSocket echo backend: every text or binary message comes back as sent; the handshake
//! request's headers are recorded.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

use super::runtime::ServerThread;

/// The headers of each upgrade request the backend accepted.
type Handshakes = Arc<Mutex<Vec<Vec<(String, String)>>>>;

pub(crate) struct WebSocketEcho {
    addr: SocketAddr,
    handshakes: Handshakes,
    open: Arc<AtomicUsize>,
    _server: ServerThread,
}

impl WebSocketEcho {
    pub(crate) fn start() -> WebSocketEcho {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind websocket backend");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("websocket backend address");
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(AtomicUsize::new(0));
        let (seen, count) = (handshakes.clone(), open.clone());
        let server = ServerThread::spawn("websocket backend", move |stopped| {
            serve(listener, seen, count, stopped)
        });
        WebSocketEcho {
            addr,
            handshakes,
            open,
            _server: server,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The headers of each upgrade request, names lowercased.
    pub(crate) fn handshakes(&self) -> Vec<Vec<(String, String)>> {
        self.handshakes.lock().expect("handshakes").clone()
    }

    /// WebSockets currently open on the backend side.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

async fn serve(
    listener: TcpListener,
    seen: Handshakes,
    open: Arc<AtomicUsize>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let (seen, open) = (seen.clone(), open.clone());
        tokio::spawn(async move {
            #[expect(
                clippy::result_large_err,
                reason = "the callback type is tungstenite's"
            )]
            let record = |request: &Request, response: Response| {
                let headers = request
                    .headers()
                    .iter()
                    .map(|(n, v)| {
                        let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                        (n.as_str().to_owned(), value)
                    })
                    .collect();
                seen.lock().expect("handshakes").push(headers);
                Ok(response)
            };
            let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, record).await else {
                return;
            };
            open.fetch_add(1, Ordering::SeqCst);
            while let Some(Ok(message)) = socket.next().await {
                let echo = match message {
                    Message::Text(_) | Message::Binary(_) => message,
                    // tungstenite queues the close reply; the next read flushes it and ends.
                    _ => continue,
                };
                if socket.send(echo).await.is_err() {
                    break;
                }
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}
