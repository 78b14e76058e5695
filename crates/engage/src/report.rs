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

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use engagement_api::digits::push_u64;
use engagement_api::{Endpoint, Metric};
use serde_json::{json, Map, Value};

use crate::outcome::Status;
use crate::series::Granularity;
use crate::store::{IngestCounts, RejectRow, StatusCounts, Store, StoreError};
use crate::topn::Aggregator;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing CSV failed.
    #[error("writing {path}: {source}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The CSV error.
        #[source]
        source: csv::Error,
    },
}

impl ReportError {
    /// The documented exit code this error ends a command with: a report that cannot be written is
    /// the machine's doing (a full disk, a read-only `--out`), the store's errors map as the store's.
    pub fn exit_code(&self) -> u8 {
        match self {
            ReportError::Io { .. } | ReportError::Csv { .. } => crate::exit::ENVIRONMENT,
            ReportError::Store(e) => e.exit_code(),
        }
    }
}

/// Everything a report shows.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// N.
    pub top_n: usize,
    /// The run's metrics, in order.
    pub metrics: Vec<Metric>,
    /// Line counters.
    pub ingest: IngestCounts,
    /// Outcome counters.
    pub status: StatusCounts,
    /// Grand totals per metric (run order).
    pub totals: Vec<u64>,
    /// Top-N per metric (run order): (tweet id, value).
    pub top: Vec<Vec<(u64, u64)>>,
    /// Owner accounts whose user context was used for an answered request (contracts bill per
    /// unique owner account and month).
    pub accounts_used: Vec<String>,
    /// Inputs not read to their end (a truncated or corrupt gzip stream): the reject standing for
    /// each, which names the input and the last line read. A run with any "finished with problems".
    pub damaged_inputs: Vec<RejectRow>,
    /// The inputs were read to the end (the line counters are known).
    pub ingest_done: bool,
}

impl Summary {
    /// Builds the summary from the store: the aggregator is filled from the `ok` rows, once.
    pub fn from_store(
        store: &Store,
        endpoint: Endpoint,
        metrics: &[Metric],
        top_n: usize,
    ) -> Result<Summary, StoreError> {
        let mut agg = Aggregator::new(top_n, metrics.len());
        let mut row = vec![0u64; metrics.len()];
        store.for_each_ok(metrics, |id, values| {
            for (r, v) in row.iter_mut().zip(values) {
                *r = v.unwrap_or(0);
            }
            agg.add(id, &row);
        })?;
        Summary::from_aggregator(
            store,
            endpoint,
            metrics,
            top_n,
            &agg,
            store.status_counts()?,
        )
    }

    /// Builds the summary from an aggregator that already holds every `ok` row.
    pub fn from_aggregator(
        store: &Store,
        endpoint: Endpoint,
        metrics: &[Metric],
        top_n: usize,
        agg: &Aggregator,
        status: StatusCounts,
    ) -> Result<Summary, StoreError> {
        let (ingest_done, ingest) = store.ingest_state()?;
        Ok(Summary {
            endpoint,
            top_n,
            metrics: metrics.to_vec(),
            ingest,
            status,
            totals: agg.totals().to_vec(),
            top: (0..metrics.len()).map(|i| agg.top(i)).collect(),
            accounts_used: store.accounts_used()?,
            damaged_inputs: store.damaged_inputs()?,
            ingest_done,
        })
    }

    /// Every ID has an outcome and the inputs were read to the end: the report is final.
    pub fn complete(&self) -> bool {
        self.ingest_done && self.status.pending == 0
    }

    /// What is missing from a partial report (`None` when complete), as a phrase.
    pub fn unfinished(&self) -> Option<String> {
        let mut what = Vec::new();
        if self.status.pending > 0 {
            what.push(format!(
                "{} of {} IDs are still pending",
                self.status.pending,
                self.status.unique()
            ));
        }
        if !self.ingest_done {
            what.push("the inputs have not been read to the end".to_string());
        }
        (!what.is_empty()).then(|| what.join(" and "))
    }

