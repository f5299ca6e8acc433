//! One HTTP/2 stream's task: the request served (given up if the client resets the stream
//! first), then the answer sent under the client's flow control, or the WebSocket tunnel run.
//!
//! The body is sent as the client's window allows: a chunk is taken from the answer only once
//! the stream has room, so a slow reader holds the backend back rather than our memory
//! filling (`h2` buffers at most `max_send_buffer_size` beyond the window).

use std::cell::RefCell;
use std::future::poll_fn;
use std::pin::pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use ::h2::server::SendResponse;
use ::h2::{Reason, SendStream};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::Response;
use http_body::Body as _;

use super::body::ResponseBody;
use super::{Relayed, Reply, Request};
use crate::proxy::open::Open;
use crate::proxy::{ClientConnection, Proxy};
use crate::routes::RouteSource;

/// Serves `request` and sends its answer on `respond`; the stream counts as `open` until then.
pub(super) async fn serve<S: RouteSource>(
    proxy: Rc<Proxy<S>>,
    conn: Rc<ClientConnection>,
    request: Request,
    respond: SendResponse<Bytes>,
    open: Open,
) {
    let _open = open;
    let respond = RefCell::new(respond);
    let alt_svc = conn.alt_svc.clone();
    let reply = {
        // Pinned where it is made: the session's future is kilobytes, which `select!` would
        // otherwise copy into its own state.
        let serving = pin!(super::serve(proxy, conn, request, &respond));
        // The borrow lasts one poll: interim answers borrow it between polls.
        let reset = poll_fn(|cx| respond.borrow_mut().poll_reset(cx));
        tokio::select! {
            // The request first: a stream polled because its answer came needs no look at
            // the reset, nor `select!`'s random draw.
            biased;
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
        Reply::Relayed(Relayed {
            status,
            mut fields,
            body,
        }) => {
            if let Some(alt_svc) = alt_svc {
                fields.push(b"alt-svc", alt_svc.as_bytes());
            }
            if !fields.has_date() {
                fields.push(b"date", &crate::wire::http_head::date_now());
            }
            let end = body.is_end_stream();
            let Ok(out) = respond.send_encoded_response(status, fields.freeze(), end) else {
                return;
            };
            if !end {
                pipe(out, body).await;
            }
        }
        Reply::Tunnel(tunnel) => tunnel.run(&mut respond).await,
    }
}

/// Sends `response`: its head, then its body as the client's window allows. A body that fails
/// resets the stream, so that the client does not take a cut answer for a whole one.
async fn send(respond: &mut SendResponse<Bytes>, response: Response<ResponseBody>) {
    let (mut head, body) = response.into_parts();
    crate::wire::http_head::add_date(&mut head.headers);
    if body.is_end_stream() {
        let _ = respond.send_response(Response::from_parts(head, ()), true);
        return;
    }
    if let Some(length) = body.size_hint().exact() {
        let length = HeaderValue::from(length);
        head.headers.entry(header::CONTENT_LENGTH).or_insert(length);
    }
    let Ok(out) = respond.send_response(Response::from_parts(head, ()), false) else {
        return;
    };
    pipe(out, body).await;
}

/// Sends `body` on `out` as the client's window allows; a body that fails resets the stream.
async fn pipe(mut out: SendStream<Bytes>, mut body: ResponseBody) {
    let mut first = true;
    if let Err(reason) = poll_fn(|cx| poll_pipe(cx, &mut body, &mut out, &mut first)).await {
        out.send_reset(reason);
    }
}

/// Moves `body` to `out` until it ends: ready with `Ok` once the stream was ended, or with the
/// reason to reset it. The `first` chunk goes without asking for room: it is at most one read
/// (what came with the head, or one buffer), which `h2` holds until the window opens, and most
/// answers are that one chunk, so they skip three calls into `h2` (each takes its lock).
fn poll_pipe(
    cx: &mut Context<'_>,
    body: &mut ResponseBody,
    out: &mut SendStream<Bytes>,
    first: &mut bool,
) -> Poll<Result<(), Reason>> {
    loop {
        // Room for at least a byte before reading on: the chunk read next may be larger than
        // the window, which `h2` then sends as the window opens.
        if !*first {
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
            }
        }
        let frame = match std::pin::Pin::new(&mut *body).poll_frame(cx) {
            Poll::Ready(frame) => frame,
            // Waiting on the backend: a client that resets the stream meanwhile ends it.
            Poll::Pending if out.poll_reset(cx).is_ready() => {
                return Poll::Ready(Err(Reason::CANCEL))
            }
            Poll::Pending => return Poll::Pending,
        };
        *first = false;
        match frame {
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
