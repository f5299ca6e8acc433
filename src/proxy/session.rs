//! One downstream request, whichever front end carried it: [`Proxy::serve`] takes it through
//! every step in one order, and each front end (`h1` per request on a connection, `h2` per
//! stream) supplies only its framing, as a [`Downstream`]: the facts of the head it read, the
//! sending of the request (an [`Exchange`]), and the writing of an answer, a relayed one or a
//! tunnel.
//!
//! The steps: refusals (a CONNECT that opens no WebSocket is a 405; a head the front end found
//! ambiguous or over the head limits, a 400 or 431) → an ACME http-01 validation (`challenge`)
//! → `forceSecure` → the route → the sticky
//! backend its cookie names → the access log's copy of the request → the attempt loop → the
//! answer: the backend's relayed, a tunnel it accepted, or the page of the error.

use http::StatusCode;

use super::attempt::{Answered, ClientFailure, Exchange, Outcome};
use super::backend::Answer;
use super::error::ProxyError;
use super::tunnel::Tunnel;
use super::{ClientConnection, Proxy, Routed};
use crate::access_log::{LoggedRequest, PendingLine, RequestFacts};
use crate::error_page::Generated;
use crate::metrics::{self, names::Counter};
use crate::routes::RouteSource;
use crate::wire::headers::DebugInfo;
use crate::wire::response::ResponseHead;

/// What the session reads of a request's head.
pub(crate) struct Head<'a> {
    pub(crate) method: &'a [u8],
    /// `Host`, or the authority that stands in for it.
    pub(crate) host: Option<&'a str>,
    /// The path and query: what a `forceSecure` redirect keeps.
    pub(crate) path: &'a [u8],
    /// The target as the access log shows it.
    pub(crate) logged_target: &'a [u8],
    /// The protocol version as the access log shows it.
    pub(crate) version: &'static str,
    /// The client asked for `X-Debug-*` fields.
    pub(crate) debug: bool,
    /// An extended CONNECT for a WebSocket (RFC 8441): the one CONNECT a reverse proxy serves.
    pub(crate) websocket_connect: bool,
    /// The front end found the head unfit to route, with the status that says why.
    pub(crate) refusal: Option<StatusCode>,
}

/// What a backend's answer does to the request.
pub(crate) enum Upgrade {
    /// No tunnel: the answer is relayed.
    No,
    /// A tunnel opens; the client gets `status`.
    Opened { status: u16 },
    /// A tunnel was asked for and the backend did not open it: a 502.
    Refused,
}

/// A downstream request as its front end carries it: the framing the session drives. Two
/// today, an HTTP/1.x request on its connection and an HTTP/2 stream; generic, so nothing on
/// the request path goes through a `dyn`.
pub(crate) trait Downstream {
    /// How the request goes to a backend, for the attempt loop.
    type Exchange<'a>: Exchange
    where
        Self: 'a;
    /// The rest of a streamed upload once the answer began.
    type Upload;
    /// What the session's walk ends with, for the front end's loop.
    type Done;

