//! Reports: `top.json`, `top.md`, `top.csv`, `tweets.csv`, `outcomes.csv`, `rejects.csv`,
//! `report.html` and, for time series, `series.csv` and `hourly.csv`, all regenerated from the store,
//! so `engage report` after any number of resumes writes exactly what an uninterrupted run writes.
//!
//! `top.json` is a contract with downstream tools; its shape is fixed:
//! `{"endpoint", "top_n", "complete", "counts": {...}, "totals": {"<metric>": n}, "top": {"<metric>": [{"tweet_id": "<id>", "value": n}]}}`
//! with `ok + unavailable + forbidden + failed + pending == unique_ids`, a key in `top` for every
//! metric of the run, lists sorted by value descending then Tweet ID ascending, zero values left out.
//! `complete` is true when every ID has an outcome and the inputs were read to the end.
//!
//! Publication: every file of a report is written under a temporary name in the report folder,
//! flushed to disk, and renamed into place only once all of them are whole, `top.json` last. A
//! report phase killed at any point leaves each final name holding either the previous report's file
//! or the new one's, never a cut one; a new `top.json` means the files beside it are new too. The
//! temporary names are `.engage-<pid>-<file>.tmp` (the outcome pass of a run uses
//! `.tweets.csv.part` and `.outcomes.csv.part`, which a resumed life goes on with); what a killed
//! process left is removed by the next report written into the folder.
//!
//! The parts, each depending only on those above it:
//! - `files`: writing a file whole under a temporary name, publishing a report's files together,
//!   and [`ReportError`], which names the file.
//! - `summary`: the figures a report shows ([`Summary`]), the terminal's overview and `top.json`;
//!   `markdown`: `top.md`.
//! - [`html`]: `report.html`, from a [`Summary`] and an [`html::TimeSeries`], never from the store.
//! - `series`: bucket labels ([`format_bucket`]) and the time series `report.html` draws.
//! - `scan`: the outcome pass ([`Scan`]) that writes `tweets.csv` and `outcomes.csv` and fills the
//!   figures, resumable through a [`ScanCheckpoint`].
//! - this file: [`write_reports`] and [`finish_reports`], which run the pass and publish the files.

use std::path::{Path, PathBuf};

use engagement_api::{Endpoint, Metric};

use crate::series::Granularity;
use crate::store::Store;

mod files;
pub mod html;
mod markdown;
mod scan;
mod series;
mod summary;

#[cfg(test)]
mod fixture;

pub use files::ReportError;
pub use scan::{Scan, ScanCheckpoint, Withheld, SPLIT_AT, WITHHELD_REASONS};
pub use series::format_bucket;
pub use summary::{tweet_url, GroupFigures, RateFigures, Summary};

use files::{io, staging_name, sweep_stale, write_csv, write_text, Staging};

/// Writes every output into `dir` from the store and returns the summary and the files written.
/// `series` is the granularity of a time-series job's per-Tweet series (`None` for `/totals`).
///
/// The top-N heaps, the totals and the status counts are filled in the one pass over the outcomes
/// that writes `tweets.csv` and `outcomes.csv`: one scan of the store per report, however many lives
/// the run had. During a run the pass goes on in the background ([`Scan`]) over the IDs already
/// final; what is left is scanned at the end, in two halves on two threads when large.
pub fn write_reports(
    dir: &Path,
    store: &Store,
    endpoint: Endpoint,
    metrics: &[Metric],
    top_n: usize,
    series: Option<Granularity>,
) -> Result<(Summary, Vec<PathBuf>), ReportError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    sweep_stale(dir);
    // Under this process's own names: a run writing its pass into the same folder is not disturbed.
    let started = Scan::begin(
        dir,
        metrics,
        top_n,
        staging_name(dir, "tweets.csv.pass"),
        staging_name(dir, "outcomes.csv.pass"),
    )?
    .with_min_impressions(store.min_impressions()?);
    finish_reports(started, store, endpoint, series, SPLIT_AT)
}

