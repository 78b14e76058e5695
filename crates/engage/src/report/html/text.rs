//! Text for `report.html`: escaping, numbers and times as the page shows them, and the `w!` macro
//! every part of the page writes with.

use engagement_api::timefmt;
use std::fmt;

use time::{Date, OffsetDateTime, UtcOffset};

/// Writes formatted text into a `String`.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        // Writing into a String cannot fail; the Result only exists for other writers.
        let _ = write!($out, $($arg)*);
    }};
}
pub(super) use w;

/// Escapes text for HTML content and quoted attribute values.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1234567` → `1,234,567`.
pub(super) fn num(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A share as a percentage with one decimal; tiny non-zero shares do not show as `0.0%`.
pub(super) fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".into();
    }
    let p = part as f64 * 100.0 / whole as f64;
    if part > 0 && p < 0.1 {
        "<0.1%".into()
    } else {
        format!("{p:.1}%")
    }
}

/// A coordinate with at most one decimal and no trailing `.0`: coordinates are most of the bytes.
pub(super) struct F(pub(super) f64);

impl fmt::Display for F {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tenths = (self.0 * 10.0).round() as i64;
        if tenths < 0 {
            f.write_str("-")?;
            tenths = -tenths;
        }
        if tenths % 10 == 0 {
            write!(f, "{}", tenths / 10)
        } else {
            write!(f, "{}.{}", tenths / 10, tenths % 10)
        }
    }
}

pub(super) fn utc(t: OffsetDateTime) -> OffsetDateTime {
    t.to_offset(UtcOffset::UTC)
}

/// `Nov 20`.
pub(super) fn day_label(d: Date) -> String {
    timefmt::month_day(d)
}

/// `Nov 20, 2026 14:00`.
pub(super) fn hour_label(t: OffsetDateTime) -> String {
    timefmt::month_day_year_hhmm(utc(t))
}

/// `2026-11-20 14:05 UTC`.
pub(super) fn stamp(t: OffsetDateTime) -> String {
    timefmt::date_hhmm_utc(utc(t))
}

/// `2026-11-20T14:05:00Z`, for `<time datetime>`.
pub(super) fn machine_time(t: OffsetDateTime) -> String {
    timefmt::rfc3339_z(utc(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_the_five_characters() {
        assert_eq!(
            escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain_metric"), "plain_metric");
    }

    #[test]
    fn numbers_have_thousands_separators() {
        assert_eq!(num(0), "0");
        assert_eq!(num(999), "999");
        assert_eq!(num(1000), "1,000");
        assert_eq!(num(1_234_567), "1,234,567");
        assert_eq!(num(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(pct(1, 3), "33.3%");
        assert_eq!(pct(1, 1_000_000), "<0.1%");
        assert_eq!(pct(0, 0), "0%");
        assert_eq!(F(12.0).to_string(), "12");
        assert_eq!(F(-0.25).to_string(), "-0.3");
        assert_eq!(F(2.44).to_string(), "2.4");
    }
}
