//! Time windows: the `/historical` `start`/`end` rules and the `/28hr` window arithmetic.
//!
//! Rules (fact sheet §3, decisions in `docs/simulator.md`):
//! - accepted forms are `YYYY-MM-DD` (midnight UTC) and `YYYY-MM-DDTHH:MM:SSZ` (also without seconds);
//! - `start` rounds down and `end` rounds up to the hour;
//! - `end` may not be in the future: after the end of the current hour, since clients send it rounded up;
//! - `start` may not be before 2014-09-01; the rounded span must be positive and at most 28 days;
//! - neither given: the 28 days ending at the next hour boundary; only `start`: 28 days from it, capped at
//!   the next hour boundary; only `end`: the 28 days before it (never before 2014-09-01);
//! - `/28hr`: 29 hourly buckets `[floor(now) − 28 h, floor(now) + 1 h)`, the last one partial.

use time::macros::{datetime, format_description};
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

/// Earliest `start` the API serves.
pub const EARLIEST_START: OffsetDateTime = datetime!(2014-09-01 00:00 UTC);
/// The longest window one request may span.
pub const MAX_SPAN: Duration = Duration::days(28);

/// A window rule that a `start`/`end` pair breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// Neither `YYYY-MM-DD` nor `YYYY-MM-DDTHH:MM:SSZ`.
    #[error("{field} `{value}` is not a UTC time: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ")]
    Format {
        /// `start` or `end`.
        field: &'static str,
        /// What was given.
        value: String,
    },
    /// `start` before 2014-09-01.
    #[error("start {0} is before 2014-09-01, the earliest date the API serves")]
    TooEarly(String),
    /// `end` after the present.
    #[error("end {0} is in the future")]
    InFuture(String),
    /// Rounded span over 28 days.
    #[error("the window from {start} to {end} spans more than 28 days")]
    TooLong {
        /// Rounded start.
        start: String,
        /// Rounded end.
        end: String,
    },
    /// `start` not before `end`.
    #[error("start {start} is not before end {end}")]
    Empty {
        /// Rounded start.
        start: String,
        /// Rounded end.
        end: String,
    },
}

/// A resolved, hour-aligned window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// Inclusive start, on an hour boundary.
    pub start: OffsetDateTime,
    /// Exclusive end, on an hour boundary.
    pub end: OffsetDateTime,
}

