//! The one attempt loop, for every client protocol: pick a live backend not tried yet, take a
//! stream to it from the pool, let the front end send the request, read the answer's head,
//! and on failure classify, mark dead by Hipache's rules and retry while the failure and
//! `retryOnError` allow. An idle pooled stream the backend had closed is replaced once, in the
//! same attempt, when the request can safely go again.
//!
//! What comes back is an answer with its X-Debug fields and access log line, or the error
//! that answers the client: the front end then relays or renders it in its protocol.

use std::time::{Duration, Instant};

use crate::access_log::{LoggedRequest, PendingLine};
use crate::balancer::Attempts;
use crate::metrics::{self, names::Counter};
use crate::routes::{Backend, Frontend, RouteSource};
use crate::wire::buffers;
use crate::wire::headers::DebugInfo;
use crate::wire::response::ResponseHead;

use super::backend::{read_response_head, Answer, Asked, Unanswered};
use super::error::ProxyError;
use super::pool::BackendStream;
use super::{Proxy, Route};
use crate::escape::Escaped;

/// How a front end sends its request to a backend: the one step of an attempt that depends on
/// the client's protocol.
pub(crate) trait Exchange {
    /// What the request lets its answer be.
    fn asked(&self) -> Asked;
    /// Whether the request, body included, can be sent again whole.
    fn is_replayable(&self) -> bool;
    /// Whether sending it twice has the effect of once (RFC 9110 §9.2.2).
    fn is_idempotent(&self) -> bool;
    /// Writes the request, head and body, to `stream`.
    async fn send(&mut self, stream: &mut BackendStream) -> Result<(), SendError>;
    /// Passes an interim answer (`head`, its bytes in `bytes`) on to the client, as it comes;
    /// only called when [`Exchange::asked`] says the client takes them (and, for a `100`,
    /// waits for it).
    async fn interim(&mut self, head: &ResponseHead, bytes: &[u8]) -> Result<(), ClientFailure> {
        let _ = (head, bytes);
        Ok(())
    }
    /// After an interim answer: moves the rest of a streamed body until the backend speaks
    /// again, as [`Exchange::send`] does after the head. A backend failure here is not an
    /// error yet: what the backend says (or its silence) is read next.
    async fn resume(&mut self, stream: &mut BackendStream) -> Result<(), SendError> {
        let _ = stream;
        Ok(())
    }
}

/// Why a request could not be sent.
pub(crate) enum SendError {
    /// The backend stopped taking it; `sent` says whether any of it had left.
    Backend {
        sent: bool,
    },
    Client(ClientFailure),
}

/// The client broke the exchange: no backend is to blame, and none is marked dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientFailure {
    /// It went away or stopped sending its body.
    Gone,
    /// Its chunked body is not valid chunked coding.
    InvalidBody,
}

/// A backend answered: its head is read, the rest is for the front end to relay.
pub(crate) struct Answered<'r> {
    pub(crate) answer: Answer,
    /// The host the request was routed by, for log lines about the rest of the exchange.
    pub(crate) host: &'r str,
    pub(crate) backend: &'r Backend,
    /// The `X-Debug-*` fields, when the client asked for them.
    pub(crate) debug: Option<DebugInfo<'r>>,
    /// The access log line, written by the front end when the answer ends.
    pub(crate) line: Option<PendingLine>,
    /// With sticky sessions, the `Set-Cookie` value the answer's head must carry.
    pub(crate) set_cookie: Option<String>,
}

/// How the attempts of one request ended.
#[expect(
    clippy::large_enum_variant,
    reason = "moved once per request, from the loop to its caller: a box would cost an allocation"
)]
pub(crate) enum Outcome<'r> {
    Answered(Answered<'r>),
    /// No backend answered: `error` answers the client. A request that reached no backend
    /// attempt gets no access log line, as in Hipache.
    Failed {
        error: ProxyError,
        line: Option<PendingLine>,
    },
    Client(ClientFailure),
}

/// One attempt that failed.
enum Failed {
    Backend(ProxyError),
    Client(ClientFailure),
}

