//! Reports: `top.json`, `top.md`, `top.csv`, `tweets.csv` and `rejects.csv`, all regenerated from the
//! store, so `engage report` after any number of resumes writes exactly what an uninterrupted run writes.
//!
//! `top.json` is a contract with downstream tools; its shape is fixed:
//! `{"endpoint", "top_n", "counts": {...}, "totals": {"<metric>": n}, "top": {"<metric>": [{"tweet_id": "<id>", "value": n}]}}`
//! with `ok + unavailable + forbidden + failed == unique_ids`, a key in `top` for every metric of the run,
//! lists sorted by value descending then Tweet ID ascending, zero values left out.

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
        let (_, ingest) = store.ingest_state()?;
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
        })
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
            "counts": {
                "input_lines": self.ingest.input_lines,
                "rejected_lines": self.ingest.rejected_lines,
                "duplicate_ids": self.ingest.duplicate_ids,
                "unique_ids": self.status.unique(),
                "ok": self.status.ok,
                "unavailable": self.status.unavailable,
                "forbidden": self.status.forbidden,
                "failed": self.status.failed,
                "damaged_inputs": self.damaged_inputs.len(),
            },
            "totals": totals,
            "top": top,
        })
    }

    /// The Markdown report (also what the terminal shows).
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let c = &self.status;
        s.push_str(&format!(
            "# Top {} per metric — /{}\n\n",
            self.top_n, self.endpoint
        ));
        s.push_str(&format!(
            "{} unique IDs from {} input lines ({} rejected, {} duplicates): {} ok, {} unavailable, {} forbidden, {} failed{}.\n\n",
            c.unique(),
            self.ingest.input_lines,
            self.ingest.rejected_lines,
            self.ingest.duplicate_ids,
            c.ok,
            c.unavailable,
            c.forbidden,
            c.failed,
            if c.pending > 0 { format!(", {} still pending", c.pending) } else { String::new() }
        ));
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
    let f = crate::fsutil::create_private(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(BufWriter::new(f))
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
    let started = Scan::start(dir, metrics, top_n)?;
    finish_reports(started, store, endpoint, series, SPLIT_AT)
}

/// Finishes a report whose pass has covered the IDs below `scan.upto()`.
pub fn finish_reports(
    mut scan: Scan,
    store: &Store,
    endpoint: Endpoint,
    series: Option<Granularity>,
    split_at: u64,
) -> Result<(Summary, Vec<PathBuf>), ReportError> {
    let t = std::time::Instant::now();
    let dir = scan.dir.clone();
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
    // Pending IDs have no outcome row: when there are any (an interrupted run), outcomes.csv is
    // written again by a walk over every ID, to list them too.
    let pending = unique.saturating_sub(pass.status.unique());
    pass.status.pending = pending;
    if pending > 0 {
        write_csv(&outcomes, &["tweet_id", "outcome", "note"], |row| {
            store.for_each_not_ok(|id, status, note| {
                row(&[&id.to_string(), status.as_str(), note.unwrap_or("")])
            })
        })?;
    }
    let summary =
        Summary::from_aggregator(store, endpoint, &metrics, top_n, &pass.agg, pass.status)?;
    let mut written = write_all(&dir, &summary, store, series)?;
    tracing::debug!(elapsed = ?t.elapsed(), "report: all written");
    written.insert(3, tweets);
    written.insert(4, outcomes);
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
    /// A pass from the first ID, with the files' headers written.
    pub fn start(dir: &Path, metrics: &[Metric], top_n: usize) -> Result<Scan, ReportError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut p = Scan::open(dir, metrics, top_n, 0, "")?;
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
        Scan::open(dir, metrics, top_n, from, ".2")
    }

    fn open(
        dir: &Path,
        metrics: &[Metric],
        top_n: usize,
        from: u64,
        tag: &str,
    ) -> Result<Scan, ReportError> {
        let tweets = dir.join(format!(".tweets.csv{tag}.part"));
        let outcomes = dir.join(format!(".outcomes.csv{tag}.part"));
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
        let tweets = dir.join(".tweets.csv.part");
        let outcomes = dir.join(".outcomes.csv.part");
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

    /// Ends the pass: the files under their final names, and the figures.
    fn close(self) -> Result<(PathBuf, PathBuf, Pass), ReportError> {
        let dir = self.dir.clone();
        let (t, o, pass) = self.flush()?;
        let (tweets, outcomes) = (dir.join("tweets.csv"), dir.join("outcomes.csv"));
        std::fs::rename(&t, &tweets).map_err(io(&tweets))?;
        std::fs::rename(&o, &outcomes).map_err(io(&outcomes))?;
        Ok((tweets, outcomes, pass))
    }
}

