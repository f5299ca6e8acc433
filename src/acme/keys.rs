//! Where the ACME state lives in Redis (behind the driver's prefix), and the pure decisions about
//! it: the back-off after a failed order, and whether a certificate is due for renewal.
//!
//! | key | type | what |
//! |-----|------|------|
//! | `acme:account:<directory>` | string | the account's credentials (JSON), one per ACME server |
//! | `acme:http-01:<token>` | string | an http-01 key authorization, while its order runs |
//! | `acme:tls-alpn-01:<name>` | hash | a tls-alpn-01 challenge certificate (`certificate`, `key`) |
//! | `acme:lock:<name>` | string | the order lock: its owner's token, with a short expiry |
//! | `acme:backoff:<name>` | string | the last failure's reason, expiring when a retry is allowed |
//! | `acme:failures:<name>` | integer | failures in a row, for the back-off's growth |
//! | `acme:names` | set | every name issued by ACME, for renewal |
//!
//! Issued certificates go to the `tls:<name>` hashes every worker serves, with the fields
//! `source` (`acme`) and `expires` (Unix seconds) beside `certificate` and `key`.

use std::time::Duration;

pub(super) const ACCOUNT: &str = "acme:account:";
pub(super) const HTTP_01: &str = "acme:http-01:";
pub(super) const TLS_ALPN_01: &str = "acme:tls-alpn-01:";
pub(super) const LOCK: &str = "acme:lock:";
pub(super) const BACKOFF: &str = "acme:backoff:";
pub(super) const FAILURES: &str = "acme:failures:";
pub(super) const NAMES: &str = "acme:names";
/// The `source` of the `tls:` hashes ACME writes.
pub(super) const SOURCE_ACME: &str = "acme";

/// The first back-off after a failure; each further failure in a row doubles it.
const FIRST_BACKOFF: Duration = Duration::from_secs(5 * 60);
/// The longest back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a run of failures is remembered: a name quiet this long starts over.
pub(super) const FAILURES_MEMORY: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// How long no node may order `name` after its `failures`-th failure in a row (1 for the first).
pub(super) fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

/// Whether a certificate expiring at `not_after` (Unix seconds) is to be renewed at `now`.
pub(super) fn is_due(not_after: i64, now: i64, renew_before: Duration) -> bool {
    let before = i64::try_from(renew_before.as_secs()).unwrap_or(i64::MAX);
    not_after.saturating_sub(before) <= now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_five_minutes_up_to_a_day() {
        assert_eq!(backoff(1), Duration::from_secs(300));
        assert_eq!(backoff(2), Duration::from_secs(600));
        assert_eq!(backoff(3), Duration::from_secs(1200));
        assert_eq!(backoff(20), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_certificate_is_due_within_renew_before_of_its_expiry() {
        let day = Duration::from_secs(86_400);
        assert!(!is_due(100 * 86_400, 0, day * 30));
        assert!(is_due(30 * 86_400, 0, day * 30));
        assert!(is_due(-5, 0, day));
    }
}