    /// The counts as one sentence.
    fn counts_sentence(&self) -> String {
        let c = &self.status;
        format!(
            "{} unique IDs from {} input lines ({} rejected, {} duplicates): {} ok, {} unavailable, {} forbidden, {} failed{}.",
            c.unique(),
            self.ingest.input_lines,
            self.ingest.rejected_lines,
            self.ingest.duplicate_ids,
            c.ok,
            c.unavailable,
            c.forbidden,
            c.failed,
            if c.pending > 0 { format!(", {} still pending", c.pending) } else { String::new() }
        )
    }

    /// A few lines for the terminal: the counts, and per metric its total and best Tweet. Its length
    /// does not grow with N (the tables are in the files).
    pub fn overview(&self) -> String {
        let mut s = format!(
            "Top {} per metric — /{}{}\n{}\n",
            self.top_n,
            self.endpoint,
            if self.complete() {
                ""
            } else {
                " (partial report)"
            },
            self.counts_sentence()
        );
        let width = self
            .metrics
            .iter()
            .map(|m| m.as_str().len())
            .chain(["metric".len()])
            .max()
            .unwrap_or(0);
        s.push_str(&format!(
            "\n{:width$}  {:>15}  best Tweet\n",
            "metric", "total"
        ));
        for (i, m) in self.metrics.iter().enumerate() {
            let best = match self.top[i].first() {
                Some((id, v)) => format!("{id} ({v})"),
                None => "-".to_string(),
            };
            s.push_str(&format!(
                "{:width$}  {:>15}  {best}\n",
                m.as_str(),
                self.totals[i]
            ));
        }
        s
    }

    /// The `top.json` value.
    pub fn to_json(&self) -> Value {
        let mut totals = Map::new();
        let mut top = Map::new();
        for (i, m) in self.metrics.iter().enumerate() {
            totals.insert(m.as_str().into(), json!(self.totals[i]));
            top.insert(
                m.as_str().into(),
                Value::Array(
                    self.top[i]
                        .iter()
                        .map(|(id, v)| json!({"tweet_id": id.to_string(), "value": v}))
                        .collect(),
                ),
            );
        }
        json!({
            "endpoint": self.endpoint.as_str(),
            "top_n": self.top_n,
            "complete": self.complete(),
            "counts": {
                "input_lines": self.ingest.input_lines,
                "rejected_lines": self.ingest.rejected_lines,
                "duplicate_ids": self.ingest.duplicate_ids,
                "unique_ids": self.status.unique(),
                "ok": self.status.ok,
                "unavailable": self.status.unavailable,
                "forbidden": self.status.forbidden,
                "failed": self.status.failed,
                "pending": self.status.pending,
                "damaged_inputs": self.damaged_inputs.len(),
            },
            "totals": totals,
            "top": top,
        })
    }

    /// The Markdown report (also what the terminal shows).
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "# Top {} per metric — /{}\n\n",
            self.top_n, self.endpoint
        ));
        if let Some(what) = self.unfinished() {
            s.push_str(&format!(
                "**Partial report:** the run is not finished: {what}. The numbers cover the IDs \
                 fetched so far.\n\n"
            ));
        }
        s.push_str(&self.counts_sentence());
        s.push_str("\n\n");
        for d in &self.damaged_inputs {
            s.push_str(&format!(
                "**Not read to its end:** `{}`: {}; the rest of it was not read.\n\n",
                d.source, d.reason
            ));
        }
        if !self.accounts_used.is_empty() {
            let n = self.accounts_used.len();
            s.push_str(&format!(
                "{n} owner account{} used ({}).\n\n",
                if n == 1 { "" } else { "s" },
                self.accounts_used.join(", ")
            ));
        }
        s.push_str("## Totals\n\n| metric | total |\n|---|---:|\n");
        for (i, m) in self.metrics.iter().enumerate() {
            s.push_str(&format!("| {} | {} |\n", m, self.totals[i]));
        }
        for (i, m) in self.metrics.iter().enumerate() {
            s.push_str(&format!("\n## {m}\n\n"));
            if self.top[i].is_empty() {
                s.push_str("No Tweet has a non-zero value.\n");
                continue;
            }
            s.push_str("| rank | tweet | value |\n|---:|---|---:|\n");
            for (rank, (id, v)) in self.top[i].iter().enumerate() {
                s.push_str(&format!(
                    "| {} | [{id}](https://x.com/i/web/status/{id}) | {v} |\n",
                    rank + 1
                ));
            }
        }
        s
    }
}