impl Window {
    /// Number of hourly buckets.
    pub fn hours(&self) -> i64 {
        (self.end - self.start).whole_hours()
    }
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MMZ` or `YYYY-MM-DDTHH:MM:SSZ` as UTC.
pub fn parse_time(field: &'static str, value: &str) -> Result<OffsetDateTime, WindowError> {
    let err = || WindowError::Format {
        field,
        value: value.to_string(),
    };
    let v = value.trim();
    if let Ok(d) = time::Date::parse(v, crate::timefmt::DATE) {
        return in_range(d.midnight().assume_utc()).ok_or_else(err);
    }
    let body = v.strip_suffix('Z').ok_or_else(err)?;
    let full = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let short = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    PrimitiveDateTime::parse(body, full)
        .or_else(|_| PrimitiveDateTime::parse(body, short))
        .map(|t| t.assume_utc())
        .map_err(|_| err())
        .and_then(|t| in_range(t).ok_or_else(err))
}

/// Years outside 1970..=9000 serve no one and would overflow the window arithmetic near the limits of
/// the date type (found by fuzzing: `9999-12-31` plus 28 days panicked).
fn in_range(t: OffsetDateTime) -> Option<OffsetDateTime> {
    (1970..=9000).contains(&t.year()).then_some(t)
}

/// Formats as `YYYY-MM-DDTHH:MM:SSZ`, the form the API echoes ([`crate::timefmt::rfc3339_z`]).
pub fn format_time(t: OffsetDateTime) -> String {
    crate::timefmt::rfc3339_z(t)
}

/// Rounds down to the hour.
pub fn floor_hour(t: OffsetDateTime) -> OffsetDateTime {
    let secs = t.unix_timestamp();
    OffsetDateTime::from_unix_timestamp(secs - secs.rem_euclid(3600)).expect("in range")
}

/// Rounds up to the hour (an exact hour stays).
pub fn ceil_hour(t: OffsetDateTime) -> OffsetDateTime {
    let f = floor_hour(t);
    if f == t {
        f
    } else {
        f + Duration::hours(1)
    }
}

/// Resolves a `/historical` `start`/`end` pair at time `now` into the effective window.
pub fn resolve_historical(
    start: Option<OffsetDateTime>,
    end: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<Window, WindowError> {
    // Clients send the end rounded up to the hour, so an end inside the current hour is accepted.
    if let Some(e) = end {
        if e > ceil_hour(now) {
            return Err(WindowError::InFuture(format_time(e)));
        }
    }
    let (start, end) = match (start, end) {
        (Some(s), Some(e)) => (floor_hour(s), ceil_hour(e)),
        (Some(s), None) => {
            let s = floor_hour(s);
            (s, (s + MAX_SPAN).min(ceil_hour(now)))
        }
        (None, Some(e)) => {
            let e = ceil_hour(e);
            ((e - MAX_SPAN).max(EARLIEST_START), e)
        }
        (None, None) => {
            let e = ceil_hour(now);
            (e - MAX_SPAN, e)
        }
    };
    let w = checked(start, end)?;
    if end - start > MAX_SPAN {
        return Err(WindowError::TooLong {
            start: format_time(start),
            end: format_time(end),
        });
    }
    Ok(w)
}

/// The rules every window and period share: not before 2014-09-01, and not empty.
fn checked(start: OffsetDateTime, end: OffsetDateTime) -> Result<Window, WindowError> {
    if start < EARLIEST_START {
        return Err(WindowError::TooEarly(format_time(start)));
    }
    if start >= end {
        return Err(WindowError::Empty {
            start: format_time(start),
            end: format_time(end),
        });
    }
    Ok(Window { start, end })
}

/// The `/28hr` window at time `now`: 29 hourly buckets, the last one the current, partial hour.
pub fn window_28hr(now: OffsetDateTime) -> Window {
    let end = floor_hour(now) + Duration::hours(1);
    Window {
        start: end - Duration::hours(29),
        end,
    }
}

/// Resolves a period of any length for a job that fetches it window by window: `end` defaults to the
/// end of the current hour, `start` to `end` minus `days` (one window, 28 days, when not given). The same rules as one
/// request apply otherwise: not before 2014-09-01, not in the future, hour-aligned, non-empty.
pub fn resolve_period(
    start: Option<OffsetDateTime>,
    end: Option<OffsetDateTime>,
    days: Option<u32>,
    now: OffsetDateTime,
) -> Result<Window, WindowError> {
    let end = match end {
        Some(e) if e > ceil_hour(now) => return Err(WindowError::InFuture(format_time(e))),
        Some(e) => ceil_hour(e),
        None => ceil_hour(now),
    };
    let start = match start {
        Some(s) => floor_hour(s),
        // Checked: `--days 4000000000` must be "too early", not an overflow.
        None => end
            .checked_sub(days.map_or(MAX_SPAN, |d| Duration::days(i64::from(d))))
            .unwrap_or(EARLIEST_START - Duration::hours(1)),
    };
    checked(start, end)
}

/// Splits `[start, end)` into consecutive, non-overlapping windows of at most 28 days, on hour
/// boundaries (start rounded down, end rounded up). Each window's end is the next one's start, and the
/// API's buckets are half-open, so no hour is counted twice — unlike 27-day walks whose windows share a
/// boundary date.
pub fn split(start: OffsetDateTime, end: OffsetDateTime) -> Vec<Window> {
    let (mut s, end) = (floor_hour(start), ceil_hour(end));
    let mut out = Vec::new();
    while s < end {
        let e = (s + MAX_SPAN).min(end);
        out.push(Window { start: s, end: e });
        s = e;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = datetime!(2024-05-02 09:40 UTC);

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(
            parse_time("start", "2024-03-01").unwrap(),
            datetime!(2024-03-01 00:00 UTC)
        );
        assert_eq!(
            parse_time("start", "2024-03-01T12:24:10Z").unwrap(),
            datetime!(2024-03-01 12:24:10 UTC)
        );
        assert_eq!(
            parse_time("start", "2024-03-01T12:24Z").unwrap(),
            datetime!(2024-03-01 12:24 UTC)
        );
        for bad in [
            "2024-03-01T12:24:10",
            "2024-13-01",
            "yesterday",
            "2024-03-01T12:24:10+02:00",
        ] {
            assert!(parse_time("start", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn start_rounds_down_and_end_rounds_up() {
        let w = resolve_historical(
            Some(datetime!(2024-03-01 12:24 UTC)),
            Some(datetime!(2024-03-08 08:37 UTC)),
            NOW,
        )
        .unwrap();
        assert_eq!(w.start, datetime!(2024-03-01 12:00 UTC));
        assert_eq!(w.end, datetime!(2024-03-08 09:00 UTC));
        assert_eq!(format_time(w.end), "2024-03-08T09:00:00Z");
    }

    #[test]
    fn window_rules_are_enforced() {
        let too_long = resolve_historical(
            Some(datetime!(2024-03-01 00:00 UTC)),
            Some(datetime!(2024-03-29 01:00 UTC)),
            NOW,
        );
        assert!(matches!(too_long, Err(WindowError::TooLong { .. })));
        let exactly_28 = resolve_historical(
            Some(datetime!(2024-03-01 00:00 UTC)),
            Some(datetime!(2024-03-29 00:00 UTC)),
            NOW,
        );
        assert!(exactly_28.is_ok());
        let early = resolve_historical(Some(datetime!(2014-08-31 23:00 UTC)), None, NOW);
        assert!(matches!(early, Err(WindowError::TooEarly(_))));
        let future = resolve_historical(None, Some(datetime!(2024-05-02 10:01 UTC)), NOW);
        assert!(resolve_historical(None, Some(datetime!(2024-05-02 10:00 UTC)), NOW).is_ok());
        assert!(matches!(future, Err(WindowError::InFuture(_))));
        let empty = resolve_historical(
            Some(datetime!(2024-03-02 00:00 UTC)),
            Some(datetime!(2024-03-01 00:00 UTC)),
            NOW,
        );
        assert!(matches!(empty, Err(WindowError::Empty { .. })));
    }

    #[test]
    fn defaults_give_28_days() {
        let w = resolve_historical(None, None, NOW).unwrap();
        assert_eq!(w.end, datetime!(2024-05-02 10:00 UTC));
        assert_eq!(w.end - w.start, MAX_SPAN);
        let w = resolve_historical(Some(datetime!(2024-04-20 00:00 UTC)), None, NOW).unwrap();
        assert_eq!(w.end, datetime!(2024-05-02 10:00 UTC));
        let w = resolve_historical(None, Some(datetime!(2014-09-10 00:00 UTC)), NOW).unwrap();
        assert_eq!(w.start, EARLIEST_START);
    }

    #[test]
    fn split_covers_the_period_exactly_without_overlap() {
        let ws = split(
            datetime!(2024-01-01 10:30 UTC),
            datetime!(2024-03-31 00:10 UTC),
        );
        assert_eq!(ws.first().unwrap().start, datetime!(2024-01-01 10:00 UTC));
        assert_eq!(ws.last().unwrap().end, datetime!(2024-03-31 01:00 UTC));
        for w in &ws {
            assert!(w.end - w.start <= MAX_SPAN && w.start < w.end);
        }
        for pair in ws.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert_eq!(ws.len(), 4);
        assert!(split(
            datetime!(2024-05-02 09:00 UTC),
            datetime!(2024-05-02 09:00 UTC)
        )
        .is_empty());
        assert_eq!(
            split(NOW, NOW).len(),
            1,
            "rounding widens a point to its hour"
        );
    }

    #[test]
    fn periods_may_be_longer_than_a_window() {
        let p = resolve_period(None, None, Some(90), NOW).unwrap();
        assert_eq!(p.end, datetime!(2024-05-02 10:00 UTC));
        assert_eq!(p.end - p.start, Duration::days(90));
        assert!(matches!(
            resolve_period(Some(datetime!(2014-01-01 00:00 UTC)), None, None, NOW),
            Err(WindowError::TooEarly(_))
        ));
        assert!(matches!(
            resolve_period(None, Some(datetime!(2024-05-03 00:00 UTC)), None, NOW),
            Err(WindowError::InFuture(_))
        ));
        assert!(matches!(
            resolve_period(None, None, Some(u32::MAX), NOW),
            Err(WindowError::TooEarly(_))
        ));
    }

    #[test]
    fn window_28hr_matches_the_published_example() {
        let w = window_28hr(NOW);
        assert_eq!(w.start, datetime!(2024-05-01 05:00 UTC));
        assert_eq!(w.end, datetime!(2024-05-02 10:00 UTC));
        assert_eq!(w.hours(), 29);
    }
}
