//! One HTTP/2 stream's task: the request served (given up if the client resets the stream
//! first), then the answer sent under the client's flow control, or the WebSocket tunnel run.
//!
//! The body is sent as the client's window allows: a chunk is taken from the answer only once
//! the stream has room, so a slow reader holds the backend back rather than our memory
//! filling (`h2` buffers at most `max_send_buffer_size` beyond the window).

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use ::h2::server::SendResponse;
use ::h2::{Reason, SendStream};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::Response;
use http_body::Body as _;

use super::body::ResponseBody;
use super::{Reply, Request};
use crate::proxy::{ClientConnection, Proxy};
use crate::routes::RouteSource;

/// Serves `request` and sends its answer on `respond`.
pub(super) async fn serve<S: RouteSource>(
    proxy: Rc<Proxy<S>>,
    conn: Rc<ClientConnection>,
    request: Request,
    respond: SendResponse<Bytes>,
) {
    let respond = RefCell::new(respond);
    let alt_svc = conn.alt_svc.clone();
    let reply = {
        let serving = super::serve(proxy, conn, request, &respond);
        // The borrow lasts one poll: interim answers borrow it between polls.
        let reset = poll_fn(|cx| respond.borrow_mut().poll_reset(cx));
        tokio::select! {
            reply = serving => reply,
            // The client gave up on it: the attempt stops, its backend stream with it.
            _ = reset => return,
        }
    };
    let mut respond = respond.into_inner();
    match reply {
        Reply::Answer(mut response) => {
            if let Some(alt_svc) = alt_svc {
                response.headers_mut().insert(header::ALT_SVC, alt_svc);
            }
            send(&mut respond, response).await
        }
        Reply::Tunnel(tunnel) => tunnel.run(&mut respond).await,
    }
}

/// Sends `response`: its head, then its body as the client's window allows. A body that fails
/// resets the stream, so that the client does not take a cut answer for a whole one.
async fn send(respond: &mut SendResponse<Bytes>, response: Response<ResponseBody>) {
    let (mut head, mut body) = response.into_parts();
    crate::wire::http_head::add_date(&mut head.headers);
    if body.is_end_stream() {
        let _ = respond.send_response(Response::from_parts(head, ()), true);
        return;
    }
    if let Some(length) = body.size_hint().exact() {
        let length = HeaderValue::from(length);
        head.headers.entry(header::CONTENT_LENGTH).or_insert(length);
    }
    let Ok(mut out) = respond.send_response(Response::from_parts(head, ()), false) else {
        return;
    };
    if let Err(reason) = poll_fn(|cx| poll_pipe(cx, &mut body, &mut out)).await {
        out.send_reset(reason);
    }
}

/// Moves `body` to `out` until it ends: ready with `Ok` once the stream was ended, or with the
/// reason to reset it.
fn poll_pipe(
    cx: &mut Context<'_>,
    body: &mut ResponseBody,
    out: &mut SendStream<Bytes>,
) -> Poll<Result<(), Reason>> {
    loop {
        // Room for at least a byte before reading on: the chunk read next may be larger than
        // the window, which `h2` then sends as the window opens.
        out.reserve_capacity(1);
        if out.capacity() == 0 {
            loop {
                match ready!(out.poll_capacity(cx)) {
                    Some(Ok(0)) => {}
                    Some(Ok(_)) => break,
                    // The client reset the stream or the connection went.
                    Some(Err(_)) | None => return Poll::Ready(Err(Reason::CANCEL)),
                }
            }
        } else if out.poll_reset(cx).is_ready() {
            return Poll::Ready(Err(Reason::CANCEL));
        }
        match ready!(std::pin::Pin::new(&mut *body).poll_frame(cx)) {
            Some(Ok(frame)) => {
                let data = match frame.into_data() {
                    Ok(data) => data,
                    // The last frame: trailers end the stream.
                    Err(frame) => match frame.into_trailers() {
                        Ok(trailers) => match out.send_trailers(trailers) {
                            Ok(()) => return Poll::Ready(Ok(())),
                            Err(_) => return Poll::Ready(Err(Reason::CANCEL)),
                        },
                        Err(_) => continue,
                    },
                };
                let end = body.is_end_stream();
                if out.send_data(data, end).is_err() {
                    return Poll::Ready(Err(Reason::CANCEL));
                }
                if end {
                    return Poll::Ready(Ok(()));
                }
            }
            // The client's own request was malformed (RFC 9113 §8.1.1).
            Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Poll::Ready(Err(Reason::PROTOCOL_ERROR))
            }
            Some(Err(_)) => return Poll::Ready(Err(Reason::INTERNAL_ERROR)),
            None => {
                let _ = out.send_data(Bytes::new(), true);
                return Poll::Ready(Ok(()));
            }
        }
    }
}
