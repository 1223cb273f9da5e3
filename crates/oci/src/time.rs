//! Civil-calendar arithmetic and timestamp text formats, in one place for every crate: RFC 3339 (trusted
//! roots, Notary signing times, `org.opencontainers.image.created`, Kyverno's time functions) and ASN.1
//! GeneralizedTime (RFC 3161 tokens). Pure functions over Unix seconds / nanoseconds; no clock.

/// Nanoseconds per second.
pub const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of a day count since 1970-01-01 (the inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days in `month` (1–12) of `year`, or 0 for a month out of range.
pub fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    }
}

/// Parses RFC 3339 (`2006-01-02T15:04:05[.frac](Z|±hh:mm)`, `T`/`Z` in either case) to Unix
/// nanoseconds; the fraction is kept to nanoseconds. `None` for anything else (including dates such
/// as February 30).
pub fn parse_rfc3339_nanos(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (h, mi, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac: i128 = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let f = s.get(start..i)?;
        if f.is_empty() {
            return None;
        }
        let f9: String = f.chars().chain(std::iter::repeat('0')).take(9).collect();
        frac = f9.parse().ok()?;
    }
    let offset_secs: i64 = match s.get(i..)? {
        "Z" | "z" => 0,
        rest if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = (digits(i + 1..i + 3)?, digits(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    Some(i128::from(secs) * NANOS_PER_SEC + frac)
}

/// Parses RFC 3339 to Unix seconds (a fraction is dropped, rounding toward the past).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    parse_rfc3339_nanos(s).and_then(|n| i64::try_from(n.div_euclid(NANOS_PER_SEC)).ok())
}

/// Formats Unix seconds as RFC 3339 UTC: `2023-06-27T05:30:33Z`.
pub fn format_rfc3339(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an ASN.1 GeneralizedTime as DER writes it (`YYYYMMDDHHMMSS[.f*]Z`) to Unix seconds.
pub fn parse_generalized_time(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?.strip_suffix('Z')?;
    let main = s.split('.').next()?;
    if main.len() != 14 || !main.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| main.get(r).and_then(|x| x.parse::<i64>().ok());
    let (y, mo, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (h, mi, sec) = (n(8..10)?, n(10..12)?, n(12..14)?);
    if d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips() {
        for days in [-800_000, -719_469, -1, 0, 1, 365, 10_957, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2021-01-12T11:53:27Z"), Some(1_610_452_407));
        assert_eq!(
            parse_rfc3339("2021-01-12T12:53:27+01:00"),
            parse_rfc3339("2021-01-12T11:53:27z")
        );
        assert_eq!(
            parse_rfc3339_nanos("2026-11-25T03:09:36.216Z"),
            Some(1_795_576_176_216_000_000)
        );
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.5Z"), Some(-1));
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        for bad in [
            "",
            "2021-01-12 11:53:27Z",
            "2021-13-12T11:53:27Z",
            "2021-02-29T11:53:27Z",
            "2021-04-31T11:53:27Z",
            "2021-01-12T11:53:27",
            "2021-01-12T11:53:27.Z",
            "2021-01-12T11:53:27+1:00",
            "2021-01-12T11:53:27+24:00",
            "２021-01-12T11:53:27Z",
        ] {
            assert_eq!(parse_rfc3339_nanos(bad), None, "{bad}");
        }
        assert_eq!(format_rfc3339(1_610_452_407), "2021-01-12T11:53:27Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn generalized_time() {
        assert_eq!(
            parse_generalized_time(b"20210112115327Z"),
            Some(1_610_452_407)
        );
        assert_eq!(
            parse_generalized_time(b"20210112115327.123Z"),
            Some(1_610_452_407)
        );
        for bad in [
            &b"20210112115327"[..],
            b"2021011211532Z",
            b"20211312115327Z",
            b"\xff",
        ] {
            assert_eq!(parse_generalized_time(bad), None);
        }
    }
}