    /// The facts of the request's head that the session reads.
    fn head(&self) -> Head<'_>;
    /// The values of the request's `Cookie` fields.
    fn cookies(&self) -> impl Iterator<Item = &[u8]>;
    /// The `Referer` and `User-Agent` values (empty when absent), for the access log.
    fn referer_and_agent(&self) -> (&[u8], &[u8]);
    /// Refuses the request with a bare `status`.
    async fn refuse(&mut self, status: StatusCode) -> Self::Done;
    /// Answers with a response of our own; `line` is written once it was sent.
    async fn answer(&mut self, answer: Generated, line: Option<PendingLine>) -> Self::Done;
    /// The client stopped sending: `page` answers it, if the protocol still has a way to.
    async fn client_gone(&mut self, page: impl FnOnce() -> Generated) -> Self::Done;
    /// Reads what the request's body needs before the first attempt, and prepares its sending.
    async fn exchange(&mut self) -> Result<Self::Exchange<'_>, ClientFailure>;
    /// What of the exchange outlives the attempts.
    fn upload(exchange: Self::Exchange<'_>) -> Self::Upload;
    /// Whether `answer` opens a tunnel for this request.
    fn upgrade(&self, answer: &Answer) -> Upgrade;
    /// Relays the backend's answer; `Err` with its access log line when the answer turned out
    /// invalid before anything reached the client, which can still get a page of ours.
    async fn relay(
        &mut self,
        answered: Answered<'_>,
        upload: Self::Upload,
    ) -> Result<Self::Done, Option<PendingLine>>;
    /// Writes the answer that opens `tunnel` (`head`, its bytes and what followed them in
    /// `buf`) and runs it.
    async fn tunnel(
        &mut self,
        head: &ResponseHead,
        buf: Vec<u8>,
        debug: Option<DebugInfo<'_>>,
        set_cookie: Option<String>,
        tunnel: Tunnel,
    ) -> Self::Done;
}

impl<S: RouteSource> Proxy<S> {
    /// Takes one request of `client` through, from its head to its answer.
    pub(crate) async fn serve<D: Downstream>(
        &self,
        client: &ClientConnection,
        down: &mut D,
    ) -> D::Done {
        let head = down.head();
        metrics::count(Counter::protocol(head.version));
        let debug = head.debug;
        if let Some(status) = head.refusal {
            return down.refuse(status).await;
        }
        if head.method == b"CONNECT" && !head.websocket_connect {
            // A reverse proxy tunnels to no address a client names.
            return down.refuse(StatusCode::METHOD_NOT_ALLOWED).await;
        }
        if let Some(challenge) = self.challenge(client, head.method, head.path) {
            return down.answer(challenge.answer().await, None).await;
        }
        if let Some(answer) = self.secure_redirect(client, head.host, head.path, debug) {
            return down.answer(answer, None).await;
        }
        let mut route = match self.route(head.host, debug).await {
            Routed::Ping => return down.answer(Generated::ping(), None).await,
            Routed::Failed(error) => {
                return down.answer(self.error_answer(error, debug), None).await
            }
            Routed::Found(route) => route,
        };
        route.sticky = self.sticky_token(down.cookies());
        let logged = self.access_log.as_ref().map(|log| {
            let (referer, agent) = down.referer_and_agent();
            let facts = RequestFacts {
                client: client.peer,
                method: head.method,
                uri: head.logged_target,
                version: head.version,
                referer,
                user_agent: agent,
                host: head.host.unwrap_or_default().as_bytes(),
                tls: client.tls_version,
            };
            LoggedRequest::new(log.clone(), facts)
        });
        // In a block: what the exchange borrows is free again once the answer began.
        let upload;
        let outcome = 'sent: {
            let failure = match down.exchange().await {
                Ok(mut exchange) => {
                    let outcome = self.forward(&route, logged, &mut exchange).await;
                    upload = D::upload(exchange);
                    break 'sent outcome;
                }
                Err(failure) => failure,
            };
            return self.client_failed(client, down, failure, debug).await;
        };
        match outcome {
            Outcome::Answered(answered) => match down.upgrade(&answered.answer) {
                Upgrade::No => match down.relay(answered, upload).await {
                    Ok(done) => done,
                    Err(line) => {
                        let error = ProxyError::BackendIo { replayable: false };
                        self.answer_error(down, error, line, debug).await
                    }
                },
                Upgrade::Opened { status } => {
                    let Answered {
                        answer,
                        debug,
                        line,
                        set_cookie,
                        ..
                    } = answered;
                    let Answer { stream, buf, head } = answer;
                    let tunnel = self.tunnel(stream, line, status);
                    down.tunnel(&head, buf, debug, set_cookie, tunnel).await
                }
                // The backend's stream goes with its answer: what it sent after its head is
                // no answer to anything we asked.
                Upgrade::Refused => {
                    let error = ProxyError::UpgradeRefused;
                    self.answer_error(down, error, answered.line, debug).await
                }
            },
            Outcome::Failed { error, line } => {
                down.answer(self.error_answer(error, debug), line).await
            }
            Outcome::Client(failure) => self.client_failed(client, down, failure, debug).await,
        }
    }

    /// The page of `error` for a request a backend answered, its access log line showing the
    /// status the client got.
    async fn answer_error<D: Downstream>(
        &self,
        down: &mut D,
        error: ProxyError,
        line: Option<PendingLine>,
        debug: bool,
    ) -> D::Done {
        let line = line.map(|mut line| {
            line.set_status(error.status().as_u16());
            line
        });
        down.answer(self.error_answer(error, debug), line).await
    }

    /// Ends a request the client broke: a 400 for a body that is not valid (its chunked coding
    /// or its trailers); for a client that stopped sending, what its protocol still allows.
    async fn client_failed<D: Downstream>(
        &self,
        client: &ClientConnection,
        down: &mut D,
        failure: ClientFailure,
        debug: bool,
    ) -> D::Done {
        match failure {
            ClientFailure::InvalidBody => {
                tracing::debug!(peer = %client.peer, "invalid request body");
                down.refuse(StatusCode::BAD_REQUEST).await
            }
            ClientFailure::Gone => {
                let error = ProxyError::BackendIo { replayable: false };
                down.client_gone(|| self.error_answer(error, debug)).await
            }
        }
    }
}
