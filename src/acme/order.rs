//! One ACME order for one name, start to end (RFC 8555, 7.4): create it, publish the answer
//! to its challenge in Redis, tell the server it may validate, wait until the order is ready,
//! finalize it with a fresh key and fetch the certificate chain. The lock, the back-off and
//! where the certificate goes are the caller's.

use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};

use super::challenge;
use crate::config::acme::Challenge;
use crate::routes::redis::{RedisRoutes, StoreError};

/// Longest the server may take to validate, then to issue.
const POLL_TIMEOUT: Duration = Duration::from_secs(90);

/// What an order produced: the PEM chain and its PEM key.
pub(super) struct Issued {
    pub(super) chain_pem: String,
    pub(super) key_pem: String,
}

/// Why an order failed; its text is the ACME server's reason when it gave one.
#[derive(Debug, thiserror::Error)]
pub(super) enum OrderError {
    #[error(transparent)]
    Acme(#[from] instant_acme::Error),
    #[error("{0}")]
    Refused(String),
    #[error("cannot publish the challenge answer: {0}")]
    Store(String),
}

impl From<StoreError> for OrderError {
    fn from(error: StoreError) -> Self {
        Self::Store(error.to_string())
    }
}

/// Orders a certificate for `name` with `account`, answering `kind`'s challenge.
pub(super) async fn run(
    account: &Account,
    routes: &RedisRoutes,
    name: &str,
    kind: Challenge,
) -> Result<Issued, OrderError> {
    let identifiers = [Identifier::Dns(name.to_owned())];
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut published = Vec::new();
    let outcome = async {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(OrderError::Refused(format!("authorization is {other:?}")));
                }
            }
            let wanted = match kind {
                Challenge::Http01 => ChallengeType::Http01,
                Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            };
            let mut offered = authorization.challenge(wanted).ok_or_else(|| {
                OrderError::Refused(format!("the server offers no {} challenge", kind.name()))
            })?;
            let key_authorization = offered.key_authorization();
            let key = match kind {
                Challenge::Http01 => {
                    challenge::put_http(routes, &offered.token, key_authorization.as_str()).await?
                }
                Challenge::TlsAlpn01 => {
                    challenge::put_alpn(routes, name, key_authorization.digest().as_ref())
                        .await
                        .map_err(OrderError::Store)?
                }
            };
            published.push(key);
            offered.set_ready().await?;
        }
        let policy = RetryPolicy::new().timeout(POLL_TIMEOUT);
        if order.poll_ready(&policy).await? != OrderStatus::Ready {
            return Err(OrderError::Refused(why_invalid(&mut order).await));
        }
        let key_pem = order.finalize().await?;
        let chain_pem = order.poll_certificate(&policy).await?;
        Ok(Issued { chain_pem, key_pem })
    }
    .await;
    challenge::remove(routes, &published).await;
    outcome
}

/// The reason the server gave for an order that became invalid: its challenges' errors.
async fn why_invalid(order: &mut instant_acme::Order) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        if let Ok(state) = authorization.refresh().await {
            let errors = state.challenges.iter().filter_map(|c| c.error.as_ref());
            reasons.extend(errors.map(ToString::to_string));
        }
    }
    match reasons.is_empty() {
        true => "the order became invalid".to_owned(),
        false => reasons.join("; "),
    }
}
