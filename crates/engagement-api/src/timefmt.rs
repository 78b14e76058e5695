//! Every date and time the project prints, formatted in one place with `time`'s format descriptions,
//! so that the API's wire form, the reports, the progress line and the file names agree. Everything is
//! UTC: the local offset cannot be read soundly from a multi-threaded process, and nightly jobs on
//! servers in different zones must name the same day alike.

use std::time::SystemTime;

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Date, OffsetDateTime, UtcOffset};

/// `2026-11-20` (also how `window::parse_time` reads a date).
pub(crate) const DATE: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");
/// `2026-11-20T14:05:00Z`.
const RFC3339_Z: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
/// `14:05:09 UTC`.
const HHMMSS_UTC: &[BorrowedFormatItem<'static>] =
    format_description!("[hour]:[minute]:[second] UTC");
/// `2026-11-20 14:05 UTC`.
const DATE_HHMM_UTC: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
/// `Nov 20`.
const MONTH_DAY: &[BorrowedFormatItem<'static>] =
    format_description!("[month repr:short] [day padding:none]");
/// `Nov 20, 2026 14:00`.
const MONTH_DAY_YEAR_HHMM: &[BorrowedFormatItem<'static>] =
    format_description!("[month repr:short] [day padding:none], [year] [hour]:[minute]");

/// Formats with a description made of components every date has; only a writer's error could fail
/// it, and a `String` has none.
fn format(t: OffsetDateTime, items: &[BorrowedFormatItem<'_>]) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(items)
        .expect("every component is defined for a UTC date-time")
}

/// `2026-11-20`: report buckets by day, the `{date}` of `--out`.
pub fn date(d: Date) -> String {
    d.format(DATE).expect("a date has year, month and day")
}

/// `2026-11-20T14:05:00Z`: the form the API accepts and echoes, and the reports' hour buckets.
pub fn rfc3339_z(t: OffsetDateTime) -> String {
    format(t, RFC3339_Z)
}

/// `14:05:09 UTC`: when a wait ends or an outage began, on the progress line and in messages;
/// `?` for a time the calendar cannot hold.
pub fn hhmmss_utc(t: SystemTime) -> String {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    match OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format(t, HHMMSS_UTC),
        Err(_) => "?".into(),
    }
}

/// `2026-11-20 14:05 UTC`: when a report was generated.
pub fn date_hhmm_utc(t: OffsetDateTime) -> String {
    format(t, DATE_HHMM_UTC)
}

/// `Nov 20`: a day on a chart's axis.
pub fn month_day(d: Date) -> String {
    format(d.midnight().assume_utc(), MONTH_DAY)
}

/// `Nov 20, 2026 14:00`: the bounds of a report's window.
pub fn month_day_year_hhmm(t: OffsetDateTime) -> String {
    format(t, MONTH_DAY_YEAR_HHMM)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use time::macros::{date, datetime};

    #[test]
    fn every_form_is_zero_padded_utc() {
        let t = datetime!(2026-01-05 04:03:02 +02:00);
        assert_eq!(date(date!(2026 - 01 - 05)), "2026-01-05");
        assert_eq!(rfc3339_z(t), "2026-01-05T02:03:02Z");
        assert_eq!(date_hhmm_utc(t), "2026-01-05 02:03 UTC");
        assert_eq!(month_day(date!(2026 - 01 - 05)), "Jan 5");
        assert_eq!(month_day_year_hhmm(t), "Jan 5, 2026 02:03");
        // The offset moves the day too.
        assert_eq!(
            rfc3339_z(datetime!(2026-11-20 00:30 +01:00)),
            "2026-11-19T23:30:00Z"
        );
        assert_eq!(date(date!(0999 - 12 - 31)), "0999-12-31");
    }

    #[test]
    fn system_times_print_as_utc_clock_times() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_016_067);
        assert_eq!(hhmmss_utc(t), "02:41:07 UTC");
        assert_eq!(hhmmss_utc(SystemTime::UNIX_EPOCH), "00:00:00 UTC");
        assert_eq!(
            hhmmss_utc(SystemTime::UNIX_EPOCH - Duration::from_secs(1)),
            "23:59:59 UTC"
        );
        assert_eq!(
            hhmmss_utc(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4)),
            "?"
        );
    }
}
