//! Numbers, addresses and dates written as ASCII into byte buffers without `fmt` (pure). The
//! access log and the HTTP heads write some on every request, and `write!` with its format
//! machinery (floats above all) was a visible part of a request's cost.

use std::cell::RefCell;
use std::net::IpAddr;

pub(crate) const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `n` in decimal.
pub(crate) fn decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// `millis / 1000` as JavaScript prints the number: `0`, `0.012`, `1.5`, `2`.
pub(crate) fn seconds_from_millis(out: &mut Vec<u8>, millis: u64) {
    decimal(out, millis / 1000);
    let fraction = millis % 1000;
    if fraction == 0 {
        return;
    }
    let digits = [
        b'0' + (fraction / 100) as u8,
        b'0' + (fraction / 10 % 10) as u8,
        b'0' + (fraction % 10) as u8,
    ];
    let kept = 3 - digits.iter().rev().take_while(|&&d| d == b'0').count();
    out.push(b'.');
    out.extend_from_slice(&digits[..kept]);
}

/// A client address as Hipache logs and forwards it: IPv4 mapped, `::ffff:1.2.3.4`.
pub(crate) fn client_address(out: &mut Vec<u8>, address: IpAddr) {
    match address {
        IpAddr::V4(v4) => {
            out.extend_from_slice(b"::ffff:");
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                decimal(out, u64::from(octet));
            }
        }
        // Rare enough for `fmt`; its compression of zeros is the canonical text.
        IpAddr::V6(v6) => out.extend_from_slice(v6.to_string().as_bytes()),
    }
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), Howard Hinnant's algorithm.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn two_digits(n: u64) -> [u8; 2] {
    [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]
}

/// `24/Nov/2026:02:30:12`, the access log's UTC time.
pub(crate) fn log_time(secs: u64) -> [u8; 20] {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let mut text = *b"01/Jan/1970:00:00:00";
    text[0..2].copy_from_slice(&two_digits(u64::from(day)));
    text[3..6].copy_from_slice(MONTHS[(month - 1) as usize].as_bytes());
    let year = year.clamp(0, 9999) as u64;
    text[7..9].copy_from_slice(&two_digits(year / 100));
    text[9..11].copy_from_slice(&two_digits(year));
    text[12..14].copy_from_slice(&two_digits(rem / 3600));
    text[15..17].copy_from_slice(&two_digits(rem % 3600 / 60));
    text[18..20].copy_from_slice(&two_digits(rem % 60));
    text
}

/// `Tue, 01 Dec 2026 08:04:31 GMT`, an HTTP date (RFC 9110 §5.6.7).
pub(crate) fn http_date(secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let mut text = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    text[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    text[5..7].copy_from_slice(&two_digits(u64::from(day)));
    text[8..11].copy_from_slice(MONTHS[(month - 1) as usize].as_bytes());
    let year = year.clamp(0, 9999) as u64;
    text[12..14].copy_from_slice(&two_digits(year / 100));
    text[14..16].copy_from_slice(&two_digits(year));
    text[17..19].copy_from_slice(&two_digits(rem / 3600));
    text[20..22].copy_from_slice(&two_digits(rem % 3600 / 60));
    text[23..25].copy_from_slice(&two_digits(rem % 60));
    text
}

/// Keeps the text of the current second, so a busy worker formats a date once a second.
pub(crate) struct PerSecond<const N: usize> {
    cached: RefCell<(u64, [u8; N])>,
    format: fn(u64) -> [u8; N],
}

impl<const N: usize> PerSecond<N> {
    pub(crate) const fn new(format: fn(u64) -> [u8; N]) -> Self {
        Self {
            cached: RefCell::new((u64::MAX, [0; N])),
            format,
        }
    }

    /// Appends the text for `secs` (seconds since the epoch).
    pub(crate) fn write(&self, out: &mut Vec<u8>, secs: u64) {
        let mut cached = self.cached.borrow_mut();
        if cached.0 != secs {
            *cached = (secs, (self.format)(secs));
        }
        out.extend_from_slice(&cached.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn numbers_as_javascript_prints_them() {
        assert_eq!(text(|o| decimal(o, 0)), "0");
        assert_eq!(text(|o| decimal(o, u64::MAX)), "18446744073709551615");
        for (millis, shown) in [
            (0, "0"),
            (12, "0.012"),
            (10, "0.01"),
            (100, "0.1"),
            (1500, "1.5"),
            (2000, "2"),
            (61_001, "61.001"),
        ] {
            assert_eq!(text(|o| seconds_from_millis(o, millis)), shown);
        }
    }

    #[test]
    fn addresses_mapped_as_hipache_writes_them() {
        let v4 = "10.0.255.1".parse().unwrap();
        assert_eq!(text(|o| client_address(o, v4)), "::ffff:10.0.255.1");
        let v6 = "2001:db8::1".parse().unwrap();
        assert_eq!(text(|o| client_address(o, v6)), "2001:db8::1");
    }

    #[test]
    fn calendar_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_781), (2026, 11, 24));
        // 2026-11-24T02:30:12Z and 2026-12-01T08:04:31Z
        assert_eq!(&log_time(1_795_487_412), b"24/Nov/2026:02:30:12");
        assert_eq!(&http_date(1_796_112_271), b"Tue, 01 Dec 2026 08:04:31 GMT");
        assert_eq!(&http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn per_second_text_follows_the_clock() {
        let cache = PerSecond::new(log_time);
        let mut out = Vec::new();
        cache.write(&mut out, 0);
        cache.write(&mut out, 0);
        cache.write(&mut out, 61);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "01/Jan/1970:00:00:0001/Jan/1970:00:00:0001/Jan/1970:00:01:01"
        );
    }
}
