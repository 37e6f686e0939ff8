//! The adaptive units of profile reports: times (`534.5ms`, `1.29s`, `983us`), byte sizes
//! (`12.30 MiB`, `12.30 MiB (12897280 bytes)`), percentages (`18.9%`) and counts (`1,234`).
//!
//! Pure string functions, no I/O. Parsers return `None` for anything they do not recognise;
//! callers decide whether that is an error.

/// Seconds from `534.5ms`, `1.29s`, `983us`, `983µs`, `120ns`, `2min`, `1h`, or a bare number
/// (taken as seconds).
pub fn parse_duration(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" | "μs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" | "mins" => 60.0,
        "h" | "hr" => 3600.0,
        _ => return None,
    };
    value.is_finite().then_some(value * scale)
}

/// The adaptive time unit the reports use: `983us`, `534.5ms`, `2.82s`, `95.3s`.
pub fn format_duration(seconds: f64) -> String {
    let abs = seconds.abs();
    if abs < 1e-3 {
        format!("{:.0}us", seconds * 1e6)
    } else if abs < 1.0 {
        format!("{:.1}ms", seconds * 1e3)
    } else if abs < 60.0 {
        format!("{seconds:.2}s")
    } else {
        format!("{seconds:.1}s")
    }
}

/// Bytes from `12.30 MiB (12897280 bytes)` (the exact figure wins), `12.30 MiB`, `512 KiB`,
/// `900 B`, `1.5 GB`, `1234`, or `+1.20 MiB` / `-300 KiB` (growth deltas).
pub fn parse_bytes(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Some(open) = text.find('(') {
        let inner = text[open + 1..].trim_end_matches(')').trim();
        if let Some(exact) = inner.strip_suffix("bytes")
            && let Some(bytes) = parse_count(exact)
        {
            return Some(if text.starts_with('-') { -bytes } else { bytes });
        }
        return parse_bytes(&text[..open]);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | ',')))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.replace(',', "").parse().ok()?;
    let scale: f64 = match unit.trim() {
        "" | "B" | "b" | "bytes" | "byte" => 1.0,
        "KiB" | "K" => 1024.0,
        "MiB" | "M" => 1024.0 * 1024.0,
        "GiB" | "G" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0f64.powi(4),
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    let bytes = value * scale;
    bytes.is_finite().then_some(bytes.round() as i64)
}

/// Binary units with two decimals: `900 B`, `1.50 KiB`, `12.30 MiB`, `1.02 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let value = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if value < KIB * KIB {
        format!("{:.2} KiB", value / KIB)
    } else if value < KIB * KIB * KIB {
        format!("{:.2} MiB", value / (KIB * KIB))
    } else {
        format!("{:.2} GiB", value / (KIB * KIB * KIB))
    }
}

/// `+1.20 MiB`, `-300.00 KiB`, `0 B`.
pub fn format_signed_bytes(bytes: i64) -> String {
    match bytes {
        0 => "0 B".to_owned(),
        b if b > 0 => format!("+{}", format_bytes(b.unsigned_abs())),
        b => format!("-{}", format_bytes(b.unsigned_abs())),
    }
}

/// `18.9` from `18.9%` (the `%` is optional).
pub fn parse_percent(text: &str) -> Option<f64> {
    let value: f64 = text.trim().trim_end_matches('%').trim().parse().ok()?;
    value.is_finite().then_some(value)
}

/// An integer that may carry `,` or `_` separators or a sign.
pub fn parse_count(text: &str) -> Option<i64> {
    let cleaned: String = text
        .trim()
        .chars()
        .filter(|c| !matches!(c, ',' | '_'))
        .collect();
    cleaned.parse().ok()
}

/// A plain number (`2.41`, `153.2`), optionally followed by a unit we ignore (`153.2 ms`).
pub fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+')))
        .unwrap_or(text.len());
    let value: f64 = text[..end].parse().ok()?;
    value.is_finite().then_some(value)
}

/// Age for deletion lines: `45s`, `12m`, `5.0h`, `3.2d`.
pub fn format_age(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{:.0}s", seconds.max(0.0))
    } else if seconds < 3600.0 {
        format!("{:.0}m", seconds / 60.0)
    } else if seconds < 86_400.0 {
        format!("{:.1}h", seconds / 3600.0)
    } else {
        format!("{:.1}d", seconds / 86_400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn durations_parse() {
        let cases = [
            ("534.5ms", Some(0.5345)),
            ("1.29s", Some(1.29)),
            ("983us", Some(0.000983)),
            ("983µs", Some(0.000983)),
            ("2.82s", Some(2.82)),
            ("0s", Some(0.0)),
            ("2min", Some(120.0)),
            ("1h", Some(3600.0)),
            (" 3 ", Some(3.0)),
            ("fast", None),
            ("12parsecs", None),
        ];
        for (text, expected) in cases {
            let got = parse_duration(text);
            match (got, expected) {
                (Some(g), Some(e)) => assert!(close(g, e), "{text}: {g} != {e}"),
                (g, e) => assert_eq!(g, e, "{text}"),
            }
        }
    }

    #[test]
    fn durations_format() {
        let cases = [
            (0.5345, "534.5ms"),
            (2.82, "2.82s"),
            (0.000983, "983us"),
            (95.31, "95.3s"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(format_duration(seconds), expected);
        }
    }

    #[test]
    fn bytes_parse() {
        let cases = [
            ("12.30 MiB (12897280 bytes)", Some(12_897_280)),
            ("12.30 MiB", Some(12_897_485)),
            ("512 KiB", Some(524_288)),
            ("900 B", Some(900)),
            ("1,234", Some(1234)),
            ("+1.00 MiB", Some(1_048_576)),
            ("-2 KiB", Some(-2048)),
            ("1.5 GB", Some(1_500_000_000)),
            ("lots", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_bytes(text), expected, "{text}");
        }
    }

    #[test]
    fn bytes_format() {
        let cases = [
            (900, "900 B"),
            (1536, "1.50 KiB"),
            (12_897_280, "12.30 MiB"),
            (1_258_291, "1.20 MiB"),
            (1_100_000_000, "1.02 GiB"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(format_bytes(bytes), expected);
        }
        assert_eq!(format_signed_bytes(-1536), "-1.50 KiB");
        assert_eq!(format_signed_bytes(0), "0 B");
    }

    #[test]
    fn percents_counts_ages() {
        assert_eq!(parse_percent("18.9%"), Some(18.9));
        assert_eq!(parse_percent("nope"), None);
        assert_eq!(parse_count("1_000"), Some(1000));
        assert_eq!(parse_number("153.2 ms"), Some(153.2));
        assert_eq!(format_age(3.2 * 86_400.0), "3.2d");
        assert_eq!(format_age(5.0 * 3600.0), "5.0h");
        assert_eq!(format_age(720.0), "12m");
    }
}
