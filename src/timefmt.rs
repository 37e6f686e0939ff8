//! Wall-clock helpers: Unix seconds and ISO-8601 UTC formatting without a date crate.
//!
//! Pure functions of their inputs except `unix_now`/`now_iso8601`, which read the system clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch; a clock before 1970 reads as 0.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis()
}

/// `2026-11-25T19:48:10.123Z` for the current time.
pub fn now_iso8601() -> String {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    iso8601_millis(since_epoch.as_secs() as i64, since_epoch.subsec_millis())
}

/// `2026-11-25T19:48:10.000Z` for whole Unix seconds.
pub fn iso8601(unix_seconds: i64) -> String {
    iso8601_millis(unix_seconds, 0)
}

/// `20261125_194810` (UTC), the archive folder and file-name timestamp.
pub fn compact_timestamp(unix_seconds: i64) -> String {
    let (year, month, day, hour, minute, second) = civil(unix_seconds);
    format!("{year:04}{month:02}{day:02}_{hour:02}{minute:02}{second:02}")
}

pub fn iso8601_millis(unix_seconds: i64, millis: u32) -> String {
    let mut text = Vec::with_capacity(24);
    push_iso8601_millis(&mut text, unix_seconds, millis);
    // Only ASCII digits and separators were written.
    String::from_utf8(text).unwrap_or_default()
}

/// Appends `2026-11-25T19:48:10.123Z` to `out`. Digits are written by hand: this runs twice
/// per `/tokens/validate` and once per problem response, and `format!` cost several times more.
pub fn push_iso8601_millis(out: &mut Vec<u8>, unix_seconds: i64, millis: u32) {
    let (year, month, day, hour, minute, second) = civil(unix_seconds);
    let fields = [
        (year.clamp(0, 9999) as u32, 4, b'-'),
        (month, 2, b'-'),
        (day, 2, b'T'),
        (hour, 2, b':'),
        (minute, 2, b':'),
        (second, 2, b'.'),
        (millis.min(999), 3, b'Z'),
    ];
    for (value, width, separator) in fields {
        push_digits(out, value, width);
        out.push(separator);
    }
}

/// The last `width` decimal digits of `value`, zero-padded.
fn push_digits(out: &mut Vec<u8>, value: u32, width: u32) {
    let mut divisor = 10u32.pow(width - 1);
    while divisor > 0 {
        out.push(b'0' + (value / divisor % 10) as u8);
        divisor /= 10;
    }
}

/// Splits Unix seconds into UTC (year, month, day, hour, minute, second), using Howard
/// Hinnant's days-from-civil inverse so every date from 1970 to 9999 is exact.
fn civil(unix_seconds: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = unix_seconds.div_euclid(86_400);
    let second_of_day = unix_seconds.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400, "2000-02-29T00:00:00.000Z"),
            (1_700_000_000, "2023-11-14T22:13:20.000Z"),
            (4_102_444_799, "2099-12-31T23:59:59.000Z"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(iso8601(seconds), expected, "for {seconds}");
        }
        assert_eq!(compact_timestamp(1_700_000_000), "20231114_221320");
        assert_eq!(
            iso8601_millis(253_402_300_799, 7),
            "9999-12-31T23:59:59.007Z"
        );
    }
}
