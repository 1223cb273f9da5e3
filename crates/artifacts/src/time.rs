//! A tiny RFC 3339 (UTC, seconds) formatter for `org.opencontainers.image.created`.

use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DDTHH:MM:SSZ` for `t` (times before 1970 are clamped to the epoch).
pub fn format_rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format_unix(secs)
}

/// The current time, or `$SOURCE_DATE_EPOCH` when set (reproducible builds), as RFC 3339.
pub fn now_rfc3339() -> String {
    match std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    {
        Some(secs) => format_unix(secs),
        None => format_rfc3339(SystemTime::now()),
    }
}

fn format_unix(secs: u64) -> String {
    sigil_oci::time::format_rfc3339(i64::try_from(secs).unwrap_or(i64::MAX / 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_unix(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(format_unix(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(format_unix(4_102_444_800), "2100-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339(UNIX_EPOCH + Duration::from_millis(86_400_999)),
            "1970-01-02T00:00:00Z"
        );
        assert_eq!(
            format_rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
    }
}