/// Writes a CSV file: the header, then every row `rows` hands to its callback. The first write
/// error is kept and returned once the store's iteration ends.
fn write_csv(
    path: &Path,
    header: &[&str],
    rows: impl FnOnce(&mut dyn FnMut(&[&str])) -> Result<(), StoreError>,
) -> Result<PathBuf, ReportError> {
    let mut w = csv::Writer::from_writer(create(path)?);
    w.write_record(header).map_err(csv_err(path))?;
    let mut failure = None;
    rows(&mut |rec: &[&str]| {
        if failure.is_none() {
            failure = w.write_record(rec).err();
        }
    })?;
    if let Some(e) = failure {
        return Err(csv_err(path)(e));
    }
    w.flush().map_err(io(path))?;
    Ok(path.to_path_buf())
}

/// Every output but `tweets.csv`, from a finished summary.
fn write_all(
    dir: &Path,
    summary: &Summary,
    store: &Store,
    series: Option<Granularity>,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();

    let p = dir.join("top.json");
    let mut w = create(&p)?;
    serde_json::to_writer_pretty(&mut w, &summary.to_json()).map_err(|e| io(&p)(e.into()))?;
    w.write_all(b"\n").and_then(|_| w.flush()).map_err(io(&p))?;
    written.push(p);

    let p = dir.join("top.md");
    let mut w = create(&p)?;
    w.write_all(summary.to_markdown().as_bytes())
        .and_then(|_| w.flush())
        .map_err(io(&p))?;
    written.push(p);

    written.push(write_csv(
        &dir.join("top.csv"),
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
    )?);

    written.push(write_csv(
        &dir.join("rejects.csv"),
        &["source", "line", "content", "reason"],
        |row| {
            store.for_each_reject(|r| row(&[&r.source, &r.line.to_string(), &r.content, &r.reason]))
        },
    )?);

    let ts = match series {
        Some(g) => Some(time_series(summary, store, g)?),
        None => None,
    };
    let p = dir.join("report.html");
    let html = crate::html::render(summary, ts.as_ref(), time::OffsetDateTime::now_utc());
    let mut w = create(&p)?;
    w.write_all(html.as_bytes())
        .and_then(|_| w.flush())
        .map_err(io(&p))?;
    written.push(p);

    if let Some(g) = series {
        written.push(write_csv(
            &dir.join("series.csv"),
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
        )?);

        let hourly = store.hourly_totals()?;
        written.push(write_csv(
            &dir.join("hourly.csv"),
            &["metric", "hour", "value"],
            |row| {
                for (m, hour, v) in &hourly {
                    row(&[m, &format_bucket(*hour, Granularity::Hour), &v.to_string()]);
                }
                Ok(())
            },
        )?);
    }

    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{IdOutcome, Settled};

    /// A store of `n` IDs: most `ok`, some unavailable or failed with notes that need CSV quoting,
    /// and, when `pending`, every tenth ID without an outcome.
    fn store(dir: &Path, n: u64, pending: bool) -> Store {
        let mut s = Store::open(&dir.join("run.db")).unwrap();
        let tx = s.ingest_tx().unwrap();
        let ids: Vec<(u64, Option<String>)> = (1..=n).map(|i| (i * 7919, None)).collect();
        tx.insert_ids(&ids).unwrap();
        tx.commit(Some(IngestCounts::default())).unwrap();
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
            assert!(!names.iter().any(|n| n.ends_with(".part")), "{names:?}");
            assert!(names.iter().any(|n| n == "tweets.csv"), "{names:?}");
            let tweets = std::fs::read_to_string(one.join("tweets.csv")).unwrap();
            assert_eq!(tweets.lines().count() as u64, 1 + a.status.ok);
        }
    }
}
