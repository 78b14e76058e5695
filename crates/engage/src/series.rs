//! The buckets of time-series jobs: per-Tweet series are kept by UTC day or by hour.

/// Granularity of the per-Tweet series of time-series jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// One bucket per UTC day (`engagement.day`).
    Day,
    /// One bucket per hour (`engagement.day`, `engagement.hour`).
    Hour,
}

impl Granularity {
    /// `day` or `hour`.
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Day => "day",
            Granularity::Hour => "hour",
        }
    }
}

/// A bucket's start as Unix seconds: the day's midnight UTC, plus the hour when there is one.
pub fn bucket(day: time::Date, hour: Option<u8>) -> i64 {
    day.midnight().assume_utc().unix_timestamp() + i64::from(hour.unwrap_or(0)) * 3600
}