fn create(path: &Path) -> Result<BufWriter<File>, ReportError> {
    let f = crate::fsutil::create_report(path).map_err(io(path))?;
    Ok(BufWriter::new(f))
}

/// Flushes a file written in one go and makes it durable, so that once renamed its final name
/// cannot be found short after a crash of the machine.
fn finish(w: BufWriter<File>, path: &Path) -> Result<(), ReportError> {
    crate::failpoint::hit("report-write");
    let f = w.into_inner().map_err(|e| io(path)(e.into_error()))?;
    f.sync_all().map_err(io(path))
}

/// Starts the temporary names of this process's report files (see the module notes).
const STAGING_PREFIX: &str = ".engage-";

/// The temporary name of report file `name` written by this process.
fn staging_name(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{STAGING_PREFIX}{}-{name}.tmp", std::process::id()))
}

/// Removes the temporary files that report writers killed in `dir` left behind: those named for a
/// process that no longer exists. Only where `/proc` tells (Linux); elsewhere they stay, hidden.
fn sweep_stale(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let me = std::process::id();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name
            .to_str()
            .filter(|n| n.ends_with(".tmp"))
            .and_then(|n| n.strip_prefix(STAGING_PREFIX))
        else {
            continue;
        };
        let Some(pid) = rest
            .split_once('-')
            .and_then(|(p, _)| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != me && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The files of one report, each written whole under a temporary name in the report folder and
/// renamed into place together by [`Staging::publish`]. Dropped unpublished (an error on the way),
/// it removes the temporary files it created.
struct Staging {
    dir: PathBuf,
    /// (temporary name, final name, created here) in the order the report lists them.
    files: Vec<(PathBuf, PathBuf, bool)>,
}

impl Staging {
    fn new(dir: &Path) -> Staging {
        Staging {
            dir: dir.to_path_buf(),
            files: Vec::new(),
        }
    }

    /// A new temporary file for the report file `name`.
    fn create(&mut self, name: &str) -> Result<(PathBuf, BufWriter<File>), ReportError> {
        let tmp = staging_name(&self.dir, name);
        let w = create(&tmp)?;
        self.files.push((tmp.clone(), self.dir.join(name), true));
        Ok((tmp, w))
    }

    /// A file written elsewhere (the outcome pass's), whole and durable, for the report file `name`.
    fn adopt(&mut self, tmp: PathBuf, name: &str) {
        self.files.push((tmp, self.dir.join(name), false));
    }

    /// Renames every file into place, `top.json` last, then makes the renames durable. Returns the
    /// final names in report order.
    fn publish(mut self) -> Result<Vec<PathBuf>, ReportError> {
        let files = std::mem::take(&mut self.files);
        let mut order: Vec<usize> = (0..files.len()).collect();
        // Stable: the others keep their order.
        order.sort_by_key(|&i| files[i].1.file_name() == Some("top.json".as_ref()));
        for (k, &i) in order.iter().enumerate() {
            let (tmp, to, _) = &files[i];
            crate::failpoint::hit("report-publish");
            if let Err(e) = std::fs::rename(tmp, to) {
                for &j in &order[k..] {
                    if files[j].2 {
                        let _ = std::fs::remove_file(&files[j].0);
                    }
                }
                return Err(io(to)(e));
            }
        }
        crate::fsutil::sync_dir(&self.dir).map_err(io(&self.dir))?;
        Ok(files.into_iter().map(|(_, to, _)| to).collect())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        for (tmp, _, created) in &self.files {
            if *created {
                let _ = std::fs::remove_file(tmp);
            }
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn csv_err(path: &Path) -> impl Fn(csv::Error) -> ReportError + '_ {
    move |source| ReportError::Csv {
        path: path.to_path_buf(),
        source,
    }
}

/// The curves of `report.html`: hourly sums over all Tweets, and the top Tweets' own series.
fn time_series(
    summary: &Summary,
    store: &Store,
    g: Granularity,
) -> Result<crate::html::TimeSeries, StoreError> {
    let rows = store.hourly_totals()?;
    let (Some(first), Some(last)) = (
        rows.iter().map(|r| r.1).min(),
        rows.iter().map(|r| r.1).max(),
    ) else {
        return Ok(crate::html::TimeSeries {
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
    Ok(crate::html::TimeSeries {
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
        Granularity::Day => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Granularity::Hour => engagement_api::window::format_time(t),
    }
}

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
    )?;
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
    let dir = scan.dir.clone();
    sweep_stale(&dir);
    let (metrics, top_n) = (scan.metrics.clone(), scan.top_n);
    let unique = store.unique_count()?;
    let left = store.unique_count_from(scan.upto)?;
    match store.midpoint_from(scan.upto, left)? {
        Some(mid) if left >= split_at => {
            let db = store.path().to_path_buf();
            let mut second = Scan::start_part(&dir, &metrics, top_n, mid)?;
            let (first, other) = std::thread::scope(|s| {
                let other = s.spawn(|| {
                    let store = Store::open_cursor(&db)?;
                    second.advance(&store, None)?;
                    Ok::<_, ReportError>(second)
                });
                (scan.advance(store, Some(mid)), other.join())
            });
            first?;
            let second =
                other.map_err(|_| io(&dir)(std::io::Error::other("report thread panicked")))??;
            scan.append(second)?;
        }
        _ => scan.advance(store, None)?,
    }
    tracing::debug!(elapsed = ?t.elapsed(), "report: outcomes scanned");
    let (tweets, outcomes, mut pass) = scan.close()?;
    let pending = unique.saturating_sub(pass.status.unique());
    pass.status.pending = pending;
    let summary =
        Summary::from_aggregator(store, endpoint, &metrics, top_n, &pass.agg, pass.status)?;
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

/// Outcomes from which the last part of a pass is scanned in two halves (below, one thread is faster).
pub const SPLIT_AT: u64 = 100_000;

/// What one scan of outcomes found.
struct Pass {
    agg: Aggregator,
    status: StatusCounts,
}

impl Pass {
    fn merge(&mut self, other: &Pass) {
        self.agg.merge(&other.agg);
        self.status.ok += other.status.ok;
        self.status.unavailable += other.status.unavailable;
        self.status.forbidden += other.status.forbidden;
        self.status.failed += other.status.failed;
    }
}

/// A [`Scan`] saved in the store, so that a resumed run goes on with it instead of rescanning
/// what an earlier life already wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanCheckpoint {
    /// The report folder.
    pub dir: String,
    /// The run's metrics.
    pub metrics: Vec<String>,
    /// N.
    pub top_n: usize,
    /// Outcomes below this ID are in the files.
    pub upto: u64,
    /// Bytes of the `tweets.csv` part that hold them.
    pub tweets_len: u64,
    /// Bytes of the `outcomes.csv` part that hold them.
    pub outcomes_len: u64,
    /// ok, unavailable, forbidden, failed.
    pub counts: [u64; 4],
    /// Per metric.
    pub totals: Vec<u64>,
    /// `ok` Tweets added.
    pub tweets: u64,
    /// Per metric, best first.
    pub tops: Vec<Vec<(u64, u64)>>,
}

/// A pass over the outcomes in ID order, written as it goes into `tweets.csv` and `outcomes.csv`
/// under temporary names, renamed when complete (a report left by an earlier run stays whole until
/// then). Rows are final below the store's resume watermark, so a run can scan them while it fetches
/// the rest.
pub struct Scan {
    dir: PathBuf,
    metrics: Vec<Metric>,
    top_n: usize,
    pass: Pass,
    /// Next ID to scan from.
    upto: u64,
    tweets: (PathBuf, BufWriter<File>),
    outcomes: (PathBuf, csv::Writer<BufWriter<File>>),
}

impl Scan {
    /// A pass from the first ID, with the files' headers written, into the part files a resumed
    /// life goes on with ([`Scan::resume`]).
    pub fn start(dir: &Path, metrics: &[Metric], top_n: usize) -> Result<Scan, ReportError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        Scan::begin(
            dir,
            metrics,
            top_n,
            dir.join(PART_TWEETS),
            dir.join(PART_OUTCOMES),
        )
    }

    /// A pass from the first ID into the files `tweets` and `outcomes`, with their headers written.
    fn begin(
        dir: &Path,
        metrics: &[Metric],
        top_n: usize,
        tweets: PathBuf,
        outcomes: PathBuf,
    ) -> Result<Scan, ReportError> {
        let mut p = Scan::open(dir, metrics, top_n, 0, tweets, outcomes)?;
        let mut header = String::from("tweet_id");
        for m in metrics {
            header.push(',');
            header.push_str(m.as_str());
        }
        header.push('\n');
        p.tweets
            .1
            .write_all(header.as_bytes())
            .map_err(io(&p.tweets.0))?;
        p.outcomes
            .1
            .write_record(["tweet_id", "outcome", "note"])
            .map_err(csv_err(&p.outcomes.0))?;
        Ok(p)
    }

    /// A pass from `from`, without headers, to be appended to another.
    fn start_part(
        dir: &Path,
        metrics: &[Metric],
        top_n: usize,
        from: u64,
    ) -> Result<Scan, ReportError> {
        Scan::open(
            dir,
            metrics,
            top_n,
            from,
            staging_name(dir, "tweets.csv.half"),
            staging_name(dir, "outcomes.csv.half"),
        )
    }

    fn open(
        dir: &Path,
        metrics: &[Metric],
        top_n: usize,
        from: u64,
        tweets: PathBuf,
        outcomes: PathBuf,
    ) -> Result<Scan, ReportError> {
        Ok(Scan {
            dir: dir.to_path_buf(),
            metrics: metrics.to_vec(),
            top_n,
            pass: Pass {
                agg: Aggregator::new(top_n, metrics.len()),
                status: StatusCounts::default(),
            },
            upto: from,
            tweets: (tweets.clone(), create(&tweets)?),
            outcomes: (
                outcomes.clone(),
                csv::Writer::from_writer(create(&outcomes)?),
            ),
        })
    }

    /// Next ID the pass scans from.
    pub fn upto(&self) -> u64 {
        self.upto
    }

    /// Flushes the files and describes the pass so far, for [`Scan::resume`] in a later life.
    pub fn checkpoint(&mut self) -> Result<ScanCheckpoint, ReportError> {
        self.flush_files()?;
        // On disk as the pass goes (this runs beside the fetch), so that publishing the report
        // at the end waits only for the rows written since, not for the whole file.
        self.tweets
            .1
            .get_ref()
            .sync_data()
            .map_err(io(&self.tweets.0))?;
        self.outcomes
            .1
            .get_ref()
            .get_ref()
            .sync_data()
            .map_err(io(&self.outcomes.0))?;
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).map_err(io(p));
        let (totals, tweets, tops) = self.pass.agg.parts();
        let s = self.pass.status;
        Ok(ScanCheckpoint {
            dir: self.dir.to_string_lossy().into_owned(),
            metrics: self
                .metrics
                .iter()
                .map(|m| m.as_str().to_string())
                .collect(),
            top_n: self.top_n,
            upto: self.upto,
            tweets_len: len(&self.tweets.0)?,
            outcomes_len: len(&self.outcomes.0)?,
            counts: [s.ok, s.unavailable, s.forbidden, s.failed],
            totals,
            tweets,
            tops,
        })
    }

    /// Goes on with a pass an earlier life checkpointed, when its files are still there and hold at
    /// least what it recorded (cut back to exactly that); `None` otherwise, to start afresh.
    pub fn resume(
        dir: &Path,
        metrics: &[Metric],
        top_n: usize,
        c: &ScanCheckpoint,
    ) -> Option<Scan> {
        let same = c.dir == dir.to_string_lossy()
            && c.top_n == top_n
            && c.metrics
                .iter()
                .map(String::as_str)
                .eq(metrics.iter().map(|m| m.as_str()))
            && c.totals.len() == metrics.len()
            && c.tops.len() == metrics.len();
        if !same {
            return None;
        }
        let reopen = |p: &Path, len: u64| -> Option<File> {
            let f = std::fs::OpenOptions::new().write(true).open(p).ok()?;
            if f.metadata().ok()?.len() < len {
                return None;
            }
            f.set_len(len).ok()?;
            let mut f = f;
            std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0)).ok()?;
            Some(f)
        };
        let tweets = dir.join(PART_TWEETS);
        let outcomes = dir.join(PART_OUTCOMES);
        let t = reopen(&tweets, c.tweets_len)?;
        let o = reopen(&outcomes, c.outcomes_len)?;
        let [ok, unavailable, forbidden, failed] = c.counts;
        Some(Scan {
            dir: dir.to_path_buf(),
            metrics: metrics.to_vec(),
            top_n,
            pass: Pass {
                agg: Aggregator::from_parts(top_n, c.totals.clone(), c.tweets, &c.tops),
                status: StatusCounts {
                    pending: 0,
                    ok,
                    unavailable,
                    forbidden,
                    failed,
                },
            },
            upto: c.upto,
            tweets: (tweets, BufWriter::new(t)),
            outcomes: (outcomes, csv::Writer::from_writer(BufWriter::new(o))),
        })
    }

    /// Scans the outcomes from where the pass stopped up to `to` (excluded; `None`: to the end).
    pub fn advance(&mut self, store: &Store, to: Option<u64>) -> Result<(), ReportError> {
        if to.is_some_and(|t| t <= self.upto) {
            return Ok(());
        }
        let mut row = vec![0u64; self.metrics.len()];
        // Numbers only, so no quoting: written directly, one buffer, no allocation per row (this
        // file has a row per Tweet and is rewritten by every resume).
        let mut line = String::new();
        let (mut failure, mut other_failure) = (None, None);
        let Scan {
            pass,
            tweets,
            outcomes,
            metrics,
            ..
        } = self;
        store.for_each_outcome(self.upto, to, metrics, |id, status, note, values| {
            match status {
                Status::Ok => pass.status.ok += 1,
                Status::Unavailable => pass.status.unavailable += 1,
                Status::Forbidden => pass.status.forbidden += 1,
                Status::Failed | Status::Pending => pass.status.failed += 1,
            }
            if status != Status::Ok {
                if other_failure.is_none() {
                    other_failure = outcomes
                        .1
                        .write_record([&id.to_string(), status.as_str(), note.unwrap_or("")])
                        .err();
                }
                return;
            }
            if failure.is_some() {
                return;
            }
            line.clear();
            push_u64(&mut line, id);
            for v in values {
                line.push(',');
                if let Some(x) = v {
                    push_u64(&mut line, *x);
                }
            }
            line.push('\n');
            failure = tweets.1.write_all(line.as_bytes()).err();
            for (r, v) in row.iter_mut().zip(values) {
                *r = v.unwrap_or(0);
            }
            pass.agg.add(id, &row);
        })?;
        if let Some(e) = failure {
            return Err(io(&self.tweets.0)(e));
        }
        if let Some(e) = other_failure {
            return Err(csv_err(&self.outcomes.0)(e));
        }
        if let Some(to) = to {
            self.upto = to;
        }
        Ok(())
    }

    /// Appends a later part's rows and figures: the last rows of this pass (written past its own
    /// writers, which must not write after it).
    fn append(&mut self, part: Scan) -> Result<(), ReportError> {
        let (tweets, outcomes, pass) = part.flush()?;
        self.flush_files()?;
        for (to, from) in [(&self.tweets.0, &tweets), (&self.outcomes.0, &outcomes)] {
            let mut out = std::fs::OpenOptions::new()
                .append(true)
                .open(to)
                .map_err(io(to))?;
            let mut src = File::open(from).map_err(io(from))?;
            std::io::copy(&mut src, &mut out).map_err(io(to))?;
            std::fs::remove_file(from).map_err(io(from))?;
        }
        self.pass.merge(&pass);
        Ok(())
    }

    fn flush_files(&mut self) -> Result<(), ReportError> {
        self.tweets.1.flush().map_err(io(&self.tweets.0))?;
        self.outcomes.1.flush().map_err(io(&self.outcomes.0))
    }

    /// Flushes both files; their paths and the figures.
    fn flush(mut self) -> Result<(PathBuf, PathBuf, Pass), ReportError> {
        self.flush_files()?;
        Ok((self.tweets.0, self.outcomes.0, self.pass))
    }

    /// Ends the pass: both files flushed to disk (still under their temporary names), and the
    /// figures.
    fn close(self) -> Result<(PathBuf, PathBuf, Pass), ReportError> {
        crate::failpoint::hit("report-write");
        let Scan {
            tweets,
            outcomes,
            pass,
            ..
        } = self;
        let t = tweets
            .1
            .into_inner()
            .map_err(|e| io(&tweets.0)(e.into_error()))?;
        let o = outcomes
            .1
            .into_inner()
            .map_err(|e| io(&outcomes.0)(e.into_error()))?
            .into_inner()
            .map_err(|e| io(&outcomes.0)(e.into_error()))?;
        t.sync_all().map_err(io(&tweets.0))?;
        o.sync_all().map_err(io(&outcomes.0))?;
        Ok((tweets.0, outcomes.0, pass))
    }
}

/// The part files of a run's outcome pass (see [`Scan::resume`]).
const PART_TWEETS: &str = ".tweets.csv.part";
const PART_OUTCOMES: &str = ".outcomes.csv.part";

/// Writes the CSV file `name` of a report: the header, then every row `rows` hands to its
/// callback. The first write error is kept and returned once the store's iteration ends.
fn write_csv(
    staging: &mut Staging,
    name: &str,
    header: &[&str],
    rows: impl FnOnce(&mut dyn FnMut(&[&str])) -> Result<(), StoreError>,
) -> Result<(), ReportError> {
    let (path, w) = staging.create(name)?;
    let mut w = csv::Writer::from_writer(w);
    w.write_record(header).map_err(csv_err(&path))?;
    let mut failure = None;
    rows(&mut |rec: &[&str]| {
        if failure.is_none() {
            failure = w.write_record(rec).err();
        }
    })?;
    if let Some(e) = failure {
        return Err(csv_err(&path)(e));
    }
    let w = w.into_inner().map_err(|e| io(&path)(e.into_error()))?;
    finish(w, &path)
}

/// Writes the text file `name` of a report.
fn write_text(staging: &mut Staging, name: &str, text: &[u8]) -> Result<(), ReportError> {
    let (path, mut w) = staging.create(name)?;
    w.write_all(text).map_err(io(&path))?;
    finish(w, &path)
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
                    let url = format!("https://x.com/i/web/status/{id}");
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
        Some(g) => Some(time_series(summary, store, g)?),
        None => None,
    };
    let html = crate::html::render(summary, ts.as_ref(), time::OffsetDateTime::now_utc());
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
    use super::*;
    use crate::outcome::{IdOutcome, Settled};

    /// A store of `n` IDs: most `ok`, some unavailable or failed with notes that need CSV quoting,
    /// and, when `pending`, every tenth ID without an outcome.
    fn store(dir: &Path, n: u64, pending: bool) -> Store {
        store_with(dir, n, pending, true)
    }

    /// [`store`], with the ingest recorded as finished or not.
    fn store_with(dir: &Path, n: u64, pending: bool, ingest_done: bool) -> Store {
        let mut s = Store::open(&dir.join("run.db")).unwrap();
        let tx = s.ingest_tx().unwrap();
        let ids: Vec<(u64, Option<String>)> = (1..=n).map(|i| (i * 7919, None)).collect();
        tx.insert_ids(&ids).unwrap();
        tx.commit(ingest_done.then(IngestCounts::default)).unwrap();
        let metrics = [Metric::Favorites, Metric::Retweets];
        let outcomes = ids
            .iter()
            .filter(|(id, _)| !(pending && (id / 7919) % 10 == 0))
            .map(|&(id, _)| match (id / 7919) % 13 {
                3 => IdOutcome::final_status(id, Status::Unavailable, "deleted, \"or\" not public"),
                5 => IdOutcome::final_status(id, Status::Failed, "HTTP 503,\nretried"),
                _ => IdOutcome {
                    id,
                    status: Status::Ok,
                    values: vec![Some(id % 1000), (id % 3 == 0).then_some(id % 17)],
                    note: None,
                    series: vec![],
                },
            })
            .collect::<Vec<_>>();
        let commits: Vec<Settled> = outcomes
            .chunks(250)
            .map(|c| Settled {
                window: 0,
                windows: 1,
                outcomes: c.to_vec(),
                hourly: vec![],
                via: Some("bearer".into()),
                origin: c[0].id,
            })
            .collect();
        s.record(&metrics, &commits, None).unwrap();
        s
    }

    #[test]
    fn a_pass_resumed_from_its_checkpoint_writes_what_one_pass_writes() {
        let metrics = [Metric::Favorites, Metric::Retweets];
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path(), 3_001, false);
        let (one, two) = (d.path().join("one"), d.path().join("two"));
        let (a, _) = write_reports(&one, &s, Endpoint::Totals, &metrics, 10, None).unwrap();

        let mut first = Scan::start(&two, &metrics, 10).unwrap();
        first.advance(&s, Some(7919 * 1200)).unwrap();
        let saved = first.checkpoint().unwrap();
        // The life goes on past its checkpoint, then dies: rows after it are on disk, unsaved.
        first.advance(&s, Some(7919 * 2000)).unwrap();
        first.checkpoint().unwrap();
        std::mem::forget(first);
        // The checkpoint survives a trip through the store's `meta` as JSON.
        let saved: ScanCheckpoint =
            serde_json::from_str(&serde_json::to_string(&saved).unwrap()).unwrap();
        assert!(
            Scan::resume(&one, &metrics, 10, &saved).is_none(),
            "another folder"
        );
        assert!(
            Scan::resume(&two, &metrics[..1], 10, &saved).is_none(),
            "other metrics"
        );
        let resumed = Scan::resume(&two, &metrics, 10, &saved).expect("files are there");
        assert_eq!(resumed.upto(), 7919 * 1200);
        let (b, _) = finish_reports(resumed, &s, Endpoint::Totals, None, 1).unwrap();
        for f in ["tweets.csv", "outcomes.csv", "top.json", "top.csv"] {
            assert!(
                std::fs::read(one.join(f)).unwrap() == std::fs::read(two.join(f)).unwrap(),
                "{f} differs"
            );
        }
        assert_eq!(a.status, b.status);
        // A checkpoint whose files were cut shorter than it says is not resumed.
        let mut again = Scan::start(&two, &metrics, 10).unwrap();
        again.advance(&s, Some(7919 * 1200)).unwrap();
        let c = again.checkpoint().unwrap();
        drop(again);
        let part = two.join(".tweets.csv.part");
        let len = std::fs::metadata(&part).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&part)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        assert!(Scan::resume(&two, &metrics, 10, &c).is_none());
    }

    #[test]
    fn every_report_says_whether_it_is_complete_and_the_counts_add_up() {
        let metrics = [Metric::Favorites, Metric::Retweets];
        for (pending, ingest_done) in [(false, true), (true, true), (false, false)] {
            let d = tempfile::tempdir().unwrap();
            let s = store_with(d.path(), 500, pending, ingest_done);
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

    #[test]
    fn two_halves_write_exactly_what_one_pass_writes() {
        let metrics = [Metric::Favorites, Metric::Retweets];
        for pending in [false, true] {
            let d = tempfile::tempdir().unwrap();
            let s = store(d.path(), 3_001, pending);
            let (one, two) = (d.path().join("one"), d.path().join("two"));
            let whole = Scan::start(&one, &metrics, 10).unwrap();
            let (a, _) = finish_reports(whole, &s, Endpoint::Totals, None, u64::MAX).unwrap();
            // Two background steps (one of them empty), then the rest in two halves.
            let mut steps = Scan::start(&two, &metrics, 10).unwrap();
            steps.advance(&s, Some(7919 * 1000)).unwrap();
            steps.advance(&s, Some(7919 * 1000)).unwrap();
            steps.advance(&s, Some(7919 * 1500 + 1)).unwrap();
            assert_eq!(steps.upto(), 7919 * 1500 + 1);
            let (b, _) = finish_reports(steps, &s, Endpoint::Totals, None, 1).unwrap();
            for f in [
                "tweets.csv",
                "outcomes.csv",
                "top.json",
                "top.csv",
                "top.md",
            ] {
                let (x, y) = (
                    std::fs::read(one.join(f)).unwrap(),
                    std::fs::read(two.join(f)).unwrap(),
                );
                assert!(x == y, "{f} differs (pending: {pending})");
            }
            assert_eq!(a.status, b.status);
            assert_eq!(a.status.unique(), 3_001);
            assert_eq!(a.status.pending, if pending { 300 } else { 0 });
            let names: Vec<_> = std::fs::read_dir(&two)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(!names.iter().any(|n| n.starts_with('.')), "{names:?}");
            assert!(names.iter().any(|n| n == "tweets.csv"), "{names:?}");
            let tweets = std::fs::read_to_string(one.join("tweets.csv")).unwrap();
            assert_eq!(tweets.lines().count() as u64, 1 + a.status.ok);
        }
    }
}
