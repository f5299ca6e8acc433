//! One HTTP/1.x request on a connection, as the session drives it (`proxy::session`): the facts
//! of its head (parsed in place in the client's buffer), the reading of a small body before the
//! first attempt (`forward`), our own answers and refusals, the relay of a backend's answer
//! (`relay`), and the 101 that opens a tunnel. What follows the request on the connection is
//! said by [`Next`].

use http::StatusCode;

use super::client::{Client, ClientStream};
use super::forward::{self, Body, Upload};
use super::pump::BodyPump;
use super::relay::{self, Relayed};
use crate::access_log::PendingLine;
use crate::error_page::Generated;
use crate::proxy::backend::Answer;
use crate::proxy::open::Connections;
use crate::proxy::session::{Downstream, Head, Upgrade};
use crate::proxy::tunnel::Tunnel;
use crate::proxy::{Answered, ClientConnection, ClientFailure, Proxy};
use crate::wire::buffers;
use crate::wire::encode::{self, ClientFraming, Persistence};
use crate::wire::headers::DebugInfo;
use crate::wire::request::RequestHead;
use crate::wire::response::ResponseHead;

/// What follows an exchange.
pub(super) enum Next {
    KeepAlive,
    Close,
    Http2,
}

/// A request whose head is in the client's buffer.
pub(super) struct Request<'c, S, IO> {
    proxy: &'c Proxy<S>,
    peer: &'c ClientConnection,
    connections: &'c Connections,
    client: &'c mut Client<IO>,
    head: RequestHead,
    /// Where its body is, once read for the attempts.
    body: Option<Body>,
    /// The backend's answer went wrong before the client saw any of it: the page that answers
    /// instead ends the connection.
    closing: bool,
    /// The client is still sending a body nobody will read (the backend answered early).
    pub(super) unread_body: bool,
}

impl<'c, S, IO: ClientStream> Request<'c, S, IO> {
    pub(super) fn new(
        proxy: &'c Proxy<S>,
        peer: &'c ClientConnection,
        connections: &'c Connections,
        client: &'c mut Client<IO>,
        head: RequestHead,
    ) -> Self {
        Self {
            proxy,
            peer,
            connections,
            client,
            head,
            body: None,
            closing: false,
            unread_body: false,
        }
    }

    async fn write_generated(&mut self, answer: &Generated, close: bool) -> bool {
        let mut out = buffers::take(answer.page.size() + buffers::FIELDS);
        encode::generated_response(&mut out, self.head.minor, answer, close);
        if let Some(alt_svc) = &self.peer.alt_svc {
            let head_end = out.len() - answer.page.size();
            encode::insert_field(&mut out, head_end, b"Alt-Svc", alt_svc.as_bytes());
        }
        if self.head.is_head(self.client.buf()) {
            out.truncate(out.len() - answer.page.size());
        }
        let written = self.client.write(&out, self.proxy.idle_timeout).await;
        buffers::give_back(out);
        written
    }

    /// Whether the connection may carry another request after this one.
    fn keeps_alive(&self) -> bool {
        self.head.wants_keep_alive() && !self.connections.is_draining()
    }

    /// Bytes of the buffer the request took.
    fn consumed(&self) -> usize {
        self.body
            .map_or(self.head.len, |body| body.consumed(&self.head))
    }

    /// Drops the request's bytes and says what follows.
    fn finish(&mut self, keep_alive: bool) -> Next {
        if !keep_alive {
            return Next::Close;
        }
        let consumed = self.consumed();
        self.client.consume(0..consumed);
        Next::KeepAlive
    }
}

/// Refuses a request with a bare `status` and closes: what follows it cannot be trusted.
pub(super) async fn refuse<IO: ClientStream>(
    client: &mut Client<IO>,
    status: StatusCode,
    proxy_idle: std::time::Duration,
) -> Next {
    let mut out = Vec::with_capacity(128);
    encode::refusal(&mut out, status);
    let _ = client.write(&out, proxy_idle).await;
    Next::Close
}