/// Finishes a report whose pass has covered the IDs below `scan.upto()`, and publishes it.
pub fn finish_reports(
    mut scan: Scan,
    store: &Store,
    endpoint: Endpoint,
    series: Option<Granularity>,
    split_at: u64,
) -> Result<(Summary, Vec<PathBuf>), ReportError> {
    let t = std::time::Instant::now();
    let dir = scan.dir().to_path_buf();
    sweep_stale(&dir);
    let (metrics, top_n) = (scan.metrics().to_vec(), scan.top_n());
    let unique = store.unique_count()?;
    scan.scan_rest(store, split_at)?;
    tracing::debug!(elapsed = ?t.elapsed(), "report: outcomes scanned");
    let scan_min = scan.min_impressions();
    let (tweets, outcomes, mut pass) = scan.close()?;
    let pending = unique.saturating_sub(pass.status.unique());
    pass.status.pending = pending;
    let mut summary = Summary::from_aggregator(
        store,
        endpoint,
        &metrics,
        top_n,
        &pass.agg,
        pass.withheld,
        pass.status,
    )?;
    let min_impressions = scan_min;
    summary.rate = pass
        .rate
        .take()
        .map(|r| RateFigures::of(r, min_impressions));
    summary.groups = group_figures(
        store,
        &mut pass.groups,
        metrics.len(),
        top_n,
        summary.rate.is_some(),
        min_impressions,
    )?;
    if !summary.groups.is_empty() {
        summary.in_several_groups = store.shared_ids()?;
    }
    let mut staging = Staging::new(&dir);
    write_all(&mut staging, &summary, store, series, tweets, &outcomes)?;
    let written = staging.publish()?;
    if pending > 0 {
        // Replaced by the walk over every ID in `write_all`.
        let _ = std::fs::remove_file(&outcomes);
    }
    tracing::debug!(elapsed = ?t.elapsed(), "report: all written");
    Ok((summary, written))
}

/// Each group's figures, by name, from the pass's (a group none of whose IDs has an outcome yet has
/// only its pending ones).
fn group_figures(
    store: &Store,
    passes: &mut std::collections::BTreeMap<i64, scan::GroupPass>,
    metrics: usize,
    top_n: usize,
    rate: bool,
    min_impressions: u64,
) -> Result<Vec<GroupFigures>, ReportError> {
    let mut out = Vec::new();
    for row in store.groups()? {
        let g = passes
            .remove(&row.gid)
            .unwrap_or_else(|| scan::GroupPass::new(top_n, metrics, rate));
        let mut status = g.status;
        status.pending = row.ids.saturating_sub(status.unique());
        out.push(GroupFigures {
            name: row.name,
            status,
            totals: g.agg.totals().to_vec(),
            served: g.agg.served().to_vec(),
            withheld: g.withheld,
            top: (0..metrics).map(|i| g.agg.top(i)).collect(),
            median: g.hist.iter().map(|h| h.quantile(0.5)).collect(),
            p90: g.hist.iter().map(|h| h.quantile(0.9)).collect(),
            max: g.hist.iter().map(|h| h.max()).collect(),
            rate: g.rate.map(|r| RateFigures::of(r, min_impressions)),
        });
    }
    Ok(out)
}

