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
            groups: Vec::new(),
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
    // Each group's curve: the sum of its Tweets' series (by day when the series are kept by day).
    let mut groups = Vec::new();
    if !summary.groups.is_empty() {
        let rows = store.groups()?;
        let at: std::collections::HashMap<i64, usize> = rows
            .iter()
            .filter_map(|r| {
                let k = summary.groups.iter().position(|g| g.name == r.name)?;
                Some((r.gid, k))
            })
            .collect();
        let mut curves = vec![vec![vec![0u64; n]; summary.metrics.len()]; summary.groups.len()];
        let mut last: (String, Option<usize>) = (String::new(), None);
        store.for_each_group_series(|gids, m, bucket, v| {
            if last.0 != m {
                last = (
                    m.to_string(),
                    summary.metrics.iter().position(|x| x.as_str() == m),
                );
            }
            let Some(k) = last.1 else { return };
            let h = index(bucket);
            for gid in gids {
                if let Some(&g) = at.get(gid) {
                    curves[g][k][h] = curves[g][k][h].saturating_add(v);
                }
            }
        })?;
        groups = summary
            .groups
            .iter()
            .map(|g| g.name.clone())
            .zip(curves)
            .collect();
    }
    Ok(TimeSeries {
        hours,
        totals,
        top,
        top_by_day: g == Granularity::Day,
        groups,
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

#[cfg(test)]
mod tests {
    use engagement_api::{Endpoint, Metric};

    use super::*;
    use crate::outcome::{IdOutcome, NotServed, Settled, Status};
    use crate::report::write_reports;
    use crate::store::IngestCounts;

    /// Each group's curve is the sum of its own Tweets' series, hour by hour, a Tweet in two
    /// groups adding to both; Tweets in no group and Tweets that did not end `ok` add to none.
    #[test]
    fn a_group_curve_sums_its_tweets_series() {
        let d = tempfile::tempdir().unwrap();
        let metrics = [Metric::Favorites, Metric::Retweets];
        let mut s = Store::open(&d.path().join("run.db")).unwrap();
        let tx = s.ingest_tx().unwrap();
        tx.insert_ids(&(1..=6).map(|id| (id, None)).collect::<Vec<_>>())
            .unwrap();
        let gids = tx
            .insert_groups(&["b".to_string(), "a".to_string()])
            .unwrap();
        // a: 1, 2, 3; b: 3, 4; 5 in none; 6 in a but unavailable.
        let members = [(1, 1), (2, 1), (3, 0), (3, 1), (4, 0), (6, 1)];
        tx.insert_memberships(&members, &gids).unwrap();
        tx.set_group_counts(&gids, &[2, 4], 1).unwrap();
        tx.commit(Some(IngestCounts::default())).unwrap();
        let t0 = 1_790_000_000 / 3600 * 3600;
        let ok = |id: u64| IdOutcome {
            id,
            status: Status::Ok,
            values: vec![Some(id * 3), Some(id)],
            note: None,
            // Favorites in hours 0 and 2, retweets in hour 1.
            series: vec![(0, t0, id), (0, t0 + 7200, id * 2), (1, t0 + 3600, id)],
            not_served: NotServed::NONE,
        };
        let mut outcomes: Vec<IdOutcome> = (1..=5).map(ok).collect();
        outcomes.push(IdOutcome::final_status(6, Status::Unavailable, "deleted"));
        let hourly = vec![(0, t0, 15), (0, t0 + 7200, 30), (1, t0 + 3600, 15)];
        s.record(
            &metrics,
            &[Settled {
                window: 0,
                windows: 1,
                outcomes,
                hourly,
                via: Some("demo".into()),
                origin: 1,
                messages: Vec::new(),
            }],
            None,
        )
        .unwrap();
        let (summary, _) = write_reports(
            &d.path().join("out"),
            &s,
            Endpoint::Hr28,
            &metrics,
            5,
            Some(Granularity::Hour),
        )
        .unwrap();
        let t = time_series(&summary, &s, Granularity::Hour).unwrap();
        assert_eq!(t.hours.len(), 3);
        let names: Vec<&str> = t.groups.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        // a = 1 + 2 + 3, b = 3 + 4.
        assert_eq!(t.groups[0].1, vec![vec![6, 0, 12], vec![0, 6, 0]]);
        assert_eq!(t.groups[1].1, vec![vec![7, 0, 14], vec![0, 7, 0]]);
        let html = std::fs::read_to_string(d.path().join("out/report.html")).unwrap();
        assert_eq!(html.matches("data-kind=\"group-curves\"").count(), 2);
    }
}
