//! The http-01 step of the session: with ACME on, `GET /.well-known/acme-challenge/<token>` on
//! plain HTTP is answered with the key authorization any node of the fleet published in Redis
//! (a 404 when there is none), before `forceSecure` and routing, whatever the `Host`: the ACME
//! server asks this of every node the name resolves to.

use bytes::Bytes;
use http::StatusCode;

use super::{ClientConnection, Proxy};
use crate::acme;
use crate::error_page::{Generated, PageBody};

impl<S> Proxy<S> {
    /// The answer to an http-01 validation request, or `None` when this is not one.
    pub(super) async fn challenge_answer(
        &self,
        client: &ClientConnection,
        method: &[u8],
        path: &[u8],
    ) -> Option<Generated> {
        let acme = self.acme.as_ref().filter(|_| !client.tls)?;
        if method != b"GET" {
            return None;
        }
        let token = acme::http_token(path)?;
        Some(match acme.http_answer(token).await {
            Some(key_authorization) => Generated {
                status: StatusCode::OK,
                page: PageBody::Html(Bytes::from(key_authorization)),
                debug_error: None,
                location: None,
            },
            None => Generated {
                status: StatusCode::NOT_FOUND,
                page: PageBody::Text("no such challenge"),
                debug_error: None,
                location: None,
            },
        })
    }
}
