//! One forwarding attempt: a connection to the chosen backend, the request sent, the response
//! head awaited under `tcpTimeout`. Library errors are turned into `ProxyError` here and only here.

use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use hyper::body::Incoming;

use super::body::RequestBody;
use super::client::{BackendClient, Connection};
use super::error::ProxyError;
use crate::routes::Backend;

/// Requests with a body up to this size are kept whole, so that a retry can send them again.
pub const REPLAY_LIMIT_BYTES: u64 = 64 * 1024;

/// The client's request body, as far as retries are concerned.
pub enum Payload {
    /// Held in memory: can be sent any number of times.
    Replayable(Bytes),
    /// Streamed from the client: `None` once sent.
    Once(Option<Incoming>),
}

impl Payload {
    /// Keeps small bodies whole; a client that goes away while sending one yields `None`.
    pub async fn from_incoming(body: Incoming) -> Option<Self> {
        use http_body::Body as _;
        use http_body_util::BodyExt as _;
        match body.size_hint().exact() {
            Some(0) => Some(Self::Replayable(Bytes::new())),
            Some(n) if n <= REPLAY_LIMIT_BYTES => body
                .collect()
                .await
                .ok()
                .map(|collected| Self::Replayable(collected.to_bytes())),
            _ => Some(Self::Once(Some(body))),
        }
    }

    fn is_replayable(&self) -> bool {
        matches!(self, Self::Replayable(_))
    }

    fn take(&mut self) -> RequestBody {
        match self {
            Self::Replayable(bytes) if bytes.is_empty() => RequestBody::Full(None),
            Self::Replayable(bytes) => RequestBody::Full(Some(bytes.clone())),
            Self::Once(incoming) => match incoming.take() {
                Some(incoming) => RequestBody::Stream(incoming),
                None => RequestBody::Full(None),
            },
        }
    }
}

/// Sends the request described by `parts` and `payload` to `backend`.
pub async fn forward(
    client: &BackendClient,
    backend: &Backend,
    parts: &mut Parts,
    payload: &mut Payload,
    response_timeout: Duration,
    last_attempt: bool,
) -> Result<(Response<Incoming>, Connection), ProxyError> {
    let mut connection = client.connection(&backend.url).await?;
    let replayable = payload.is_replayable();
    let mut request = build(parts, payload.take(), last_attempt);
    if connection.reused {
        // A pooled connection the backend closed meanwhile gives the request back unsent: it
        // then goes out on a fresh connection, whatever its body.
        match connection.sender.try_send_request(request).await {
            Ok(response) => return Ok((response, connection)),
            Err(mut error) => match error.take_message() {
                Some(unsent) => {
                    request = unsent;
                    connection = client.fresh_connection(&backend.url).await?;
                }
                None => return Err(ProxyError::BackendIo { replayable }),
            },
        }
    }
    match tokio::time::timeout(response_timeout, connection.sender.send_request(request)).await {
        Ok(Ok(response)) => Ok((response, connection)),
        Ok(Err(error)) => {
            tracing::debug!(backend = %backend.url, %error, "backend request failed");
            Err(ProxyError::BackendIo { replayable })
        }
        Err(_) => Err(ProxyError::BackendTimeout { replayable }),
    }
}

/// The request for one attempt. The headers are copied only while another attempt may need
/// them; the last one takes them (most frontends have one backend: no copy at all).
fn build(parts: &mut Parts, body: RequestBody, last_attempt: bool) -> Request<RequestBody> {
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.headers_mut() = if last_attempt {
        std::mem::take(&mut parts.headers)
    } else {
        parts.headers.clone()
    };
    request
}
