//! RFC 3339 timestamps (any offset in, UTC `Z` out), Unix seconds, and durations like `24h`/`30d`.

use sigil_oci::time::civil_from_days;
pub use sigil_oci::time::{format_rfc3339, parse_rfc3339};

/// Formats Unix seconds as notation prints times (`Tue, 27 Jun 2023 06:10:00 +0000`).
pub fn format_rfc1123(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let s = t.rem_euclid(86_400);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1).clamp(0, 11) as usize];
    format!(
        "{wd}, {d:02} {mon} {y:04} {:02}:{:02}:{:02} +0000",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The current time in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Parses a duration like `90s`, `30m`, `24h`, `7d` (also combined: `1d12h`) to seconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let mut total = 0i64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    (num.is_empty() && total > 0).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        assert_eq!(
            parse_rfc3339("2023-06-27T13:30:33+08:00"),
            parse_rfc3339("2023-06-27T05:30:33Z")
        );
        assert_eq!(
            format_rfc3339(parse_rfc3339("2023-06-27T05:30:33Z").unwrap_or(0)),
            "2023-06-27T05:30:33Z"
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2023-06-27 05:30:33Z"), None);
        assert_eq!(
            format_rfc1123(1_687_846_200),
            "Tue, 27 Jun 2023 06:10:00 +0000"
        );
        assert_eq!(parse_duration("1d12h"), Some(129_600));
        assert_eq!(parse_duration("12"), None);
    }
}
