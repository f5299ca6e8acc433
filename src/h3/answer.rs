//! Writing an answer on an HTTP/3 request stream: a bare refusal, a page of our own, or a
//! backend's answer relayed, its body decoded from its HTTP/1.1 framing (chunks become data,
//! a trailer section becomes a trailing HEADERS frame) while the rest of a streamed upload
//! still moves to the backend. An answer cut short resets the stream, so that the client does
//! not take it for a whole one. The access log line is written once the answer ended.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use tokio::io::AsyncReadExt;

use super::upload::Upload;
use super::SendHalf;
use crate::error_page::{self, Generated, PageBody};
use crate::escape::Escaped;
use crate::proxy::backend::{Activity, Answer, BodyRelay};
use crate::proxy::{Answered, SendError};
use crate::wire::response::Framing;
use crate::wire::{buffers, trailers};
use crate::wire::{headers, http_head};

/// The code a stream is reset with when its answer cannot be completed.
const INTERNAL_ERROR: ::h3::error::Code = ::h3::error::Code::H3_INTERNAL_ERROR;

/// A bare `status` with no body: the request is refused before any routing.
pub(super) async fn refuse(send: &mut SendHalf, status: StatusCode) {
    let mut head = Response::new(());
    *head.status_mut() = status;
    http_head::add_date(head.headers_mut());
    if send.send_response(head).await.is_ok() {
        let _ = send.finish().await;
    }
}

/// A response of our own (an error page, `__ping__`'s `ok`): the bytes of its body sent.
pub(super) async fn generated(send: &mut SendHalf, answer: Generated) -> u64 {
    let mut builder = error_page::response_head(answer.status, &answer.page);
    if let Some(location) = answer.location.as_deref() {
        builder = builder.header(header::LOCATION, location);
    }
    if let Some(reason) = answer.debug_error {
        builder = builder
            .header(headers::X_DEBUG_ERROR, HeaderValue::from_static(reason))
            .header(headers::X_DEBUG_VERSION, headers::VERSION);
    }
    let body = match answer.page {
        PageBody::Html(page) => page,
        PageBody::Text(text) => Bytes::from_static(text.as_bytes()),
    };
    let Ok(mut head) = builder.body(()) else {
        // Only if a static header failed to build, which the error page tests rule out.
        refuse(send, answer.status).await;
        return 0;
    };
    http_head::add_date(head.headers_mut());
    let length = HeaderValue::from(body.len());
    head.headers_mut().insert(header::CONTENT_LENGTH, length);
    let bytes = body.len() as u64;
    if send.send_response(head).await.is_err() {
        return 0;
    }
    if !body.is_empty() && send.send_data(body).await.is_err() {
        return 0;
    }
    let _ = send.finish().await;
    bytes
}

/// Relays a backend's answer and writes its access log line; the backend stream goes back to
/// the pool when `keep_alive` allows and the answer and the upload both ended cleanly.
pub(super) async fn relay(
    send: &mut SendHalf,
    answered: Answered<'_>,
    upload: Option<Upload>,
    keep_alive: bool,
    idle: Duration,
) {
    let Answered {
        answer,
        host,
        backend,
        debug,
        line,
        set_cookie,
    } = answered;
    let Answer {
        mut stream,
        buf,
        head,
    } = answer;
    let mut response = http_head::head_of(&head, &buf);
    http_head::add_set_cookie(&mut response, set_cookie);
    if let Some(debug) = &debug {
        headers::add_debug(&mut response.headers, debug);
    }
    http_head::add_date(&mut response.headers);
    let mut body = Body {
        relay: BodyRelay::new(head.framing, true),
        buf,
        start: head.len,
        done: matches!(head.framing, Framing::Empty | Framing::Length(0)),
        reusable: keep_alive && head.reusable,
    };
    let sent = send.send_response(Response::from_parts(response, ())).await;
    let mut upload = upload.filter(Upload::is_moving);
    let mut upload_over = upload.is_none();
    let ended = if sent.is_err() {
        Err("client gone")
    } else {
        let activity = Activity::new(idle);
        let (mut reader, mut writer) = stream.stream.split();
        let relaying = body.relay(send, &mut reader, &activity);
        let uploading = async {
            match upload.as_mut() {
                Some(upload) => upload.run(&mut writer, &activity).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(relaying, uploading);
        loop {
            tokio::select! {
                ended = &mut relaying => break ended,
                moved = &mut uploading, if !upload_over => {
                    upload_over = true;
                    // A client that broke its upload gets no answer for it, and the backend's
                    // connection closes. A backend that stopped reading may have answered whole.
                    if let Err(SendError::Client(_)) = moved {
                        break Err("upload stopped");
                    }
                }
            }
        }
    };
    let upload_done = upload.as_ref().is_none_or(Upload::is_done);
    match ended {
        Ok(()) => {
            if body.reusable && upload_done && !body.relay.overran {
                stream.release();
            }
        }
        Err(why) => {
            let (bytes, backend) = (body.relay.bytes, backend.url.as_str());
            tracing::debug!(host = %Escaped(host), backend = %Escaped(backend), reason = why, bytes, "answer cut short");
            send.stop_stream(INTERNAL_ERROR);
        }
    }
    buffers::give_back(std::mem::take(&mut body.buf));
    if let Some(line) = line {
        line.write(body.relay.bytes);
    }
}

/// A backend's body on its way to the client: what was read with the head, then the stream.
struct Body {
    relay: BodyRelay,
    buf: Vec<u8>,
    /// Where the unread part of `buf` starts; it ends at `buf.len()`.
    start: usize,
    done: bool,
    /// Whether the stream may go back to the pool once the body ended.
    reusable: bool,
}

impl Body {
    /// Sends the body and its trailers, or says why it could not be sent whole.
    async fn relay(
        &mut self,
        send: &mut SendHalf,
        backend: &mut (impl AsyncReadExt + Unpin),
        activity: &Activity,
    ) -> Result<(), &'static str> {
        while !self.done {
            if self.start < self.buf.len() {
                let mut payload = Vec::new();
                let input = &self.buf[self.start..];
                let taken = self
                    .relay
                    .take(input, &mut payload)
                    .map_err(|_| "backend sent invalid chunks")?;
                let data = match taken.pass {
                    0 => Bytes::from(payload),
                    pass => Bytes::copy_from_slice(&input[..pass]),
                };
                self.start = self.buf.len();
                self.done = taken.done;
                if !data.is_empty() {
                    match activity.within(send.send_data(data)).await {
                        Some(Ok(())) => activity.touch(),
                        Some(Err(_)) => return Err("client gone"),
                        None => return Err("idle past tcpTimeout"),
                    }
                }
                continue;
            }
            self.buf.resize(buffers::LARGE, 0);
            let read = activity.within(backend.read(&mut self.buf[..])).await;
            let filled = match read {
                Some(Ok(filled)) => filled,
                Some(Err(_)) => return Err("backend failed mid-answer"),
                None => return Err("idle past tcpTimeout"),
            };
            activity.touch();
            self.buf.truncate(filled);
            self.start = 0;
            if filled == 0 {
                if !self.relay.ends_at_close() {
                    return Err("backend closed mid-answer");
                }
                self.done = true;
                self.reusable = false;
            }
        }
        let fields = trailers::to_map(self.relay.trailer_section());
        let ended = match fields.is_empty() {
            true => send.finish().await,
            false => send.send_trailers(fields).await,
        };
        ended.map_err(|_| "client gone")
    }
}