impl<S, IO: ClientStream> Downstream for Request<'_, S, IO> {
    type Exchange<'a>
        = Upload<'a, IO>
    where
        Self: 'a;
    type Upload = Option<BodyPump>;
    type Done = Next;

    fn head(&self) -> Head<'_> {
        let (head, buf) = (&self.head, self.client.buf());
        Head {
            method: head.method(buf),
            host: head
                .host(buf)
                .and_then(|host| std::str::from_utf8(host).ok()),
            path: head.origin_form(buf).0,
            logged_target: head.target(buf),
            version: if head.minor == 0 { "1.0" } else { "1.1" },
            debug: head.debug,
            websocket_connect: false,
            // An unfit head was refused while it was read.
            refusal: None,
        }
    }

    fn cookies(&self) -> impl Iterator<Item = &[u8]> {
        let buf = self.client.buf();
        let cookies = self.head.fields.iter();
        let cookies = cookies.filter(move |f| f.name(buf).eq_ignore_ascii_case(b"cookie"));
        cookies.map(move |f| f.value(buf))
    }

    fn referer_and_agent(&self) -> (&[u8], &[u8]) {
        let buf = self.client.buf();
        (self.head.referer(buf), self.head.user_agent(buf))
    }

    async fn refuse(&mut self, status: StatusCode) -> Next {
        refuse(self.client, status, self.proxy.idle_timeout).await
    }

    /// No backend was reached, or none answered usably. A body left unread (none was read for
    /// the attempts, or one streamed in part) closes the connection after the answer.
    async fn answer(&mut self, answer: Generated, line: Option<PendingLine>) -> Next {
        let unread = match self.body {
            None => self.head.has_body(),
            Some(body) => matches!(body, Body::Stream),
        };
        let close = self.closing || unread || !self.keeps_alive();
        let written = self.write_generated(&answer, close).await;
        if let Some(line) = line {
            line.write(answer.page.size() as u64);
        }
        self.finish(written && !close)
    }

    /// Nobody is left to read an answer.
    async fn client_gone(&mut self, _page: impl FnOnce() -> Generated) -> Next {
        Next::Close
    }

    async fn exchange(&mut self) -> Result<Upload<'_, IO>, ClientFailure> {
        let idle = self.proxy.idle_timeout;
        let body = forward::read_small_body(self.client, &self.head, idle).await?;
        self.body = Some(body);
        let forwarded = &self.peer.forwarded;
        Ok(Upload::new(
            self.client,
            &self.head,
            body,
            forwarded,
            self.proxy,
        ))
    }

    fn upload(mut exchange: Upload<'_, IO>) -> Option<BodyPump> {
        exchange.take_pump()
    }

    fn upgrade(&self, answer: &Answer) -> Upgrade {
        match answer.head.status == 101 && self.head.upgrade(self.client.buf()).is_some() {
            true => Upgrade::Opened { status: 101 },
            false => Upgrade::No,
        }
    }

    async fn relay(
        &mut self,
        answered: Answered<'_>,
        mut pump: Option<BodyPump>,
    ) -> Result<Next, Option<PendingLine>> {
        let keep_alive = self.keeps_alive();
        let (proxy, head) = (self.proxy, &self.head);
        let relayed = relay::relay(
            proxy,
            self.client,
            head,
            answered,
            keep_alive,
            pump.as_mut(),
            self.peer.alt_svc.as_ref(),
        )
        .await;
        // The client may still be sending a body nobody will read (the backend answered
        // early): the connection closes after the answer, lingering.
        self.unread_body |= pump.is_some_and(|pump| !pump.is_done());
        match relayed {
            Relayed::Whole { keep_alive } => Ok(self.finish(keep_alive)),
            Relayed::Closed => Ok(Next::Close),
            Relayed::InvalidBody { line } => {
                self.closing = true;
                Err(line)
            }
        }
    }

    async fn tunnel(
        &mut self,
        response: &ResponseHead,
        buf: Vec<u8>,
        debug: Option<DebugInfo<'_>>,
        set_cookie: Option<String>,
        tunnel: Tunnel,
    ) -> Next {
        let mut out = buffers::take(buf.len() + buffers::FIELDS);
        let (minor, debug) = (self.head.minor, debug.as_ref());
        let (framing, persistence) = (ClientFraming::AsSent, Persistence::Upgrade);
        encode::response_for_client(&mut out, &buf, response, minor, framing, persistence, debug);
        relay::set_cookie_field(&mut out, set_cookie.as_deref());
        relay::alt_svc_field(&mut out, self.peer.alt_svc.as_ref());
        out.extend_from_slice(&buf[response.len..]);
        buffers::give_back(buf);
        let written = self.client.write(&out, self.proxy.idle_timeout).await;
        buffers::give_back(out);
        if written {
            let consumed = self.consumed();
            let (io, early) = self.client.take_for_tunnel(consumed);
            // Boxed: the splice's state is room no other request should keep.
            Box::pin(tunnel.run(io, &early, &[])).await;
        }
        Next::Close
    }
}
