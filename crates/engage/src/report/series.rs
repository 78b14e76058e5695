//! Time series as the reports show them: bucket labels, and the hourly curves `report.html` draws.

use super::html::TimeSeries;
use super::summary::Summary;
use crate::series::Granularity;
use crate::store::{Store, StoreError};

/// The curves of `report.html`: hourly sums over all Tweets, and the top Tweets' own series.
pub(super) fn time_series(
    summary: &Summary,
    store: &Store,
    g: Granularity,
) -> Result<TimeSeries, StoreError> {
    let rows = store.hourly_totals()?;
    let (Some(first), Some(last)) = (
        rows.iter().map(|r| r.1).min(),
        rows.iter().map(|r| r.1).max(),
    ) else {
        return Ok(TimeSeries {
            hours: Vec::new(),
            totals: Vec::new(),
            top: Vec::new(),
            top_by_day: g == Granularity::Day,
        });
    };
    let n = ((last - first) / 3600 + 1) as usize;
    let index = |t: i64| (((t - first).max(0) / 3600) as usize).min(n - 1);
    let hours = (0..n as i64)
        .map(|i| {
            time::OffsetDateTime::from_unix_timestamp(first + i * 3600)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        })
        .collect();
    let mut totals = vec![vec![0u64; n]; summary.metrics.len()];
    for (m, hour, v) in rows {
        if let Some(k) = summary.metrics.iter().position(|x| x.as_str() == m) {
            totals[k][index(hour)] += v;
        }
    }
    let mut top = Vec::with_capacity(summary.metrics.len());
    for (k, m) in summary.metrics.iter().enumerate() {
        let mut curves = Vec::new();
        for (id, _) in summary.top.get(k).map(Vec::as_slice).unwrap_or(&[]) {
            let mut values = vec![0u64; n];
            for (bucket, v) in store.series_of(*id, *m)? {
                values[index(bucket)] += v;
            }
            curves.push((*id, values));
        }
        top.push(curves);
    }
    Ok(TimeSeries {
        hours,
        totals,
        top,
        top_by_day: g == Granularity::Day,
    })
}

/// A bucket start as the reports show it: `YYYY-MM-DD` for days, `YYYY-MM-DDTHH:00:00Z` for hours.
pub fn format_bucket(unix: i64, granularity: Granularity) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    match granularity {
        Granularity::Day => engagement_api::timefmt::date(t.date()),
        Granularity::Hour => engagement_api::window::format_time(t),
    }
}
