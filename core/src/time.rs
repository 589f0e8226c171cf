//! The clock and RFC 3339, in one place. Tree heads stamp milliseconds,
//! certificates and `iat` use seconds, and lifecycle documents carry RFC 3339
//! text; every conversion between them goes through here so that the service,
//! the verifier and the auditor read and print time the same way.

use ::time::OffsetDateTime;
use ::time::format_description::well_known::Rfc3339;

/// Seconds since the Unix epoch. A clock before 1970 reads as 0 rather than
/// failing: callers compare times, and no caller can act on a clock error.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch (tree-head timestamps, backup names);
/// 0 for a clock before 1970, as [`now_secs`].
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// RFC 3339 → Unix milliseconds; `None` if it does not parse or is out of
/// `i64` range.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// RFC 3339 or plain Unix seconds → Unix seconds: what a person passes on a
/// command line (`vcon-verify --at`).
pub fn parse_secs(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Unix milliseconds → RFC 3339 (UTC). A value RFC 3339 cannot express is
/// printed as the bare number, so a report never loses the value it shows.
pub fn format_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Unix seconds → RFC 3339 (UTC); the bare number if it cannot be expressed.
pub fn format_secs(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_fallbacks() {
        assert_eq!(format_ms(1_790_000_000_123), "2026-09-21T14:13:20.123Z");
        assert_eq!(format_ms(1_790_000_000_000), "2026-09-21T14:13:20Z");
        assert_eq!(
            parse_rfc3339_ms("2026-09-21T14:13:20.123Z"),
            Some(1_790_000_000_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-09-21T16:13:20+02:00"),
            Some(1_790_000_000_000)
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(format_secs(1_790_000_000), "2026-09-21T14:13:20Z");
        assert_eq!(format_secs(i64::MAX), i64::MAX.to_string());
        assert_eq!(format_ms(i64::MAX), i64::MAX.to_string());
        assert_eq!(parse_secs("1790000000"), Some(1_790_000_000));
        assert_eq!(parse_secs("2026-09-21T14:13:20Z"), Some(1_790_000_000));
        assert_eq!(parse_secs("soon"), None);
        assert!(now_secs() > 1_700_000_000);
        assert!(now_ms() / 1000 >= now_secs() as u64 - 1);
    }
}
