//! Renewal: each worker looks at the names ACME issued (`acme:names`) at start and then every
//! [`CHECK_EVERY`], and asks for a new certificate for each one still ACME's (`source: acme`)
//! within `renewBefore` of its expiry. Only the node that gets a name's order lock orders it, and it checks again under the
//! lock, so a certificate another node renewed a moment ago is not renewed twice. A failed
//! renewal backs off like any order and never removes the certificate being served.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio::time::sleep;

use super::issue::{unix_now, Why};
use super::keys::{self, is_due};
use super::Inner;
use crate::escape::Escaped;

/// How often the names are looked at after the first time.
const CHECK_EVERY: Duration = Duration::from_secs(60 * 60);
/// The first look comes after at most this long, so that a fleet starting together spreads it.
const FIRST_CHECK_WITHIN: Duration = Duration::from_secs(3);

pub(super) async fn run(inner: Arc<Inner>) {
    sleep(FIRST_CHECK_WITHIN.mul_f64(rand::random::<f64>())).await;
    loop {
        check(&inner).await;
        sleep(CHECK_EVERY).await;
    }
}

async fn check(inner: &Inner) {
    let key = format!("{}{}", inner.routes.prefix(), keys::NAMES);
    let mut pipe = redis::pipe();
    pipe.cmd("SMEMBERS").arg(&key);
    let names: Vec<String> = match inner.routes.execute(&key, &pipe).await {
        Ok(values) => values
            .into_iter()
            .next()
            .and_then(|v: Value| redis::from_redis_value(v).ok())
            .unwrap_or_default(),
        Err(error) => {
            tracing::debug!(%error, "acme renewal check skipped");
            return;
        }
    };
    let mut due = 0;
    for name in &names {
        if !inner.is_ours(name).await {
            continue;
        }
        let Some(current) = inner.current(name).await else {
            continue;
        };
        let not_after = current.facts.as_ref().map_or(0, |f| f.not_after);
        if !is_due(not_after, unix_now(), inner.config.renew_before) {
            continue;
        }
        due += 1;
        if let Some(reason) = inner.backed_off(name).await {
            tracing::info!(name = %Escaped(name), reason = %Escaped(&reason), "acme renewal backed off");
            continue;
        }
        inner.obtain(name, Why::Renewal).await;
    }
    tracing::info!(names = names.len(), due, "acme renewal checked");
}
