//! Relaying a backend's answer to the HTTP/1.x client: its head now, its body as it arrives with
//! the framing the backend wrote (chunks pass as they are), except to an HTTP/1.0 client, which
//! gets the payload of a chunked body and a close at its end; or, after a 101, a tunnel.

use std::time::Instant;

use http::StatusCode;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::backend::{write_within, Answer, BodyRelay};
use super::buffers;
use super::encode::{self, ClientFraming, Persistence};
use super::forward::{consumed, Body, Request, Tried};
use super::request::RequestHead;
use super::response;
use super::server::{ClientStream, Conn, Next};
use crate::access_log::PendingLine;
use crate::proxy::error::ProxyError;
use crate::proxy::headers::{self, DebugInfo};
use crate::proxy::tunnel;
use crate::routes::RouteSource;

impl<S: RouteSource, IO: ClientStream> Conn<'_, S, IO> {
    /// Sends the backend's answer on to the client: its head now, its body as it comes.
    pub(super) async fn relay(
        &mut self,
        head: &RequestHead,
        body: Body,
        request: &Request,
        tried: Tried<'_>,
        answer: Answer,
        mut line: Option<PendingLine>,
    ) -> Next {
        let Tried {
            backend,
            start: backend_start,
        } = tried;
        let Answer {
            stream: mut backend_stream,
            buf: mut backend_buf,
            head: response,
        } = answer;
        let proxy = self.proxy;
        if headers::marks_dead(
            response.status,
            response.retry_after,
            proxy.dead_backend_on_500,
        ) {
            let code = StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY);
            proxy.mark_dead(&request.host, &request.frontend, backend, code.as_str());
        }
        let debug = head.debug.then(|| {
            let now = Instant::now();
            (now - request.start, now - backend_start)
        });
        let debug_info = debug.map(|(total, in_backend)| DebugInfo {
            backend_url: backend.url.as_str(),
            backend_index: backend.index,
            frontend_id: &request.frontend.id,
            host: &request.host,
            total_ms: total.as_millis(),
            backend_ms: in_backend.as_millis(),
        });
        let mut out = buffers::take();
        if response.status == 101 && head.upgrade(&self.buf).is_some() {
            encode::response_for_client(
                &mut out,
                &backend_buf,
                &response,
                head.minor,
                ClientFraming::AsSent,
                Persistence::Upgrade,
                debug_info.as_ref(),
            );
            out.extend_from_slice(&backend_buf[response.len..]);
            buffers::give_back(backend_buf);
            let written = write_within(&mut self.io, &out, proxy.idle_timeout).await;
            buffers::give_back(out);
            // A tunnel's line is written when the 101 is sent, with 0 bytes.
            if let Some(line) = line.take() {
                line.write(0);
            }
            if written {
                // A tunnel is no request: it leaves its place under maxSockets at once.
                self.tunnel(consumed(head, body), backend_stream.into_tunnel())
                    .await;
            }
            return Next::Close;
        }
        let dechunk = response.framing == response::Framing::Chunked && head.minor == 0;
        let client_framing = match response.coded && head.minor == 1 {
            true => ClientFraming::Coded,
            false => ClientFraming::AsSent,
        };
        let close = !self.keeps_alive(head)
            || self.unread_body
            || response.framing == response::Framing::UntilClose
            || dechunk
            || response.status == 101;
        let persistence = if close {
            Persistence::Close
        } else {
            Persistence::KeepAlive
        };
        encode::response_for_client(
            &mut out,
            &backend_buf,
            &response,
            head.minor,
            client_framing,
            persistence,
            debug_info.as_ref(),
        );
        let mut body_relay = BodyRelay::new(response.framing, dechunk);
        let mut start = response.len;
        let mut head_sent = false;
        let complete = loop {
            let input = &backend_buf[start..];
            let Ok(taken) = body_relay.take(input, &mut out) else {
                tracing::warn!(host = %request.host, backend = %backend.url, "backend sent invalid chunks");
                if !head_sent {
                    // Nothing reached the client yet: it can still have an honest answer.
                    let error = ProxyError::BackendIo { replayable: false };
                    let (_, page_size) = self.write_error_page(head, error, true).await;
                    if let Some(mut line) = line.take() {
                        line.set_status(error.status().as_u16());
                        line.write(page_size);
                    }
                }
                break false;
            };
            head_sent = true;
            // The head and a first piece go out in one write; later pieces straight from the
            // backend's buffer, uncopied.
            let piece = if out.is_empty() {
                &input[..taken.pass]
            } else {
                out.extend_from_slice(&input[..taken.pass]);
                &out[..]
            };
            if !write_within(&mut self.io, piece, proxy.idle_timeout).await {
                break false;
            }
            out.clear();
            if taken.done {
                break true;
            }
            backend_buf.clear();
            start = 0;
            buffers::reserve_read(&mut backend_buf);
            let read = tokio::time::timeout(
                proxy.idle_timeout,
                backend_stream.stream.read_buf(&mut backend_buf),
            );
            match read.await {
                Ok(Ok(0)) => break body_relay.ends_at_close(),
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => break false,
            }
        };
        buffers::give_back(out);
        buffers::give_back(backend_buf);
        if let Some(line) = line {
            line.write(body_relay.bytes);
        }
        let whole_exchange = complete && !self.unread_body && !body_relay.overran;
        if whole_exchange && proxy.pool.keep_alive() && response.reusable {
            backend_stream.release();
        }
        // A response cut short leaves the client nothing to trust on this connection.
        self.finish(consumed(head, body), complete && !close)
    }

    /// Splices client and backend after a 101, counted in the worker's tunnels; bytes either
    /// side sent early are delivered first.
    async fn tunnel(&mut self, consumed: usize, mut backend: TcpStream) {
        let _open = self.proxy.tunnels.enter();
        let early = self.buf.get(consumed..).unwrap_or_default();
        let idle = self.proxy.idle_timeout;
        if !early.is_empty() && !write_within(&mut backend, early, idle).await {
            return;
        }
        buffers::give_back(std::mem::take(&mut self.buf));
        tunnel::splice_streams(&mut self.io, &mut backend, self.proxy.response_timeout).await;
    }
}
