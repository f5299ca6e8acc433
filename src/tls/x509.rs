//! The two facts of a certificate webpki does not expose, read straight from its DER: when it
//! expires (`notAfter`) and who issued it (the issuer's common name, else its organisation).
//!
//! Owns a minimal DER walk over the fixed start of a `TBSCertificate` (version, serial,
//! signature algorithm, issuer, validity), which is all either fact needs; a full X.509 parser
//! would be a dependency for two fields. It does not validate anything: webpki does that when
//! it reads the names, and a certificate it cannot walk simply has no expiry or issuer to show.

/// DER tags met on the way.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `id-at-commonName` and `id-at-organizationName`, as DER content.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];

/// What a certificate says about its issuer and its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    /// `notAfter`, in seconds since the Unix epoch.
    pub(crate) not_after: i64,
    /// The issuer's common name (or organisation), as written in the certificate.
    pub(crate) issuer: String,
}

/// Reads the expiry and issuer of the DER certificate `der`; `None` if it cannot be walked.
pub(crate) fn facts(der: &[u8]) -> Option<Facts> {
    let (certificate, _) = element(der, SEQUENCE)?;
    let (mut tbs, _) = element(certificate, SEQUENCE)?;
    if tbs.first() == Some(&VERSION) {
        tbs = skip(tbs)?;
    }
    tbs = skip(tbs)?; // serial number
    tbs = skip(tbs)?; // signature algorithm
    let (issuer, rest) = element(tbs, SEQUENCE)?;
    let (validity, _) = element(rest, SEQUENCE)?;
    let not_after = {
        let rest = skip(validity)?;
        let tag = *rest.first()?;
        let (time, _) = element(rest, tag)?;
        time_secs(tag, time)?
    };
    Some(Facts {
        not_after,
        issuer: issuer_name(issuer).unwrap_or_else(|| "?".to_owned()),
    })
}

/// The content of the element at the start of `input` if its tag is `tag`, and what follows it.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let (len, rest) = if len < 0x80 {
        (usize::from(len), rest)
    } else {
        let count = usize::from(len & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |n, &b| (n << 8) | usize::from(b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// What follows the element at the start of `input`, whatever its tag.
fn skip(input: &[u8]) -> Option<&[u8]> {
    element(input, *input.first()?).map(|(_, rest)| rest)
}

/// The first common name of an X.501 `Name`, else its first organisation.
fn issuer_name(mut name: &[u8]) -> Option<String> {
    let mut organization = None;
    while !name.is_empty() {
        let (set, rest) = element(name, SET)?;
        name = rest;
        let (pair, _) = element(set, SEQUENCE)?;
        let (oid, value) = element(pair, OID)?;
        let text = {
            let (content, _) = element(value, *value.first()?)?;
            String::from_utf8_lossy(content).into_owned()
        };
        if oid == COMMON_NAME {
            return Some(text);
        }
        if oid == ORGANIZATION && organization.is_none() {
            organization = Some(text);
        }
    }
    organization
}

/// A `UTCTime` (`YYMMDDHHMMSSZ`) or `GeneralizedTime` (`YYYYMMDDHHMMSSZ`) as Unix seconds.
fn time_secs(tag: u8, text: &[u8]) -> Option<i64> {
    let digits = text.strip_suffix(b"Z")?;
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = std::str::from_utf8(digits.get(range)?).ok()?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, at) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy = number(0..2)?;
            // RFC 5280: 50..99 are 19xx, 00..49 are 20xx.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (GENERALIZED_TIME, 14) => (number(0..4)?, 4),
        _ => return None,
    };
    let month = number(at..at + 2)?;
    let day = number(at + 2..at + 4)?;
    let hour = number(at + 4..at + 6)?;
    let minute = number(at + 6..at + 8)?;
    let second = number(at + 8..at + 10)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_both_kinds_read_as_unix_seconds() {
        assert_eq!(time_secs(UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(time_secs(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(
            time_secs(GENERALIZED_TIME, b"20240229120000Z"),
            Some(1_709_208_000)
        );
        assert_eq!(time_secs(UTC_TIME, b"701301000000Z"), None);
        assert_eq!(time_secs(UTC_TIME, b"7001010000Z"), None);
    }

    #[test]
    fn a_generated_certificate_gives_its_expiry_and_issuer() {
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 5, 17);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Test Issuer");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let facts = facts(cert.der()).unwrap();
        assert_eq!(facts.issuer, "Test Issuer");
        assert_eq!(facts.not_after, 1_936_742_400);
    }

    #[test]
    fn garbage_has_no_facts() {
        assert_eq!(facts(b"not a certificate"), None);
        assert_eq!(facts(&[SEQUENCE, 0x85, 1, 2, 3, 4, 5]), None);
    }
}