/// Stages every output from a finished summary, in report order, with the outcome pass's files
/// (`outcomes` is written again by a walk over every ID when some are pending, to list them too).
fn write_all(
    staging: &mut Staging,
    summary: &Summary,
    store: &Store,
    series: Option<Granularity>,
    tweets: PathBuf,
    outcomes: &Path,
) -> Result<(), ReportError> {
    let mut json = serde_json::to_vec_pretty(&summary.to_json()).expect("a JSON value serializes");
    json.push(b'\n');
    write_text(staging, "top.json", &json)?;
    write_text(staging, "top.md", summary.to_markdown().as_bytes())?;

    write_csv(
        staging,
        "top.csv",
        &["metric", "rank", "tweet_id", "value", "url"],
        |row| {
            for (m, top) in summary.metrics.iter().zip(&summary.top) {
                for (rank, (id, v)) in top.iter().enumerate() {
                    let url = tweet_url(*id);
                    row(&[
                        m.as_str(),
                        &(rank + 1).to_string(),
                        &id.to_string(),
                        &v.to_string(),
                        &url,
                    ]);
                }
            }
            Ok(())
        },
    )?;

    if !summary.groups.is_empty() {
        write_csv(
            staging,
            "groups.csv",
            &[
                "group", "metric", "tweets", "total", "mean", "median", "p90", "max",
            ],
            |row| {
                let opt = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
                for g in &summary.groups {
                    for (i, m) in summary.metrics.iter().enumerate() {
                        row(&[
                            &g.name,
                            m.as_str(),
                            &g.served[i].to_string(),
                            &g.totals[i].to_string(),
                            &g.mean(i).map_or(String::new(), |x| format!("{x:.2}")),
                            &opt(g.median[i]),
                            &opt(g.p90[i]),
                            &opt((g.served[i] > 0).then_some(g.max[i])),
                        ]);
                    }
                }
                Ok(())
            },
        )?;
    }

    staging.adopt(tweets, "tweets.csv");
    if summary.status.pending > 0 {
        write_csv(
            staging,
            "outcomes.csv",
            &["tweet_id", "outcome", "note"],
            |row| {
                store.for_each_not_ok(|id, status, note| {
                    row(&[&id.to_string(), status.as_str(), note.unwrap_or("")])
                })
            },
        )?;
    } else {
        staging.adopt(outcomes.to_path_buf(), "outcomes.csv");
    }

    write_csv(
        staging,
        "rejects.csv",
        &["source", "line", "content", "reason"],
        |row| {
            store.for_each_reject(|r| row(&[&r.source, &r.line.to_string(), &r.content, &r.reason]))
        },
    )?;

    let ts = match series {
        Some(g) => Some(series::time_series(summary, store, g)?),
        None => None,
    };
    let html = html::render(summary, ts.as_ref(), time::OffsetDateTime::now_utc());
    write_text(staging, "report.html", html.as_bytes())?;

    if let Some(g) = series {
        write_csv(
            staging,
            "series.csv",
            &["tweet_id", "metric", "bucket", "value"],
            |row| {
                store.for_each_series(|id, m, bucket, v| {
                    row(&[
                        &id.to_string(),
                        m,
                        &format_bucket(bucket, g),
                        &v.to_string(),
                    ])
                })
            },
        )?;

        let hourly = store.hourly_totals()?;
        write_csv(staging, "hourly.csv", &["metric", "hour", "value"], |row| {
            for (m, hour, v) in &hourly {
                row(&[m, &format_bucket(*hour, Granularity::Hour), &v.to_string()]);
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::report::fixture::store_with;
    use crate::store::IngestCounts;

    #[test]
    fn every_report_says_whether_it_is_complete_and_the_counts_add_up() {
        let metrics = [Metric::Favorites, Metric::Retweets];
        for (pending, ingest_done) in [(false, true), (true, true), (false, false)] {
            let d = tempfile::tempdir().unwrap();
            let ingest = ingest_done.then(IngestCounts::default);
            let s = store_with(d.path(), 500, pending, ingest, &["bearer"], false);
            let out = d.path().join("out");
            write_reports(&out, &s, Endpoint::Totals, &metrics, 10, None).unwrap();
            let complete = !pending && ingest_done;
            let case = format!("pending {pending}, ingest done {ingest_done}");
            let json: Value =
                serde_json::from_slice(&std::fs::read(out.join("top.json")).unwrap()).unwrap();
            assert_eq!(json["complete"], complete, "{case}: {json}");
            let n = &json["counts"];
            assert_eq!(n["pending"], if pending { 50 } else { 0 }, "{case}: {n}");
            let sum: u64 = ["ok", "unavailable", "forbidden", "failed", "pending"]
                .iter()
                .map(|k| n[k].as_u64().unwrap_or(u64::MAX / 8))
                .sum();
            assert_eq!(sum, 500, "{case}: {n}");
            assert_eq!(n["unique_ids"], 500, "{case}: {n}");
            let md = std::fs::read_to_string(out.join("top.md")).unwrap();
            assert_eq!(md.contains("Partial report"), !complete, "{case}:\n{md}");
            let html = std::fs::read_to_string(out.join("report.html")).unwrap();
            assert_eq!(html.contains(">partial<"), !complete, "{case}");
        }
    }
}
