//! The http-01 step of the session: with ACME on, `GET /.well-known/acme-challenge/<token>` on
//! plain HTTP is answered with the key authorization any node of the fleet published in Redis
//! (a 404 when there is none), before `forceSecure` and routing, whatever the `Host`: the ACME
//! server asks this of every node the name resolves to.

use bytes::Bytes;
use http::StatusCode;

use super::{ClientConnection, Proxy};
use crate::acme;
use crate::error_page::{Generated, PageBody};

/// An http-01 validation request: the ACME client that answers it and the token it asks for.
pub(super) struct Challenge<'a> {
    acme: &'a acme::Acme,
    token: &'a str,
}

impl<S> Proxy<S> {
    /// The http-01 validation request this is, or `None` when it is not one: a test of the
    /// head alone, so that the lookup's future is made only for a validation.
    pub(super) fn challenge<'a>(
        &'a self,
        client: &ClientConnection,
        method: &[u8],
        path: &'a [u8],
    ) -> Option<Challenge<'a>> {
        let acme = self.acme.as_ref().filter(|_| !client.tls)?;
        if method != b"GET" {
            return None;
        }
        let token = acme::http_token(path)?;
        Some(Challenge { acme, token })
    }
}

impl Challenge<'_> {
    /// The key authorization any node published for the token, or a 404.
    pub(super) async fn answer(self) -> Generated {
        match self.acme.http_answer(self.token).await {
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
        }
    }
}