impl<S: RouteSource> Proxy<S> {
    /// Sends the request to the route's backends, one at a time, until one answers or no retry
    /// is left. `logged` becomes the answer's access log line.
    pub(super) async fn forward<'r>(
        &self,
        route: &'r Route,
        logged: Option<LoggedRequest>,
        exchange: &mut impl Exchange,
    ) -> Outcome<'r> {
        let frontend = &route.frontend;
        let sticky = self.sticky.as_ref().map(|key| {
            let chosen = route.sticky.as_ref();
            let chosen = chosen.and_then(|t| key.backend_of(t, &route.host, &frontend.backends));
            (key, chosen)
        });
        let mut attempts = Attempts::new(&frontend.backends, &route.dead, self.retry_on_error)
            .holding(&route.held)
            .preferring(sticky.and_then(|(_, chosen)| chosen));
        let mut failure = None;
        while let Some(backend) = attempts.next(&mut rand::rng()) {
            if failure.is_some() {
                metrics::count(Counter::Retries);
            }
            let backend_start = Instant::now();
            match self.attempt(backend, exchange).await {
                Ok(answer) => {
                    let status = answer.head.status;
                    let dead = answer_marks_dead(
                        status,
                        answer.head.retry_after,
                        self.dead_backend_on_500,
                    );
                    if dead {
                        let code = http::StatusCode::from_u16(status);
                        let why = code.as_ref().map_or("5xx", http::StatusCode::as_str);
                        self.mark_dead(&route.host, frontend, backend, why);
                    }
                    let now = Instant::now();
                    let (latency, backend_latency) = (now - route.start, now - backend_start);
                    metrics::answered(
                        frontend,
                        &route.dead,
                        backend.index,
                        status,
                        dead,
                        latency,
                        backend_latency,
                    );
                    let debug = route.debug.then(|| DebugInfo {
                        backend_url: backend.url.as_str(),
                        backend_index: backend.index,
                        frontend_id: &frontend.id,
                        host: &route.host,
                        total_ms: millis(latency),
                        backend_ms: millis(backend_latency),
                    });
                    let line = logged.map(|logged| {
                        let (front, answered) = (frontend.clone(), Some(backend.index));
                        logged.into_pending(status, front, answered, route.start, backend_start)
                    });
                    // A client new to this backend learns to come back to it.
                    let set_cookie = sticky
                        .filter(|(_, chosen)| *chosen != Some(backend.index))
                        .map(|(key, _)| key.set_cookie(&route.host, &backend.url));
                    return Outcome::Answered(Answered {
                        answer,
                        host: &route.host,
                        backend,
                        debug,
                        line,
                        set_cookie,
                    });
                }
                Err(Failed::Backend(error)) => {
                    let why = error.marks_dead().then(|| error.reason());
                    metrics::attempt_failed(frontend, backend.index, why);
                    self.note_failure(&route.host, frontend, backend, error);
                    failure = Some((error, backend_start));
                    if !attempts.may_retry(error.is_retryable()) {
                        break;
                    }
                }
                Err(Failed::Client(failure)) => {
                    metrics::failed(frontend, &route.dead, None);
                    return Outcome::Client(failure);
                }
            }
        }
        let error = match failure {
            Some((error, _)) => error,
            None if frontend.backends.is_empty() => ProxyError::BadBackendUrl,
            None => ProxyError::NoLiveBackend,
        };
        metrics::failed(frontend, &route.dead, Some(error.status().as_u16()));
        let line = match (failure, logged) {
            (Some((_, backend_start)), Some(logged)) => Some(logged.into_pending(
                error.status().as_u16(),
                frontend.clone(),
                None,
                route.start,
                backend_start,
            )),
            _ => None,
        };
        Outcome::Failed { error, line }
    }

    /// One attempt on `backend`: a pooled stream, the request, the answer's head. A stream
    /// taken idle that the backend had closed is replaced by a fresh one (in its place under
    /// `maxSockets`) when the request never left, or can go again (`Unanswered::is_stale`).
    async fn attempt(
        &self,
        backend: &Backend,
        exchange: &mut impl Exchange,
    ) -> Result<Answer, Failed> {
        let url = &backend.url;
        let mut stream = self.pool.stream(url).await.map_err(Failed::Backend)?;
        loop {
            let unanswered = match exchange.send(&mut stream).await {
                Ok(()) => {
                    let asked = exchange.asked();
                    let timeout = self.response_timeout;
                    let (mut buf, mut spoke) = (buffers::take(buffers::ANSWER), false);
                    loop {
                        // Asked anew each time: a streamed body can go again until its first
                        // byte left, which the backend's interim answer may have let happen.
                        let replayable = exchange.is_replayable();
                        let stream_ = &mut stream.stream;
                        match read_response_head(stream_, buf, asked, timeout, replayable).await {
                            Ok((mut rest, head)) if head.is_interim() => {
                                if asked.interim && (head.status != 100 || asked.continue_awaited) {
                                    let interim = exchange.interim(&head, &rest[..head.len]).await;
                                    interim.map_err(Failed::Client)?;
                                }
                                rest.drain(..head.len);
                                // Nothing more of the answer yet: the body moves on (a `100
                                // Continue` is what lets it start) until the backend speaks.
                                if rest.is_empty() {
                                    if let Err(SendError::Client(failure)) =
                                        exchange.resume(&mut stream).await
                                    {
                                        return Err(Failed::Client(failure));
                                    }
                                }
                                (buf, spoke) = (rest, true);
                            }
                            Ok((buf, head)) => return Ok(Answer { stream, buf, head }),
                            Err(mut unanswered) => {
                                // The backend spoke: not a stale stream.
                                unanswered.answered |= spoke;
                                break unanswered;
                            }
                        }
                    }
                }
                Err(SendError::Backend { sent }) => Unanswered {
                    error: ProxyError::BackendIo {
                        replayable: exchange.is_replayable(),
                    },
                    sent,
                    answered: false,
                },
                Err(SendError::Client(failure)) => return Err(Failed::Client(failure)),
            };
            if !(stream.reused && unanswered.is_stale(exchange.is_idempotent())) {
                return Err(Failed::Backend(unanswered.error));
            }
            stream = self
                .pool
                .replace(url, stream)
                .await
                .map_err(Failed::Backend)?;
        }
    }

    /// Hipache's consequences of a failed attempt: dead for `deadBackendTTL`, or only logged.
    fn note_failure(&self, host: &str, frontend: &Frontend, backend: &Backend, error: ProxyError) {
        if error.marks_dead() {
            self.mark_dead(host, frontend, backend, error.reason());
        } else {
            tracing::warn!(host = %Escaped(host), backend = %Escaped(backend.url.as_str()), error = error.reason(), "backend request failed");
        }
    }

    /// Hipache marks only when the frontend has another backend to send traffic to.
    fn mark_dead(&self, host: &str, frontend: &Frontend, backend: &Backend, why: &str) {
        tracing::warn!(host = %Escaped(host), frontend = %Escaped(&frontend.id), backend = %Escaped(backend.url.as_str()), reason = why, "backend is dead");
        metrics::count(Counter::DeadMarks);
        if frontend.backend_count > 1 {
            self.routes.mark_dead(host, frontend, backend);
        }
    }
}

/// Whole milliseconds of `elapsed`, for the X-Debug fields.
fn millis(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

/// Whether a backend's answer means it is failing: 5xx (500 only with `deadBackendOn500`),
/// except a 503 with `Retry-After`, a legitimate maintenance answer.
fn answer_marks_dead(status: u16, retry_after: bool, dead_on_500: bool) -> bool {
    match status {
        500 => dead_on_500,
        503 => !retry_after,
        501..=599 => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_hundreds_mark_dead_by_hipache_rules() {
        assert!(answer_marks_dead(500, false, true));
        assert!(!answer_marks_dead(500, false, false));
        assert!(answer_marks_dead(502, false, false));
        assert!(answer_marks_dead(503, false, false));
        assert!(!answer_marks_dead(503, true, true));
        assert!(!answer_marks_dead(404, false, true));
        assert!(!answer_marks_dead(200, false, true));
    }
}
